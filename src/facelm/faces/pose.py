"""Head pose (yaw, pitch, roll in degrees) from 68 landmarks with solvePnP.

Conventions are in types.py. The 3D reference is a generic adult face in millimetres, written in the
camera's axes (x right, y down, z away from the camera), so a frontal face has R = I and the
decomposed angles need no 180-degree correction.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .types import Point, Pose

# 68-point indices and their 3D positions: nose tip, chin, outer eye corners, mouth corners,
# plus the nose bridge top. Values: the widely used generic model (learnopencv), y and z flipped.
_IDX = [30, 8, 36, 45, 48, 54, 27]
_MODEL = np.array([
    [0.0, 0.0, 0.0],
    [0.0, 63.6, 12.5],
    [-43.3, -32.7, 26.0],
    [43.3, -32.7, 26.0],
    [-28.9, 28.9, 24.1],
    [28.9, 28.9, 24.1],
    [0.0, -33.0, 22.0],
], dtype=np.float64)


def camera_matrix(image_size: tuple[int, int]) -> np.ndarray:
    w, h = image_size
    f = float(max(w, h))  # a ~53 degree field of view: typical of photos; pose barely depends on it
    return np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], dtype=np.float64)


def head_pose(pts: tuple[Point, ...], image_size: tuple[int, int]) -> Pose:
    img_pts = np.asarray(pts, dtype=np.float64)[_IDX]
    cam = camera_matrix(image_size)
    # Start from a frontal face at the distance its size implies: without a guess the iterative
    # solver sometimes lands on the mirror solution (a face turned away, roll near 180 degrees).
    eye_px = float(np.linalg.norm(img_pts[3] - img_pts[2]))
    z0 = cam[0, 0] * (_MODEL[3, 0] - _MODEL[2, 0]) / max(eye_px, 1e-6)
    centre = (img_pts[0] - cam[:2, 2]) * z0 / cam[0, 0]
    rvec0, tvec0 = np.zeros((3, 1)), np.array([[centre[0]], [centre[1]], [z0]])
    ok, rvec, tvec = cv2.solvePnP(_MODEL, img_pts, cam, None, rvec0, tvec0, useExtrinsicGuess=True,
                                  flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return Pose(0.0, 0.0, roll_from_eyes(pts))
    rot, _ = cv2.Rodrigues(rvec)
    pitch, yaw, roll = _euler(rot)
    return Pose(yaw=yaw, pitch=pitch, roll=roll)


def _euler(r: np.ndarray) -> tuple[float, float, float]:
    """R = Rz(roll) @ Ry(yaw) @ Rx(pitch) decomposition, signs mapped to our conventions."""
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, -r[2, 0]))))
    pitch = math.degrees(math.atan2(r[2, 1], r[2, 2]))
    roll = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    # The nose tip sits in front of the eyes (smaller z). A positive rotation about x moves the eyes
    # up relative to the nose (the face looks down) and one about y moves them right (the face turns
    # to the image's left); our conventions count looking up and turning right as positive.
    return -pitch, -yaw, roll


def roll_from_eyes(pts: tuple[Point, ...]) -> float:
    a = np.asarray(pts)
    left, right = a[36:42].mean(0), a[42:48].mean(0)
    return math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))
