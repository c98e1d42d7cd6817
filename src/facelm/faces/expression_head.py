"""facelm's expression head: the fer model's 7 probabilities refined with the face's landmark shape
and the attribute features, fitted on LFW's expression labels (identity-disjoint splits).

Shipped only where it beats the fer model on held-out identities (docs/attributes.md); without
its weights file the fer model's own probabilities stand.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .types import EXPRESSIONS

SHIPPED = Path(__file__).with_name("weights") / "expression-v1.npz"


def identity_split(identity: str) -> str:
    """The head's identity-disjoint split of LFW's expression labels, 60/20/20 by name hash:
    "train", "val" or "test". Benchmarks that score expression keep to "test"."""
    h = int(hashlib.sha1(identity.encode()).hexdigest(), 16) % 10
    return "train" if h < 6 else "val" if h < 8 else "test"


def normalised_landmarks(pts68: Sequence[tuple[float, float]]) -> np.ndarray:
    """The 68 points in the face's own frame: origin between the eyes, x along the eye line,
    unit = the inter-ocular distance (so size, position and in-plane roll cancel out)."""
    a = np.asarray(pts68, dtype=np.float64)
    left, right = a[36:42].mean(0), a[42:48].mean(0)
    centre, axis = (left + right) / 2, right - left
    scale = max(float(np.linalg.norm(axis)), 1e-6)
    c, s = axis / scale
    rot = np.array([[c, s], [-s, c]])
    return (((a - centre) @ rot.T) / scale).reshape(-1)


def expression_features(fer_probs: Mapping[str, float], pts68: Sequence[tuple[float, float]],
                        attr: np.ndarray) -> np.ndarray:
    """[fer probabilities (7, EXPRESSIONS order), normalised landmarks (136), attribute features]."""
    fer = np.array([fer_probs[k] for k in EXPRESSIONS])
    return np.concatenate([fer, normalised_landmarks(pts68), np.asarray(attr, dtype=np.float64)]).astype(np.float32)


@functools.cache
def shipped() -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """(weights, card) of the packaged head, or None where none ships."""
    if not SHIPPED.is_file():
        return None
    with np.load(SHIPPED) as d:
        meta = json.loads(str(d["meta"]))
        return {k: d[k] for k in d.files if k != "meta"}, meta


def save(path: Path, weights: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, meta=np.array(json.dumps(meta, sort_keys=True)), **weights)


def probabilities(w: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Softmax over EXPRESSIONS of a standardised linear model (N, 7)."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    z = ((x - w["mean"]) / w["std"]) @ w["w"].T.astype(np.float64) + w["b"]
    z = z / float(w["temperature"])
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def refine(fer_probs: dict[str, float], pts68: Sequence[tuple[float, float]],
           attr: np.ndarray) -> dict[str, float]:
    """The head's expression probabilities for one face (the fer model's where no head ships)."""
    head = shipped()
    if head is None:
        return fer_probs
    p = probabilities(head[0], expression_features(fer_probs, pts68, attr))[0]
    return {k: float(v) for k, v in zip(EXPRESSIONS, p)}
