"""Face detection (YuNet) and the choice of the face to analyse."""
from __future__ import annotations

import math

import cv2
import numpy as np

from ..errors import NoFaceError
from . import models
from .types import Detection

# YuNet is run on a copy whose longest side is at most this; faces in larger photos are still
# hundreds of pixels wide at this scale, and detection cost grows with the pixel count.
DETECT_MAX_SIDE = 1024
MIN_IMAGE_SIDE = 16
# YuNet's coarsest feature map has a stride of 32: on inputs with a shorter side than two cells of
# it (banners such as 4000x64 after downscaling) it returns garbage boxes, so such inputs are
# padded up to this. Faces that small after downscaling could not be analysed anyway.
DETECT_MIN_SIDE = 64
# Tightly cropped faces (aligned datasets such as UTKFace) touch the borders, where YuNet's anchors
# miss them; a second pass on a padded copy finds them.
RETRY_PAD = 0.25


def detect_faces(rgb: np.ndarray, *, item: str = "image") -> list[Detection]:
    """All faces YuNet finds, in original-image coordinates, best-scored first."""
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise NoFaceError(f"image is only {w}x{h} pixels, too small to hold a face", item=item,
                          hint="use a photo where the face is at least 40 pixels wide")
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    found = _run(bgr) or _run_padded(bgr)
    return sorted(found, key=lambda d: -d.score)


def _run_padded(bgr: np.ndarray) -> list[Detection]:
    """The second pass, for faces cut by the border, on a copy padded by RETRY_PAD of its size.
    The copy is downscaled before padding (as _run would after): padding a 65000-pixel banner
    first would allocate gigabytes."""
    h, w = bgr.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / ((1 + 2 * RETRY_PAD) * max(h, w)))
    small = bgr if scale == 1.0 else cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                interpolation=cv2.INTER_AREA)
    pad = int(round(RETRY_PAD * max(small.shape[:2])))
    padded = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    found = (_shift(d, -pad, -pad, 1 / scale) for d in _run(padded))
    # A face centred in the padding is a reflection of the border, not a face in the image.
    return [d for d in found if _at_border(d, w, h)
            and 0 <= d.box[0] + d.box[2] / 2 <= w and 0 <= d.box[1] + d.box[3] / 2 <= h]


def _run(bgr: np.ndarray) -> list[Detection]:
    h, w = bgr.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    small = bgr if scale == 1.0 else cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    if min(sh, sw) < DETECT_MIN_SIDE:  # pad at the bottom/right: coordinates stay as they are
        small = cv2.copyMakeBorder(small, 0, max(0, DETECT_MIN_SIDE - sh), 0,
                                   max(0, DETECT_MIN_SIDE - sw), cv2.BORDER_CONSTANT, value=0)
    det = models.yunet()
    det.setInputSize((small.shape[1], small.shape[0]))
    _, faces = det.detect(small)
    if faces is None:
        return []
    out = []
    for f in faces:  # f: (15,) = box(4), 5 landmarks (10), score
        f = f.astype(np.float64) / np.array([scale] * 14 + [1.0])
        if not _plausible(f, w, h):
            continue
        pts = tuple((float(f[4 + 2 * i]), float(f[5 + 2 * i])) for i in range(5))
        out.append(Detection(box=tuple(float(v) for v in f[:4]), score=float(f[14]), landmarks5=pts))
    return out


def _plausible(f: np.ndarray, w: int, h: int) -> bool:
    """A finite box with its centre in the image and at most twice its size. On inputs it was not
    made for YuNet returns boxes at ~1e30 or inf, which break every later step (dlib, OpenCV)."""
    x, y, bw, bh = f[:4]
    return bool(np.all(np.isfinite(f)) and 0 < bw <= 2 * w and 0 < bh <= 2 * h
                and 0 <= x + bw / 2 <= w and 0 <= y + bh / 2 <= h)


def _at_border(d: Detection, w: int, h: int) -> bool:
    """The padded pass exists for faces cut by the border; a detection it finds well inside the
    image was missed by the first pass for a reason (textures such as coffee foam or star fields
    reach YuNet's 0.6 score there), so only faces reaching within 10% of their size of an edge count."""
    x, y, bw, bh = d.box
    mx, my = 0.1 * bw, 0.1 * bh
    return x - mx <= 0 or y - my <= 0 or x + bw + mx >= w or y + bh + my >= h


def _shift(d: Detection, dx: float, dy: float, k: float = 1.0) -> Detection:
    """Moved by (dx, dy), then scaled by k."""
    x, y, bw, bh = d.box
    return Detection(((x + dx) * k, (y + dy) * k, bw * k, bh * k), d.score,
                     tuple(((px + dx) * k, (py + dy) * k) for px, py in d.landmarks5))


def choose_face(faces: list[Detection], image_size: tuple[int, int]) -> Detection:
    """The face a user means: large and near the centre.

    Background faces in press photos are smaller and off-centre; weighting area by closeness to the
    centre picks the subject even when a bystander's face is slightly larger but at the edge.
    """
    w, h = image_size
    cx, cy, half_diag = w / 2, h / 2, math.hypot(w, h) / 2

    def weight(d: Detection) -> float:
        x, y, bw, bh = d.box
        dist = math.hypot(x + bw / 2 - cx, y + bh / 2 - cy) / half_diag
        return bw * bh * (1.0 - 0.5 * dist)

    return max(faces, key=weight)
