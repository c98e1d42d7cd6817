"""Calibrate the fused verification score on LFW View 1 `view1_train`; report on `view1_test`.

Writes src/facelm/calibration.py (the shipped constants), docs/calibration/lfw_view1.json (the
record: data, method, counts, figures) and docs/calibration/lfw_view1_roc.png.
    python benchmarks/calibrate.py [--data ../shared/data/lfw-view1]
Never point it at View 2: that is the benchmark.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lfw_embeddings import DEFAULT_DATA, REPO, embeddings, read_pairs  # noqa: E402
from facelm.eval.verification import accuracy_at, best_threshold, roc_auc, roc_curve, tar_at_far  # noqa: E402

OUT_DIR = REPO / "docs" / "calibration"
CONST_FILE = REPO / "src" / "facelm" / "calibration.py"
# Both splits and the plot need the embeddings: read the ~30 MB cache file once, not three times.
_embeddings = functools.cache(embeddings)


def pair_scores(data: Path, split: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(N, 2) cosine scores [sface, dlib] and labels for the split; pairs with a failed photo are
    counted and scored as -1 (a rejection), as a deployed system would."""
    emb = _embeddings(data)
    rows = [r for r in read_pairs(data) if r["set"] == split]
    scores, labels, failed = [], [], 0
    for r in rows:
        ea, eb = emb[r["file_a"]], emb[r["file_b"]]
        if "error" in ea or "error" in eb:
            failed += 1
            scores.append([-1.0, -1.0])
        else:
            scores.append([float(np.dot(ea[m], eb[m])) for m in ("sface", "dlib")])
        labels.append(int(r["same"]))
    return np.array(scores), np.array(labels), failed


def logistic(x: np.ndarray, y: np.ndarray, iters: int = 50, bias: bool = True) -> np.ndarray:
    """Newton-Raphson logistic regression (with a bias column if asked); tiny ridge for stability."""
    X = np.hstack([x, np.ones((len(x), 1))]) if bias else x
    w = np.zeros(X.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-X @ w))
        grad = X.T @ (p - y) + 1e-6 * w
        hess = (X * (p * (1 - p))[:, None]).T @ X + 1e-6 * np.eye(len(w))
        w -= np.linalg.solve(hess, grad)
    return w


def calibrate(data: Path) -> dict:
    xtr, ytr, ftr = pair_scores(data, "view1_train")
    xte, yte, fte = pair_scores(data, "view1_test")
    lr = logistic(xtr, ytr)
    wts = lr[:2] / lr[:2].sum()
    fuse = lambda x: x @ wts  # noqa: E731
    thr = best_threshold(fuse(xtr), ytr)
    # Platt scaling centred on the threshold (no free bias): p = 0.5 exactly there, so the verdict
    # and the probability never disagree; a free bias would put p(threshold) near 0.6.
    platt = np.r_[logistic((fuse(xtr) - thr)[:, None], ytr, bias=False), 0.0]
    per_model = {}
    for i, m in enumerate(("sface", "dlib")):
        t = best_threshold(xtr[:, i], ytr)
        per_model[m] = _report(xtr[:, i], ytr, xte[:, i], yte, t)
    per_model["fused"] = _report(fuse(xtr), ytr, fuse(xte), yte, thr)
    return {
        "data": f"LFW View 1 ({data.name}/pairs.csv): fit on view1_train ({len(ytr)} pairs), "
                f"reported on view1_test ({len(yte)} pairs)",
        "method": "logistic regression on [cos_sface, cos_dlib] -> weights normalised to sum 1; "
                  "threshold = max accuracy on view1_train; Platt scaling of the fused score, centred on the threshold",
        "photos_failed": {"view1_train_pairs": ftr, "view1_test_pairs": fte},
        "weights": {"sface": float(wts[0]), "dlib": float(wts[1])},
        "threshold": float(thr), "platt": {"a": float(platt[0]), "b": float(platt[1])},
        "models": per_model,
    }


def _report(str_: np.ndarray, ytr: np.ndarray, ste: np.ndarray, yte: np.ndarray, thr: float) -> dict:
    return {"threshold": float(thr), "train_accuracy": accuracy_at(str_, ytr, thr),
            "test_accuracy": accuracy_at(ste, yte, thr), "test_auc": roc_auc(ste, yte),
            "test_tar_at_far_1e-2": tar_at_far(ste, yte, 1e-2),
            "test_tar_at_far_1e-3": tar_at_far(ste, yte, 1e-3)}


def write_constants(rec: dict) -> None:
    text = CONST_FILE.read_text()
    head = text.split("from __future__ import annotations")[0]
    body = (f"from __future__ import annotations\n\n"
            f"W_SFACE = {rec['weights']['sface']:.4f}\nW_DLIB = {rec['weights']['dlib']:.4f}\n"
            f"THRESHOLD = {rec['threshold']:.4f}\nPLATT_A = {rec['platt']['a']:.4f}\n"
            f"PLATT_B = {rec['platt']['b']:.4f}\n\n"
            "# Per-model thresholds (each alone, maximum accuracy on view1_train): used when a user asks for a\n"
            "# single model's verdict and shown beside the fused score in explanations.\n"
            f"THRESHOLD_SFACE = {rec['models']['sface']['threshold']:.4f}\n"
            f"THRESHOLD_DLIB = {rec['models']['dlib']['threshold']:.4f}\n")
    CONST_FILE.write_text(head + body)


def plot(data: Path, rec: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xte, yte, _ = pair_scores(data, "view1_test")
    w = np.array([rec["weights"]["sface"], rec["weights"]["dlib"]])
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for name, s in (("SFace", xte[:, 0]), ("dlib ResNet", xte[:, 1]), ("fused", xte @ w)):
        far, tar = roc_curve(s, yte)
        ax.plot(far, tar, label=f"{name} (AUC {roc_auc(s, yte):.4f})")
    ax.set(xscale="log", xlim=(1e-3, 1), ylim=(0.5, 1.001), xlabel="false accept rate",
           ylabel="true accept rate", title="LFW View 1 test pairs (held out)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(OUT_DIR / "lfw_view1_roc.png", dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = p.parse_args()
    rec = calibrate(args.data)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "lfw_view1.json").write_text(json.dumps(rec, indent=2) + "\n")
    write_constants(rec)
    plot(args.data, rec)
    print(f"{'model':<8} {'thr':>7} {'train acc':>9} {'test acc':>8} {'test AUC':>8} "
          f"{'TAR@1e-2':>8} {'TAR@1e-3':>8}")
    for m, r in rec["models"].items():
        print(f"{m:<8} {r['threshold']:7.4f} {r['train_accuracy']:9.4f} {r['test_accuracy']:8.4f} "
              f"{r['test_auc']:8.4f} {r['test_tar_at_far_1e-2']:8.4f} {r['test_tar_at_far_1e-3']:8.4f}")


if __name__ == "__main__":
    main()
