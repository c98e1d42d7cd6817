"""Face alignment: a similarity transform of the 5 YuNet landmarks onto the standard 112x112
template (the ArcFace/SFace layout), the crop the identity model and pixel encoders consume."""
from __future__ import annotations

import numpy as np

from . import models
from .types import Detection

ALIGNED_SIZE = 112


def align_face(rgb: np.ndarray, det: Detection) -> np.ndarray:
    """(112, 112, 3) uint8 RGB crop, eyes level and at fixed positions."""
    row = np.array([*det.box, *(c for p in det.landmarks5 for c in p), det.score], dtype=np.float32)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    aligned = models.sface().alignCrop(bgr, row[None, :])
    return np.ascontiguousarray(aligned[:, :, ::-1])
