"""Flip test-time augmentation (TTA) and quality-aware fusion for the two identity models, measured
on LFW View 1 (issue 13, item 4). No product code changes: this only measures.

For every View 1 photo: SFace on the 112x112 aligned crop and on its mirror image, dlib's ResNet on
the 150x150 chip and on its mirror (the crop/chip is flipped, the face is not re-detected), cached
in .cache/tta-<data>.npz. Per variant, fitted on view1_train exactly as benchmarks/calibrate.py
does and reported on view1_test: accuracy at the train-fitted threshold, ROC AUC, TAR@FAR, and the
10-fold protocol accuracy (facelm.eval.protocol) on the test pairs and on all 3,200 View 1 pairs
(fusion refitted per fold). Then the per-face cost of the flips on one thread.
    python benchmarks/verify_tta.py [--data ../shared/data/lfw-view1] [--workers 2] [--timing 60]
    python benchmarks/verify_tta.py --limit 50 --workers 1   # smoke test on the first 50 photos
"""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from typing import Callable

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibrate import logistic  # noqa: E402
from lfw_embeddings import CACHE, DEFAULT_DATA, read_pairs  # noqa: E402
from facelm.eval.protocol import assign_folds, kfold_accuracy  # noqa: E402
from facelm.eval.verification import accuracy_at, best_threshold, roc_auc, tar_at_far  # noqa: E402

MODELS = ("sface", "dlib")
QUALITY = ("face_size", "sharpness", "det_score", "abs_yaw")


def _crops(path: str) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """The aligned SFace crop and dlib chip exactly as analyze(fast=True) cuts them, plus the
    quality measures a quality-aware fusion could use (all already computed by the analysis)."""
    import dlib
    from facelm.faces import landmarks, models, pose, quality
    from facelm.faces.align import align_face
    from facelm.faces.detect import choose_face, detect_faces
    from facelm.imageio import load_rgb
    rgb = load_rgb(path, name=path)
    faces = detect_faces(rgb, item=path)
    if not faces:
        raise ValueError("no face")
    size = (int(rgb.shape[1]), int(rgb.shape[0]))
    det = choose_face(faces, size)
    rect = landmarks.dlib_rect(det)
    pts68 = landmarks.landmarks68(rgb, rect)
    left, right = landmarks.eye_centres(pts68)
    q = quality.measure(rgb, det, float(np.linalg.norm(right - left)))
    chip = dlib.get_face_chip(np.ascontiguousarray(rgb), models.dlib5()(rgb, rect), 150, 0.25)
    meta = {"face_size": q.face_size_px, "sharpness": q.sharpness, "det_score": float(det.score),
            "abs_yaw": abs(pose.head_pose(pts68, size).yaw)}
    return align_face(rgb, det), chip, meta


def _embed(crop: np.ndarray, chip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(2, 128) SFace and (2, 128) dlib: row 0 the original, row 1 the mirror image."""
    from facelm.faces import models
    sf = np.vstack([models.sface().feature(np.ascontiguousarray(c)) for c in (crop, crop[:, ::-1])])
    dl = models.dlib_resnet().descriptors(np.stack([chip, chip[:, ::-1]]))
    return sf, dl


def _photo(path: str) -> tuple[np.ndarray, np.ndarray, dict[str, float]] | str:
    try:
        crop, chip, meta = _crops(path)
        return (*_embed(crop, chip), meta)
    except Exception as exc:  # noqa: BLE001 - one photo's failure, scored as a rejection
        return f"{type(exc).__name__}: {exc}"


def extract(data: Path, files: list[str], workers: int, cache: Path, photo: Any = None,
            what: str = "embedding (x2)") -> dict[str, np.ndarray]:
    """{"files", "ok", "sface" (N,2,128), "dlib" (N,2,128), quality arrays}; cached, and recomputed
    when the photo list differs from the cache's. `photo` (default: this script's 5-point
    alignment) maps a path to (sface, dlib[, quality]) or an error string."""
    if cache.exists():
        z = dict(np.load(cache))
        if list(z["files"]) == files:
            return z
    n = len(files)
    out = {"files": np.array(files), "ok": np.zeros(n, bool),
           "sface": np.zeros((n, 2, 128), np.float32), "dlib": np.zeros((n, 2, 128), np.float32),
           **{k: np.full(n, np.nan) for k in QUALITY}}
    with ProcessPoolExecutor(workers) as pool:
        jobs = pool.map(photo or _photo, [str(data / f) for f in files], chunksize=8)
        for i, res in enumerate(tqdm(jobs, total=n, desc=what)):
            if isinstance(res, str):
                print(f"  {files[i]}: {res}", file=sys.stderr)
                continue
            out["ok"][i] = True
            out["sface"][i], out["dlib"][i] = res[0], res[1]
            for k in QUALITY if len(res) > 2 else ():
                out[k][i] = res[2][k]
    cache.parent.mkdir(exist_ok=True)
    np.savez_compressed(cache.with_suffix(".tmp.npz"), **out)
    cache.with_suffix(".tmp.npz").replace(cache)
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def variants(z: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-photo unit embeddings: plain (the original only) and flip (sum of the unit embeddings
    of original and mirror, renormalised)."""
    out = {}
    for m in MODELS:
        e = _unit(z[m].astype(np.float64))
        out[f"{m}"] = e[:, 0]
        out[f"{m}+flip"] = _unit(e[:, 0] + e[:, 1])
    return out


def pair_table(z: dict[str, np.ndarray], rows: list[dict]) -> dict[str, np.ndarray]:
    """Per pair: cosine per embedding variant (-1 when either photo failed, as calibrate.py does),
    the label, and the pair's worse quality value (min size/sharpness/score, max |yaw|)."""
    index = {f: i for i, f in enumerate(z["files"])}
    a = np.array([index[r["file_a"]] for r in rows])
    b = np.array([index[r["file_b"]] for r in rows])
    ok = z["ok"][a] & z["ok"][b]
    out = {name: np.where(ok, np.sum(e[a] * e[b], axis=1), -1.0) for name, e in variants(z).items()}
    out["label"] = np.array([int(r["same"]) for r in rows])
    for k in QUALITY:
        worse = np.maximum if k == "abs_yaw" else np.minimum
        out[k] = np.nan_to_num(worse(z[k][a], z[k][b]), nan=0.0)
    return out


def _metrics(train: np.ndarray, ytr: np.ndarray, test: np.ndarray, yte: np.ndarray,
             folds: np.ndarray) -> dict[str, float]:
    thr = best_threshold(train, ytr)
    kf = kfold_accuracy(test, yte, folds)
    return {"thr": thr, "train_acc": accuracy_at(train, ytr, thr), "test_acc": accuracy_at(test, yte, thr),
            "auc": roc_auc(test, yte), "tar2": tar_at_far(test, yte, 1e-2),
            "tar3": tar_at_far(test, yte, 1e-3), "kf_mean": kf["accuracy_mean"], "kf_std": kf["accuracy_std"]}


def fused(tr: dict, te: dict, sface: str, dlib: str) -> tuple[np.ndarray, np.ndarray, str]:
    """calibrate.py's fusion: logistic regression on the two cosines, weights normalised to sum 1."""
    xtr, xte = (np.c_[d[sface], d[dlib]] for d in (tr, te))
    w = logistic(xtr, tr["label"])[:2]
    w = w / w.sum()
    return xtr @ w, xte @ w, f"w_sface={w[0]:.3f}"


def quality_fused(tr: dict, te: dict, sface: str, dlib: str, q: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Quality-aware fusion: the logistic model also sees each cosine times the pair's worse quality
    value (standardised on train; log for size and sharpness), so the weight of each model can move
    with quality. The score is the logit; its threshold is fitted on train like the others."""
    def raw(d: dict) -> np.ndarray:
        return np.log(np.maximum(d[q], 1e-3)) if q in ("face_size", "sharpness") else d[q]
    mu, sd = float(raw(tr).mean()), float(raw(tr).std() or 1.0)

    def feats(d: dict) -> np.ndarray:
        v = (raw(d) - mu) / sd
        return np.c_[d[sface], d[dlib], d[sface] * v, d[dlib] * v, v]
    w = logistic(feats(tr), tr["label"])
    return feats(tr) @ w[:-1] + w[-1], feats(te) @ w[:-1] + w[-1], f"q={q}"


Scorer = Callable[[dict, dict], tuple[np.ndarray, np.ndarray, str]]


def scorers() -> list[tuple[str, Scorer]]:
    """Each variant as (name, fit-on-train-and-score-both)."""
    out: list[tuple[str, Scorer]] = []
    for name in ("sface", "sface+flip", "dlib", "dlib+flip"):
        out.append((name, lambda tr, te, n=name: (tr[n], te[n], "")))
    for s in ("sface", "sface+flip"):
        for d in ("dlib", "dlib+flip"):
            out.append((f"fused {s} + {d}", lambda tr, te, s=s, d=d: fused(tr, te, s, d)))
    for d in ("dlib", "dlib+flip"):
        for q in QUALITY:
            out.append((f"quality-fused sface + {d}",
                        lambda tr, te, d=d, q=q: quality_fused(tr, te, "sface", d, q)))
    return out


def cv_all(fn: Scorer, pairs: dict[str, np.ndarray], folds: np.ndarray) -> tuple[float, float, int]:
    """10-fold accuracy over all View 1 pairs (train + test), everything (fusion weights included)
    refitted on 9 folds: 3,200 pairs resolve differences that 1,000 cannot (1 pair = 0.1 point)."""
    y, accs, errors = pairs["label"], [], 0
    for k in np.unique(folds):
        te = folds == k
        a, b, _ = fn({n: v[~te] for n, v in pairs.items()}, {n: v[te] for n, v in pairs.items()})
        thr = best_threshold(a, y[~te])
        accs.append(accuracy_at(b, y[te], thr))
        errors += int(np.sum((b >= thr) != (y[te] == 1)))
    return float(np.mean(accs)), float(np.std(accs)), errors


def evaluate(data: Path, z: dict[str, np.ndarray]) -> list[tuple[str, dict[str, float], str]]:
    have = set(z["files"])  # all of them, except in a --limit smoke test
    rows = [r for r in read_pairs(data) if r["file_a"] in have and r["file_b"] in have]
    split = {s: [r for r in rows if r["set"] == s] for s in ("view1_train", "view1_test")}
    tr, te = (pair_table(z, split[s]) for s in ("view1_train", "view1_test"))
    every = pair_table(z, rows)
    folds = assign_folds(te["label"], [r.get("fold") for r in split["view1_test"]])
    folds_all = assign_folds(every["label"])
    out = []
    for name, fn in scorers():
        a, b, note = fn(tr, te)
        m = _metrics(a, tr["label"], b, te["label"], folds)
        m["cv_mean"], m["cv_std"], m["cv_errors"] = cv_all(fn, every, folds_all)
        out.append((name, m, note))
    return out


def print_table(results: list[tuple[str, dict[str, float], str]]) -> None:
    print("| variant | threshold | train acc | test acc | ROC AUC | TAR@FAR=1e-2 | TAR@FAR=1e-3 "
          "| 10-fold acc (test) | 10-fold acc, all 3,200 (errors) | note |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r, note in results:
        print(f"| {name} | {r['thr']:.4f} | {r['train_acc']:.4f} | {r['test_acc']:.4f} | {r['auc']:.4f} "
              f"| {r['tar2']:.4f} | {r['tar3']:.4f} | {r['kf_mean']:.4f} ± {r['kf_std']:.4f} "
              f"| {r['cv_mean']:.4f} ± {r['cv_std']:.4f} ({r['cv_errors']}) | {note} |")


def _ms(fn: Callable[[], object], reps: int) -> float:
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) * 1000 / reps


def timing(data: Path, files: list[str], n: int, reps: int = 3) -> None:
    """ms per face on one thread (onnxruntime sessions are single-threaded): each network on the
    original alone vs on original + mirror. Interleaved per face, so load changes hit both."""
    from facelm.faces import analyze, models
    sface, resnet = models.sface(), models.dlib_resnet()
    # analyze(fast=True) is the whole identity-only cost per face: the denominator of the slowdown.
    cost = {k: 0.0 for k in ("analyze(fast)", "sface", "sface x2", "dlib", "dlib batch 2", "dlib x2")}
    done = 0
    for f in files[:n]:
        try:
            crop, chip, _ = _crops(str(data / f))
        except ValueError:
            continue
        cost["analyze(fast)"] += _ms(lambda: analyze(str(data / f), fast=True), reps)
        flip, chip2 = np.ascontiguousarray(crop[:, ::-1]), np.stack([chip, chip[:, ::-1]])
        cost["sface"] += _ms(lambda: sface.feature(crop), reps)
        cost["sface x2"] += _ms(lambda: (sface.feature(crop), sface.feature(flip)), reps)
        cost["dlib"] += _ms(lambda: resnet.descriptors(chip[None]), reps)
        cost["dlib batch 2"] += _ms(lambda: resnet.descriptors(chip2), reps)
        cost["dlib x2"] += _ms(lambda: (resnet.descriptors(chip2[:1]), resnet.descriptors(chip2[1:])), reps)
        done += 1
    print(f"\nPer-face network cost, one thread, {done} faces x {reps} repeats (ms):")
    for k, v in cost.items():
        print(f"  {k:<14} {v / max(done, 1):6.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--limit", type=int, default=0, help="only the first N photos (a smoke test)")
    p.add_argument("--timing", type=int, default=60, help="faces to time (0: skip)")
    args = p.parse_args()
    files = sorted({r[k] for r in read_pairs(args.data) for k in ("file_a", "file_b")})
    if args.limit:
        files = files[:args.limit]
    cache = CACHE / f"tta-{args.data.name}{f'-{args.limit}' if args.limit else ''}.npz"
    z = extract(args.data, files, args.workers, cache)
    print(f"{len(files)} photos, {int((~z['ok']).sum())} failed\n")
    print_table(evaluate(args.data, z))
    if args.timing:
        timing(args.data, files, args.timing)


if __name__ == "__main__":
    main()
