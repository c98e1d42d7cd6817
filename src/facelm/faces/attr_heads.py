"""facelm's trained attribute heads: gender, age and race from `attr_features`, in NumPy.

The weights ship in the package (weights/attributes-v1.npz, ~1 MB) with the measured model card
(per-group accuracy on utkface-dev) stored beside them; `benchmarks/train_attributes.py`
reproduces them. Probabilities are temperature-calibrated on photos held back from fitting.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

GENDERS = ("female", "male")
RACES = ("White", "Black", "Asian", "Indian", "Others")    # UTKFace's five groups
AGE_MAX = 100                                               # the age head's bins: 0..100 years
_MIN_HALF_RANGE = 2.0
SHIPPED = Path(__file__).with_name("weights") / "attributes-v1.npz"


@dataclass(frozen=True)
class HeadWeights:
    mean: np.ndarray
    std: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    heads: Mapping[str, tuple[np.ndarray, np.ndarray]]     # gender, race, age: (weight, bias)
    temperatures: Mapping[str, float]
    feature_version: int


@dataclass(frozen=True)
class HeadEstimate:
    gender: str
    gender_confidence: float
    age: float
    age_range: tuple[float, float]     # 10th-90th percentile of the age distribution, >= +-2 years
    race: str
    race_confidence: float
    race_probs: dict[str, float]


def save_weights(w: HeadWeights, path: Path, card: Mapping[str, Any]) -> None:
    arrays = {"mean": w.mean, "std": w.std, "w1": w.w1, "b1": w.b1, "w2": w.w2, "b2": w.b2}
    for name, (wt, b) in w.heads.items():
        arrays[f"{name}_w"], arrays[f"{name}_b"] = wt, b
    meta = {"temperatures": dict(w.temperatures), "feature_version": w.feature_version, "card": card}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)


def load_weights(path: Path) -> tuple[HeadWeights, dict[str, Any]]:
    with np.load(path) as d:
        meta = json.loads(str(d["meta"]))
        heads = {k: (d[f"{k}_w"], d[f"{k}_b"]) for k in ("gender", "race", "age")}
        w = HeadWeights(mean=d["mean"], std=d["std"], w1=d["w1"], b1=d["b1"], w2=d["w2"], b2=d["b2"],
                        heads=heads, temperatures=meta["temperatures"],
                        feature_version=int(meta["feature_version"]))
    return w, meta["card"]


@functools.cache
def shipped() -> tuple[HeadWeights, dict[str, Any]]:
    """The packaged heads and their model card (loaded once per process)."""
    return load_weights(SHIPPED)


def _gelu(x: np.ndarray) -> np.ndarray:
    """torch's GELU(approximate="tanh"), the one the heads were trained with."""
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))


def logits(w: HeadWeights, x: np.ndarray) -> dict[str, np.ndarray]:
    """Raw (uncalibrated) logits of each head for features x: (N, D) or (D,)."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    h = (x - w.mean) / w.std
    h = _gelu(h @ w.w1.T.astype(np.float64) + w.b1)
    h = _gelu(h @ w.w2.T.astype(np.float64) + w.b2)
    return {k: h @ wt.T.astype(np.float64) + b for k, (wt, b) in w.heads.items()}


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def probabilities(w: HeadWeights, x: np.ndarray) -> dict[str, np.ndarray]:
    """Calibrated probabilities: gender (N, 2), race (N, 5), age (N, AGE_MAX + 1)."""
    z = logits(w, x)
    return {"gender": _softmax(z["gender"] / w.temperatures["gender"]),
            "race": _softmax(z["race"] / w.temperatures["race"]), "age": _softmax(z["age"])}


def estimate(features: np.ndarray, weights: HeadWeights | None = None) -> HeadEstimate:
    """The heads' reading of one face's feature vector."""
    w = weights or shipped()[0]
    p = {k: v[0] for k, v in probabilities(w, features).items()}
    years = np.arange(AGE_MAX + 1, dtype=np.float64)
    age = float(p["age"] @ years)
    cdf = np.cumsum(p["age"])
    lo, hi = float(np.searchsorted(cdf, 0.1)), float(np.searchsorted(cdf, 0.9))
    lo, hi = max(0.0, min(lo, age - _MIN_HALF_RANGE)), min(float(AGE_MAX), max(hi, age + _MIN_HALF_RANGE))
    g, r = int(np.argmax(p["gender"])), int(np.argmax(p["race"]))
    return HeadEstimate(gender=GENDERS[g], gender_confidence=float(p["gender"][g]), age=age,
                        age_range=(lo, hi), race=RACES[r], race_confidence=float(p["race"][r]),
                        race_probs={name: float(v) for name, v in zip(RACES, p["race"])})


def card_line() -> str:
    """The race head's measured accuracy, printed beside every use of estimated race."""
    card = shipped()[1]
    groups = ", ".join(f"{k} {v:.0%}" for k, v in card["race_by_group"].items())
    return (f"race groups are ESTIMATED by facelm's race head (accuracy on {card['photos']} "
            f"{card['measured_on']} photos: {card['overall']['race_accuracy']:.0%}; {groups}; "
            "confusion matrix in docs/attributes.md)")
