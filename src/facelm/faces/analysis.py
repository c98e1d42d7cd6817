"""The analysis pipeline: one image in, one FaceAnalysis for the chosen face (or a FaceSet of
every face) out."""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import FaceLMError, ItemError, NoFaceError
from ..imageio import DEFAULT_MAX_PIXELS, ImageInput, describe_source, load_rgb
from . import attributes as attrs
from . import identity, landmarks, models, orientation, quality, select
from .detect import detect_faces
from .select import DEFAULT_FACE, FaceChoice
from .types import Detection, FaceAnalysis, FaceSet


def analyze(source: ImageInput, *, fast: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
            name: str | None = None, face: FaceChoice = DEFAULT_FACE) -> FaceAnalysis:
    """Analyse one face of one image: by default the main one (large and near the centre);
    face="largest" or a face number (0-based, left to right) chooses another (faces/select.py).

    fast=True is identity-only: detection, landmarks, pose, quality and both embeddings, without the
    age, gender and expression networks. Raises ImageLoadError, ImageTooLargeError or NoFaceError.
    """
    item = name or describe_source(source)
    rgb = load_rgb(source, max_pixels=max_pixels, name=item)
    return analyze_array(rgb, fast=fast, item=item, face=face)


def analyze_faces(source: ImageInput, *, fast: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
                  name: str | None = None) -> FaceSet:
    """Analyse every face of one image (`--face all`), numbered from 0 left to right."""
    item = name or describe_source(source)
    rgb = load_rgb(source, max_pixels=max_pixels, name=item)
    faces = _detect(rgb, item)
    size = (int(rgb.shape[1]), int(rgb.shape[0]))
    return FaceSet(source=item, image_size=size, faces=tuple(
        dataclasses.replace(analyze_face(rgb, det, faces_found=len(faces), item=item, fast=fast),
                            face_index=i) for i, det in enumerate(faces)))


def analyse_or_error(path: str, fast: bool = False) -> FaceAnalysis | ItemError:
    """`analyze(path)`, with the failure returned instead of raised: in a batch (or a worker
    process) one bad photo is one failed item. Unexpected errors (a decoder's) count too."""
    try:
        return analyze(path, fast=fast)
    except FaceLMError as exc:
        return ItemError(str(exc), type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - still one photo's failure, not the batch's
        return ItemError(f"{path}: unexpected error: {type(exc).__name__}: {exc}")


def analyze_array(rgb: np.ndarray, *, fast: bool = False, item: str = "image",
                  face: FaceChoice = DEFAULT_FACE) -> FaceAnalysis:
    faces = _detect(rgb, item)
    size = (int(rgb.shape[1]), int(rgb.shape[0]))
    index = select.pick(faces, face, size, item)
    fa = analyze_face(rgb, faces[index], faces_found=len(faces), item=item, fast=fast)
    return dataclasses.replace(fa, face_index=index,
                               warnings=select.choice_warning(len(faces), face, index, faces[index]))


def _detect(rgb: np.ndarray, item: str) -> list[Detection]:
    """Every face, in the documented order (select.in_order); NoFaceError when there is none."""
    faces = detect_faces(rgb, item=item)
    if not faces:
        h, w = rgb.shape[:2]
        raise NoFaceError(f"no face found in the {w}x{h} image", item=item,
                          hint="use a photo where the face is visible, frontal-ish and at least 40 px wide")
    return select.in_order(faces)


def analyze_face(rgb: np.ndarray, det: Detection, *, faces_found: int = 1, item: str = "image",
                 fast: bool = False) -> FaceAnalysis:
    size = (int(rgb.shape[1]), int(rgb.shape[0]))
    rect = landmarks.dlib_rect(det)  # one box for both dlib predictors
    pts68 = landmarks.landmarks68(rgb, rect)
    shape5 = models.dlib5()(rgb, rect)
    left, right = landmarks.eye_centres(pts68)
    used = {name: models.model_label(name) for name in ("yunet", "dlib68", "dlib5", "sface", "dlib_resnet")}
    embeddings = {"sface": identity.sface_embedding(rgb, det, item),
                  "dlib": identity.dlib_embedding(rgb, shape5, item)}
    return FaceAnalysis(
        source=item, image_size=size, faces_found=faces_found, detection=det, landmarks68=pts68,
        pose=orientation.image_pose(rgb, det, pts68, size),
        quality=quality.measure(rgb, det, float(np.linalg.norm(right - left))),
        geometry=landmarks.geometry(pts68),
        attributes=None if fast else attrs.attributes(rgb, det, shape5, embeddings, pts68),
        embeddings=embeddings,
        models=_provenance(used, fast),
    )


def _provenance(used: dict[str, str], fast: bool) -> dict[str, str]:
    out = {
        "detection": used["yunet"], "landmarks68": used["dlib68"],
        "pose": f"solvePnP on 68 landmarks ({used['dlib68']})",
        "quality": "pixel statistics of the detected face box",
        "geometry": f"landmark ratios ({used['dlib68']})",
        "embeddings.sface": used["sface"],
        "embeddings.dlib": f"{used['dlib_resnet']} with {used['dlib5']}",
    }
    if not fast:
        if attrs.estimator() == "dlib-v1":
            out["attributes.age"] = models.model_label("age")
            out["attributes.gender"] = models.model_label("gender")
        else:
            heads = (f"facelm attribute heads v1 (utkface-train) on {models.model_label('age')}, "
                     f"{models.model_label('gender')} and both embeddings")
            out["attributes.age"] = out["attributes.gender"] = out["attributes.race"] = heads
        out["attributes.expression"] = models.model_label("expression")
        from .expression_head import shipped
        if attrs.estimator() != "dlib-v1" and shipped() is not None:
            out["attributes.expression"] = ("facelm expression head v1 (LFW expression labels) on "
                                            f"{out['attributes.expression']}, landmarks and the heads' features")
    return out
