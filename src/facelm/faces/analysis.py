"""The analysis pipeline: one image in, one FaceAnalysis for the chosen face out."""
from __future__ import annotations

import numpy as np

from ..errors import FaceLMError, ItemError, NoFaceError
from ..imageio import DEFAULT_MAX_PIXELS, ImageInput, describe_source, load_rgb
from . import attributes as attrs
from . import identity, landmarks, models, orientation, quality
from .detect import choose_face, detect_faces
from .types import Detection, FaceAnalysis


def analyze(source: ImageInput, *, fast: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
            name: str | None = None) -> FaceAnalysis:
    """Analyse the main face (largest, most central) of one image.

    fast=True is identity-only: detection, landmarks, pose, quality and both embeddings, without the
    age, gender and expression networks. Raises ImageLoadError, ImageTooLargeError or NoFaceError.
    """
    item = name or describe_source(source)
    rgb = load_rgb(source, max_pixels=max_pixels, name=item)
    return analyze_array(rgb, fast=fast, item=item)


def analyse_or_error(path: str, fast: bool = False) -> FaceAnalysis | ItemError:
    """`analyze(path)`, with the failure returned instead of raised: in a batch (or a worker
    process) one bad photo is one failed item. Unexpected errors (a decoder's) count too."""
    try:
        return analyze(path, fast=fast)
    except FaceLMError as exc:
        return ItemError(str(exc), type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - still one photo's failure, not the batch's
        return ItemError(f"{path}: unexpected error: {type(exc).__name__}: {exc}")


def analyze_array(rgb: np.ndarray, *, fast: bool = False, item: str = "image") -> FaceAnalysis:
    faces = detect_faces(rgb, item=item)
    if not faces:
        h, w = rgb.shape[:2]
        raise NoFaceError(f"no face found in the {w}x{h} image", item=item,
                          hint="use a photo where the face is visible, frontal-ish and at least 40 px wide")
    size = (int(rgb.shape[1]), int(rgb.shape[0]))
    return analyze_face(rgb, choose_face(faces, size), faces_found=len(faces), item=item, fast=fast)


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
        attributes=None if fast else attrs.attributes(rgb, det, shape5, embeddings),
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
    return out
