"""The LFW verification protocol on similarity scores: k-fold accuracy, ROC AUC, EER, TAR@FAR.

* k-fold (10 by default, as LFW View 2): for each fold, the accuracy-maximising threshold is chosen
  on the other k-1 folds and applied to the held-out fold; accuracy is reported as mean ± std over
  the folds (population std, ddof=0, as the common LFW evaluation scripts compute it).
* ROC AUC, EER and TAR at FAR 1e-2 / 1e-3 are computed once on all pairs pooled (no threshold is
  fitted for them). With N negative pairs FAR moves in steps of 1/N: TAR@FAR=1e-3 needs >= 1,000
  negatives to mean anything, and the report says when there are fewer.
* Folds come from the pairs' `fold` column when every row has one; otherwise they are assigned
  deterministically: each class (same / different) is cut into k contiguous blocks in file order,
  so folds are balanced and, for LFW-style files sorted by name, mostly identity-disjoint.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputFormatError
from .verification import accuracy_at, best_threshold, eer, roc_auc, roc_curve, tar_at_far

FAR_TARGETS = (1e-2, 1e-3)


def assign_folds(labels: Sequence[int], given: Sequence[str | None] | None = None,
                 n_folds: int = 10) -> np.ndarray:
    """Fold index (0..k-1) per pair: from `given` when every pair has one, else stratified blocks."""
    y = np.asarray(labels, int)
    if given is not None and any(g not in (None, "") for g in given):
        if any(g in (None, "") for g in given):
            missing = sum(g in (None, "") for g in given)
            raise InputFormatError(f"{missing} of {len(given)} pairs have an empty fold", item="fold column",
                                   hint="give every pair a fold, or drop the column to have folds assigned")
        names = sorted(set(given), key=lambda s: (len(str(s)), str(s)))
        if len(names) < 2:
            raise InputFormatError("needs at least 2 distinct folds", item="fold column")
        index = {n: i for i, n in enumerate(names)}
        return np.array([index[g] for g in given])
    if n_folds < 2:
        raise InputFormatError(f"must be at least 2, got {n_folds}", item="--folds")
    folds = np.zeros(len(y), int)
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        for k, block in enumerate(np.array_split(idx, n_folds)):
            folds[block] = k
    return folds


def kfold_accuracy(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> dict[str, Any]:
    """Threshold chosen on the other folds, accuracy on each held-out fold; per-pair predictions."""
    s, y, f = np.asarray(scores, float), np.asarray(labels, int), np.asarray(folds, int)
    accs, thrs = [], []
    pred = np.zeros(len(s), bool)
    for k in np.unique(f):
        test = f == k
        thr = best_threshold(s[~test], y[~test])
        thrs.append(thr)
        accs.append(accuracy_at(s[test], y[test], thr))
        pred[test] = s[test] >= thr
    return {"accuracy_mean": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
            "fold_accuracies": [float(a) for a in accs], "fold_thresholds": [float(t) for t in thrs],
            "fold_sizes": [int((f == k).sum()) for k in np.unique(f)], "predictions": pred}


def verification_metrics(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray,
                         far_targets: Sequence[float] = FAR_TARGETS) -> dict[str, Any]:
    """All protocol figures for one score (k-fold accuracy + pooled ROC figures)."""
    y = np.asarray(labels, int)
    if y.min() == y.max():
        raise InputFormatError("all pairs have the same label; ROC figures need both same and "
                               "different pairs", item="same column")
    out = kfold_accuracy(scores, y, folds)
    out.update(roc_auc=roc_auc(scores, y), eer=eer(scores, y),
               tar_at_far={f"{t:g}": tar_at_far(scores, y, t) for t in far_targets},
               pairs=int(len(y)), same=int(y.sum()), different=int((1 - y).sum()))
    out["far_resolution"] = 1.0 / max(out["different"], 1)
    return out


def run_protocol(score_sets: Mapping[str, np.ndarray], labels: np.ndarray, folds: np.ndarray,
                 far_targets: Sequence[float] = FAR_TARGETS) -> dict[str, dict[str, Any]]:
    """verification_metrics for each named score (e.g. fused, sface, dlib)."""
    return {name: verification_metrics(s, labels, folds, far_targets) for name, s in score_sets.items()}


def public(results: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The results without per-pair arrays, ready for JSON."""
    return {name: {k: v for k, v in r.items() if k != "predictions"} for name, r in results.items()}


def roc_plot(score_sets: Mapping[str, np.ndarray], labels: np.ndarray, path: Any,
             title: str = "ROC") -> None:
    """TAR against FAR on a log FAR axis, one curve per score, AUC in the legend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    nneg = max(int((np.asarray(labels) == 0).sum()), 1)
    lowest = 1.0
    for name, s in score_sets.items():
        far, tar = roc_curve(s, labels)
        ax.plot(np.maximum(far, 0.5 / nneg), tar, label=f"{name} (AUC {roc_auc(s, labels):.4f})")
        lowest = min(lowest, float(tar[np.searchsorted(far, 0.5 / nneg, side="right") - 1]))
    for t in FAR_TARGETS:
        ax.axvline(t, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlim(0.5 / nneg, 1)
    ax.set_ylim(max(0.0, np.floor(lowest * 20) / 20 - 0.05), 1.005)  # zoom on the visible range
    ax.set_xlabel(f"false accept rate (log; {nneg} different-person pairs)")
    ax.set_ylabel("true accept rate")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
