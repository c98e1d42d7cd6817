"""Is the face upright in the image? A photo that lost its EXIF orientation shows the face on its
side or upside down, and every model here expects it upright: the landmarks are fitted as if it
were (so the measured roll stays near 0), and the identity score drops enough to call the same
person "different". YuNet still finds such faces, with a lower score than in the upright view.

We run YuNet once on a 2x2 mosaic of the face's crop turned by 0, 90, 180 and 270 degrees and keep
the turn it scores best. On LFW View 1, UTKFace and deepface photos and their three rotations
(np.rot90): 0 of 168 upright faces flagged, 335 of the 349 detected rotated faces flagged, all with
the right turn; 8-18 ms a check, skipped for faces YuNet already scores as clearly upright.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from . import models
from .pose import head_pose
from .types import Detection, Point, Pose

# Side of each mosaic tile: the face is about a third of it (the crop has a face-sized margin).
TILE = 128
# A turned view must beat the image's own view by this much: upright faces score 0.9-0.95 and the
# rotated views of them far less, while a rotated face's upright view gains 0.05-0.25.
TURN_MARGIN = 0.05
# Upright LFW faces all score >= 0.897 in the full image; none of 239 rotated ones reached 0.91.
# Faces scoring at least this are taken as upright without the check (it costs ~10 ms).
UPRIGHT_SCORE = 0.92


def image_pose(rgb: np.ndarray, det: Detection, pts68: tuple[Point, ...],
               size: tuple[int, int]) -> Pose:
    """head_pose, with the roll measured in the image when the face is not upright in it."""
    pose = head_pose(pts68, size)
    turns, roll = upright_turns(rgb, det)
    if turns == 0:
        return pose
    return Pose(yaw=pose.yaw, pitch=pose.pitch, roll=roll, image_rotation=90 * turns)


def upright_turns(rgb: np.ndarray, det: Detection) -> tuple[int, float]:
    """(k, roll): the clockwise quarter turns the face shows in the image (np.rot90(crop, k)
    makes it upright; 0 when it is upright) and its roll in the image, in degrees clockwise."""
    if det.score >= UPRIGHT_SCORE:
        return 0, 0.0
    tile = _crop(rgb, det)
    mosaic = np.zeros((2 * TILE, 2 * TILE, 3), np.uint8)
    for k in range(4):
        r, c = divmod(k, 2)
        mosaic[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE] = np.rot90(tile, k)
    found = _best_per_tile(mosaic)
    k = max(range(4), key=lambda i: found[i][0])
    if k == 0 or found[k][0] - found[0][0] <= TURN_MARGIN:
        return 0, 0.0
    (rx, ry), (lx, ly) = found[k][1]  # YuNet: the subject's right eye (image left), then left eye
    upright_roll = math.degrees(math.atan2(ly - ry, lx - rx))
    return k, (90.0 * k + upright_roll + 180.0) % 360.0 - 180.0


def _crop(rgb: np.ndarray, det: Detection) -> np.ndarray:
    """A square BGR tile around the face with a face-sized margin, black outside the image.
    The part inside the image is resized on its own: a big face's full-size square would cost
    tens of MB."""
    h, w = rgb.shape[:2]
    x, y, bw, bh = det.box
    side = 3.0 * max(bw, bh)
    x0, y0 = x + bw / 2 - side / 2, y + bh / 2 - side / 2
    k = TILE / side
    sx0, sy0 = max(0, int(x0)), max(0, int(y0))
    sx1, sy1 = min(w, int(x0 + side)), min(h, int(y0 + side))
    tile = np.zeros((TILE, TILE, 3), np.uint8)
    tx0, ty0 = max(0, round((sx0 - x0) * k)), max(0, round((sy0 - y0) * k))
    tw, th = min(TILE - tx0, round((sx1 - sx0) * k)), min(TILE - ty0, round((sy1 - sy0) * k))
    if tw > 0 and th > 0 and sx1 > sx0 and sy1 > sy0:  # channels swapped after the resize: cheaper
        step = max(1, int(side // (4 * TILE)))  # big faces: every step-th pixel, then area-average
        part = cv2.resize(np.ascontiguousarray(rgb[sy0:sy1:step, sx0:sx1:step]), (tw, th),
                          interpolation=cv2.INTER_AREA)
        tile[ty0:ty0 + th, tx0:tx0 + tw] = part[:, :, ::-1]
    return tile


def _best_per_tile(mosaic: np.ndarray) -> list[tuple[float, tuple[Point, Point]]]:
    """Per tile, the best score of a face centred in it and that face's eyes (in tile coords)."""
    best: list[tuple[float, tuple[Point, Point]]] = [(0.0, ((0.0, 0.0), (1.0, 0.0)))] * 4
    yunet = models.yunet()
    yunet.setInputSize((mosaic.shape[1], mosaic.shape[0]))
    _, faces = yunet.detect(mosaic)
    for f in [] if faces is None else faces:
        if not np.all(np.isfinite(f)):
            continue
        cx, cy = f[0] + f[2] / 2, f[1] + f[3] / 2
        r, c = int(cy // TILE), int(cx // TILE)
        # Only the face at the tile's centre (a neighbour tile's face could bleed across the seam).
        if not (0 <= r < 2 and 0 <= c < 2) or max(abs(cx - (c + 0.5) * TILE),
                                                   abs(cy - (r + 0.5) * TILE)) > TILE / 4:
            continue
        k = 2 * r + c
        if f[14] > best[k][0]:
            eyes = ((float(f[4]), float(f[5])), (float(f[6]), float(f[7])))
            best[k] = (float(f[14]), eyes)
    return best
