"""Face alignment: a similarity transform of the 5 YuNet landmarks onto the standard 112x112
template (the ArcFace/SFace layout), the crop the identity model and pixel encoders consume.

Same estimate as OpenCV's FaceRecognizerSF.alignCrop (Umeyama's least-squares similarity, then a
bilinear warp), done here so SFace can run without OpenCV's DNN (see sface_onnx).
"""
from __future__ import annotations

import numpy as np

from .types import Detection

ALIGNED_SIZE = 112
# Eye centres, nose tip, mouth corners of the 112x112 ArcFace template (image's left eye first).
TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [41.5493, 92.3655], [70.7299, 92.2041]])


def similarity_transform(src: np.ndarray, dst: np.ndarray = TEMPLATE) -> np.ndarray:
    """2x3 matrix of the rotation + uniform scale + shift that best maps src onto dst (Umeyama)."""
    src, dst = np.asarray(src, float), np.asarray(dst, float)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # a reflection: flip the weakest axis
        sign[1, 1] = -1
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / s0.var(0).sum()
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def align_face(rgb: np.ndarray, det: Detection) -> np.ndarray:
    """(112, 112, 3) uint8 RGB crop, eyes level and at fixed positions."""
    import cv2
    m = similarity_transform(np.asarray(det.landmarks5, float))
    return cv2.warpAffine(rgb, m, (ALIGNED_SIZE, ALIGNED_SIZE), flags=cv2.INTER_LINEAR)
