"""Verification metrics on similarity scores: ROC, AUC, EER, TAR@FAR, best-accuracy threshold.

Scores: higher means "more likely the same person"; labels: 1 same, 0 different.
"""
from __future__ import annotations

import numpy as np


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FAR, TAR) at every distinct threshold, from accepting nothing to accepting everything."""
    s, y = np.asarray(scores, float), np.asarray(labels, int)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_run = np.r_[np.diff(s) != 0, True]  # one point per distinct score (ties together)
    tp, fp = np.cumsum(y)[last_of_run], np.cumsum(1 - y)[last_of_run]
    npos, nneg = max(int(y.sum()), 1), max(int((1 - y).sum()), 1)
    return np.r_[0.0, fp / nneg], np.r_[0.0, tp / npos]


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    far, tar = roc_curve(scores, labels)
    return float(np.trapezoid(tar, far))


def tar_at_far(scores: np.ndarray, labels: np.ndarray, far_target: float) -> float:
    """Highest TAR whose FAR does not exceed the target (with N negatives, FAR moves in 1/N steps)."""
    far, tar = roc_curve(scores, labels)
    ok = far <= far_target + 1e-12
    return float(tar[ok].max()) if ok.any() else 0.0


def eer(scores: np.ndarray, labels: np.ndarray) -> float:
    """Equal error rate: where FAR equals FRR (= 1 - TAR), linearly interpolated."""
    far, tar = roc_curve(scores, labels)
    frr = 1 - tar
    i = int(np.argmax(far >= frr))
    if i == 0:
        return float(far[0])
    d0, d1 = frr[i - 1] - far[i - 1], frr[i] - far[i]
    t = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float(far[i - 1] + t * (far[i] - far[i - 1]))


def accuracy_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    return float(np.mean((np.asarray(scores) >= threshold) == (np.asarray(labels) == 1)))


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """Threshold maximising accuracy; placed midway between neighbouring scores so it generalises."""
    s = np.unique(np.asarray(scores, float))
    cands = np.r_[s[0] - 1e-6, (s[:-1] + s[1:]) / 2, s[-1] + 1e-6]
    accs = [accuracy_at(scores, labels, t) for t in cands]
    return float(cands[int(np.argmax(accs))])
