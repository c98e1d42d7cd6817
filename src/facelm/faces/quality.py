"""Image quality of the face region, measured from pixels."""
from __future__ import annotations

import cv2
import numpy as np

from .types import Detection, Quality

# Sharpness is measured on the face resized to this width so that it does not depend on resolution.
SHARPNESS_SIDE = 112


def face_region(rgb: np.ndarray, det: Detection) -> np.ndarray:
    h, w = rgb.shape[:2]
    x, y, bw, bh = det.box
    x0, y0 = max(0, int(x)), max(0, int(y))
    x1, y1 = min(w, int(x + bw + 0.5)), min(h, int(y + bh + 0.5))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return rgb
    return rgb[y0:y1, x0:x1]


def measure(rgb: np.ndarray, det: Detection, interocular_px: float) -> Quality:
    crop = face_region(rgb, det)
    luma = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(luma, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    lap = cv2.Laplacian(small.astype(np.float32) / 255.0, cv2.CV_32F)
    lum = luma.astype(np.float32) / 255.0
    return Quality(
        brightness=float(lum.mean()),
        contrast=float(lum.std()),
        sharpness=float(lap.var() * 1000.0),  # x1000 keeps typical values in a readable 0.5-50 range
        face_size_px=float(min(det.box[2], det.box[3])),
        interocular_px=float(interocular_px),
        overexposed=float((luma >= 250).mean()),
        underexposed=float((luma <= 5).mean()),
    )
