"""Opt-in fair score normalisation (FSN) of the fused verification score: FACELM_SCORE_NORM=fsn-v1.

Female impostor pairs score higher than male ones under both identity networks (LFW View 1: +0.28
impostor standard deviations, not explained by face size, sharpness, pose, age, brightness or
redness; docs/benchmarks/verify_fairness.md), so at one threshold women are falsely accepted more
often. FSN (Terhoerst et al., IJCB 2020) needs no group labels: the faces of a cohort of distinct
people (utkface-train) are clustered in the fused embedding space, each cluster gets the offset of
its own impostor threshold from the global one at the same FAR, and a pair's score loses half of
each face's cluster offset. Faces in a crowded region of the space (where impostors score high)
are held to a higher bar. The threshold and Platt slope are refitted on LFW View 1 train pairs.
It closes the mean gap (+0.28 -> -0.02 sd) at a small accuracy cost (10-fold: 18 errors of 3,200
against 16), which is why it is opt-in. Refit (to float32 rounding, 3e-8, from the caches the script names):
`python benchmarks/verify_fairness.py --write-fsn`.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from . import calibration as cal
from .errors import FaceLMError

ENV = "FACELM_SCORE_NORM"
MODES = ("none", "fsn-v1")
SHIPPED = Path(__file__).parent / "faces" / "weights" / "fsn-v1.npz"


@dataclass(frozen=True)
class Fsn:
    centroids: np.ndarray        # (K, 256): clusters of [sqrt(W_SFACE) e_sface, sqrt(W_DLIB) e_dlib]
    offsets: np.ndarray          # (K,): cluster impostor threshold minus the global one
    threshold: float             # of the normalised score, max accuracy on view1_train
    platt_a: float
    card: Mapping[str, Any]


def mode() -> str:
    """The normalisation FACELM_SCORE_NORM names (default none)."""
    name = os.environ.get(ENV, "").strip() or MODES[0]
    if name not in MODES:
        raise FaceLMError(f"{ENV}={name!r} is not a score normalisation", hint=f"use one of: {', '.join(MODES)}")
    return name


def save(path: Path, f: Fsn) -> None:
    np.savez_compressed(path, centroids=f.centroids.astype(np.float32), offsets=f.offsets.astype(np.float32),
                        threshold=f.threshold, platt_a=f.platt_a, card=json.dumps(dict(f.card), sort_keys=True))


@functools.cache
def load(path: Path = SHIPPED) -> Fsn:
    try:
        z = np.load(path)
        card = json.loads(str(z["card"]))
        centroids, offsets = z["centroids"].astype(np.float64), z["offsets"].astype(np.float64)
        threshold, platt_a = float(z["threshold"]), float(z["platt_a"])
    except Exception as exc:  # noqa: BLE001 - missing, truncated or foreign file: one clear line
        raise FaceLMError(f"the score normalisation file cannot be read ({type(exc).__name__}: {exc})",
                          item=str(path), hint=f"reinstall facelm, or unset {ENV} to verify without it") from exc
    if card.get("weights") != [cal.W_SFACE, cal.W_DLIB]:  # fitted in another fused space
        raise FaceLMError(f"{path.name} was fitted for fusion weights {card.get('weights')}, not the "
                          f"calibrated {[cal.W_SFACE, cal.W_DLIB]}", item=str(path),
                          hint="refit it: python benchmarks/verify_fairness.py --write-fsn")
    return Fsn(centroids, offsets, threshold, platt_a, card)


def nearest(v: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (squared Euclidean) for each row of v."""
    return np.argmax(np.atleast_2d(v) @ centroids.T - 0.5 * np.sum(centroids ** 2, 1), axis=1)


def offset(f: Fsn, emb: Mapping[str, Sequence[float]]) -> float:
    """Half of this is taken off every score the face takes part in: its cluster's offset."""
    from .gallery import fused_vectors   # the space where a dot product is the fused score
    return float(f.offsets[nearest(fused_vectors(emb["sface"], emb["dlib"]), f.centroids)[0]])


def operating_point() -> tuple[float, float, Fsn | None]:
    """(threshold, Platt slope, FSN or None) for the normalisation in force."""
    if mode() == "none":
        return cal.THRESHOLD, cal.PLATT_A, None
    f = load()
    return f.threshold, f.platt_a, f


def normalise(score: float, a: Mapping[str, Sequence[float]], b: Mapping[str, Sequence[float]],
              f: Fsn | None) -> float:
    """The fused score, less half of each face's cluster offset under FSN; unchanged without."""
    return score if f is None else score - 0.5 * (offset(f, a) + offset(f, b))
