"""The frozen face encoder: per image, the identity embeddings (SFace, dlib) and the measured
analysis as one feature vector, the role VGGFace plays in VerLM. Analyses are cached on disk per
image (keyed by path, size and mtime, or by content for in-memory images) so that training and
evaluation analyse each photo once per machine, and in memory per extractor.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from ...atomic import write_atomic
from ...cache import cache_dir
from ...errors import FaceLMError, NoFaceError
from ...faces.types import EXPRESSIONS, FaceAnalysis

if TYPE_CHECKING:
    from ...verify import Comparison

FEATURE_VERSION = 1
CROP_SIZE = 32  # grey aligned crop kept for the optional pixel encoder

# Layout of the feature vector (names -> width), in order.
FEATURE_BLOCKS: dict[str, int] = {
    "sface": 128, "dlib": 128, "geometry": 8, "pose": 3, "quality": 7, "attributes": 13,
    "faces_found": 1, "landmarks68": 136,
}
FEATURE_DIM = sum(FEATURE_BLOCKS.values())  # 424
# Pair-level conditioning: fused score, margin, P(same), SFace, dlib, calibrated verdict (+-1).
PAIR_FEATURE_DIM = 6


def _image_key(image: Any) -> str | None:
    """A stable key for a path (realpath, size, mtime) or raw content; None if not hashable."""
    if isinstance(image, (str, Path)):
        p = Path(image)
        try:
            st = p.stat()
        except OSError:
            return None  # missing: let load_rgb raise its clear error
        raw = f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}|v{FEATURE_VERSION}".encode()
    elif isinstance(image, bytes):
        raw = image
    elif isinstance(image, np.ndarray):
        raw = image.tobytes() + str(image.shape).encode()
    else:
        return None
    # the attribute estimator changes the cached analysis: never serve one estimator's to another
    from ...faces.attributes import estimator
    return hashlib.sha1(raw + estimator().encode()).hexdigest()


def analyse_image(image: Any, name: str | None = None) -> dict[str, Any]:
    """{"analysis": FaceAnalysis dict with embeddings, "crop": 32x32 grey uint8 list}."""
    from ...faces.align import align_face
    from ...faces.analysis import analyze_array
    from ...imageio import describe_source, load_rgb
    item = name or describe_source(image)
    rgb = load_rgb(image, name=item)
    fa = analyze_array(rgb, item=item)
    crop = align_face(rgb, fa.detection).astype(np.float32).mean(axis=2)  # (112, 112) grey
    from PIL import Image
    small = np.asarray(Image.fromarray(crop.astype(np.uint8)).resize((CROP_SIZE, CROP_SIZE),
                                                                      Image.BILINEAR))
    return {"analysis": fa.to_dict(embeddings=True), "crop": small.astype(int).ravel().tolist()}


def _unit(v: Iterable[float]) -> np.ndarray:
    a = np.asarray(list(v), dtype=np.float32)
    n = float(np.linalg.norm(a))
    return a / n if n > 0 else a


def feature_vector(fa: FaceAnalysis) -> np.ndarray:
    """(FEATURE_DIM,) float32, every block scaled to roughly unit range."""
    q, g, p = fa.quality, fa.geometry, fa.pose
    geometry = [g.face_width, g.face_height, g.eye_width, g.nose_length, g.nose_width,
                g.mouth_width, g.jaw_width, g.brow_to_eye]
    quality = [q.brightness * 2 - 1, q.contrast * 4, math.log1p(q.sharpness) / 5,
               math.log1p(q.face_size_px) / 5, math.log1p(q.interocular_px) / 4,
               q.overexposed * 4, q.underexposed * 4]
    at = fa.attributes
    if at is None:
        attrs = [0.0] * 13
    else:
        male = at.gender_confidence if at.gender == "male" else 1 - at.gender_confidence
        attrs = [at.age / 40 - 1, at.age_range[0] / 40 - 1, at.age_range[1] / 40 - 1,
                 male * 2 - 1, at.gender_confidence,
                 *[at.expression_probs.get(e, 0.0) for e in EXPRESSIONS], 1.0]
    pts = np.asarray(fa.landmarks68, dtype=np.float32)       # (68, 2)
    eyes = pts[36:48].reshape(2, 6, 2).mean(axis=1)          # (2, 2) eye centres
    scale = float(np.linalg.norm(eyes[1] - eyes[0])) or 1.0
    lm = ((pts - eyes.mean(axis=0)) / (2 * scale)).ravel()   # (136,) centred, inter-ocular units
    parts = [_unit(fa.embeddings["sface"]), _unit(fa.embeddings["dlib"]),
             np.asarray(geometry, np.float32) - 1.0, np.asarray([p.yaw, p.pitch, p.roll], np.float32) / 45,
             np.asarray(quality, np.float32), np.asarray(attrs, np.float32),
             np.asarray([math.log(max(fa.faces_found, 1)) / 2], np.float32), lm]
    out = np.concatenate(parts).astype(np.float32)
    assert out.shape == (FEATURE_DIM,), out.shape
    return out


def pair_features(c: Comparison) -> np.ndarray:
    """(PAIR_FEATURE_DIM,): the calibrated verification result the text's verdict must agree with."""
    return np.asarray([c.score, (c.score - c.threshold) * 5, c.probability * 2 - 1,
                       c.scores["sface"], c.scores["dlib"], 1.0 if c.same else -1.0], np.float32)


def score_text(c: Comparison) -> str:
    """The calibrated verification result as a sentence the LM can read (and copy numbers from)."""
    return (f" Identity check: fused similarity {c.score:.2f} vs threshold {c.threshold:.2f} "
            f"(SFace {c.scores['sface']:.2f}, dlib {c.scores['dlib']:.2f}): "
            f"{'same person' if c.same else 'different people'}.")


class FaceFeatureExtractor:
    """Image -> (FaceAnalysis, feature vector, crop), cached on disk and in memory."""

    def __init__(self, cache: str | Path | None = None, *, use_disk: bool = True) -> None:
        self.root = Path(cache) if cache else cache_dir() / f"verlm-features-v{FEATURE_VERSION}"
        self.use_disk = use_disk
        self._memo: dict[str, dict[str, Any]] = {}

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def entry(self, image: Any, name: str | None = None) -> dict[str, Any]:
        """The cached {"analysis", "crop"} or {"error"} entry; computes and stores it if absent."""
        key = _image_key(image)
        if key is not None and key in self._memo:
            return self._memo[key]
        path = self._path(key) if key and self.use_disk else None
        if path is not None and path.is_file():
            entry = json.loads(path.read_text())
        else:
            try:
                entry = analyse_image(image, name)
            except NoFaceError as exc:
                entry = {"error": str(exc)}  # cached too: a photo without a face stays so
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(path, json.dumps(entry), fsync=False)  # workers never read half a file
        if key is not None:
            self._memo[key] = entry
        return entry

    def _found(self, image: Any, name: str | None) -> dict[str, Any]:
        entry = self.entry(image, name)
        if "error" in entry:
            raise NoFaceError(entry["error"])  # the stored text already names the photo and the fix
        return entry

    def analysis(self, image: Any, name: str | None = None) -> FaceAnalysis:
        return FaceAnalysis.from_dict(self._found(image, name)["analysis"])

    def face(self, image: Any, name: str | None = None) -> tuple[FaceAnalysis, np.ndarray]:
        """(FaceAnalysis, (CROP_SIZE*CROP_SIZE,) grey crop scaled to -1..1), from one cache lookup."""
        entry = self._found(image, name)
        return (FaceAnalysis.from_dict(entry["analysis"]),
                np.asarray(entry["crop"], np.float32) / 127.5 - 1.0)


def check_images(images: Any) -> list[Any]:
    """1 or 2 images, else a clear error."""
    images = list(images)
    if len(images) not in (1, 2):
        raise FaceLMError(f"VerLM reads 1 or 2 face photos, got {len(images)}",
                          hint="pass one photo (a question about a face) or two (verification)")
    return images
