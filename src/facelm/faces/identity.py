"""Identity embeddings from two independent models: SFace (OpenCV Zoo) and dlib's ResNet."""
from __future__ import annotations

import numpy as np

from . import models
from .align import align_face
from .types import Detection

IDENTITY_MODELS = ("sface", "dlib")


def _unit(v: np.ndarray) -> tuple[float, ...]:
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    return tuple(float(x) for x in v / max(float(np.linalg.norm(v)), 1e-12))


def sface_embedding(rgb: np.ndarray, det: Detection) -> tuple[float, ...]:
    """SFace on its own 112x112 similarity-aligned crop (from YuNet's 5 landmarks)."""
    return _unit(models.sface().feature(align_face(rgb, det)))


def dlib_embedding(rgb: np.ndarray, shape5) -> tuple[float, ...]:
    """dlib ResNet on its 150x150 chip aligned from the 5-point shape, as face_recognition does."""
    return _unit(np.asarray(models.dlib_resnet().descriptor(rgb, shape5)))


def cosine(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return float(np.dot(np.asarray(a), np.asarray(b)))
