"""Fairness of verification on LFW View 1 (issue 13, items 4-5): the female/male FAR gap shown with
intervals, what explains it, and group-agnostic steps measured against accuracy. Measures only.

Groups are *estimated* per photo by the shipped attribute heads (heads-v1; LFW has no labels); a
pair is in a group when both photos are. FAR per group with 95 % Wilson intervals, at the shipped
threshold and at the thresholds where the overall FAR is 1 % and 5 % (3,200 pairs hold only 1-2
false accepts at the shipped threshold: too few to compare groups). Cause: a least-squares fit of
the standardised impostor score on "both female" plus one covariate at a time (face size,
sharpness, |yaw|, estimated age, chip brightness L*, chip redness a*): a cause would shrink the
female coefficient. Steps (no group labels anywhere): cohort shift / adaptive score normalisation
against utkface-train faces, fair score normalisation (FSN, Terhoerst et al. 2020: k-means clusters
of a cohort, per-cluster threshold offsets), attribute-difference fusion, and within-class
whitening (WCCN) fitted on view1_train. Each is refitted inside every fold of the 10-fold count.

Needs the caches of benchmarks/verify_tta.py (.cache/tta-lfw-view1.npz), expression_data.py
(.cache/expr/lfw.npz: attribute features of the LFW photos) and attribute_data.py
(.cache/attr/train.npz: the cohort).
    python benchmarks/verify_fairness.py [--out docs/benchmarks/verify_fairness.md]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibrate import logistic  # noqa: E402
from verify_tta import _unit as unit  # noqa: E402
from lfw_embeddings import CACHE, DEFAULT_DATA, REPO, read_pairs  # noqa: E402
from facelm import calibration, score_norm  # noqa: E402
from facelm.eval.protocol import assign_folds  # noqa: E402
from facelm.eval.fairness import verification_by_group, wilson  # noqa: E402
from facelm.eval.verification import accuracy_at, best_threshold  # noqa: E402
from facelm.faces import attr_heads  # noqa: E402
from facelm.gallery import fused_vectors  # noqa: E402
from facelm.faces.attr_features import BLOCKS, FEATURE_DIM  # noqa: E402

Scorer = Callable[[np.ndarray], np.ndarray]   # training mask -> (pairs, k) score columns
# The shipped FSN: chosen for the smallest accuracy cost among the FSN rows that close the gap.
FSN_CLUSTERS, FSN_FAR = 25, 1e-2


def load(data: Path) -> dict[str, np.ndarray]:
    """Per pair: indices, label, split; per photo: unit embeddings, quality, heads-v1 estimates."""
    z = np.load(CACHE / f"tta-{data.name}.npz")
    idx = {f: i for i, f in enumerate(z["files"])}
    rows = read_pairs(data)
    e = np.load(CACHE / "expr" / f"{data.name.split('-')[0]}.npz")
    x = e["x"][:, e["x"].shape[1] - FEATURE_DIM:]          # the attribute block ends each row
    p = attr_heads.probabilities(attr_heads.shipped()[0], x)
    n = len(z["files"])
    est = {"gender": np.full(n, None, object), "race": np.full(n, None, object),
           "age": np.full(n, np.nan), "L": np.full(n, np.nan), "a*": np.full(n, np.nan)}
    rows_e = np.array([idx[f] for f in e["files"]])
    est["gender"][rows_e] = np.array(attr_heads.GENDERS)[p["gender"].argmax(1)]
    est["race"][rows_e] = np.array(attr_heads.RACES)[p["race"].argmax(1)]
    est["age"][rows_e] = p["age"] @ np.arange(p["age"].shape[1])
    c0 = BLOCKS["colour"][0]
    est["L"][rows_e], est["a*"][rows_e] = x[:, c0], x[:, c0 + 1]
    return {"a": np.array([idx[r["file_a"]] for r in rows]), "b": np.array([idx[r["file_b"]] for r in rows]),
            "y": np.array([int(r["same"]) for r in rows]),
            "train": np.array([r["set"] == "view1_train" for r in rows]),
            "S": unit(z["sface"][:, 0].astype(np.float64)), "D": unit(z["dlib"][:, 0].astype(np.float64)),
            "size": np.log(z["face_size"]), "sharp": np.log1p(z["sharpness"]), "yaw": z["abs_yaw"], **est}


def pair_groups(d: dict[str, np.ndarray], key: str) -> np.ndarray:
    ga, gb = d[key][d["a"]], d[key][d["b"]]
    return np.array(["unknown" if u is None or v is None else u if u == v else "mixed"
                     for u, v in zip(ga, gb)], object)


def cosines(d: dict[str, np.ndarray], S: np.ndarray | None = None, D: np.ndarray | None = None) -> np.ndarray:
    S, D = d["S"] if S is None else S, d["D"] if D is None else D
    return np.c_[np.sum(S[d["a"]] * S[d["b"]], 1), np.sum(D[d["a"]] * D[d["b"]], 1)]


def fuse(x: np.ndarray, y: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """calibrate.py's fusion for two columns (weights summing to 1); a plain logit for more."""
    w = logistic(x[fit], y[fit])
    return x @ (w[:2] / w[:2].sum()) if x.shape[1] == 2 else x @ w[:-1] + w[-1]


def cv_errors(d: dict[str, np.ndarray], scorer: Scorer, folds: int = 10) -> int:
    """Errors of the 10-fold protocol on all pairs, the scorer and fusion refitted per fold."""
    y, errs = d["y"], 0
    fold = assign_folds(y, n_folds=folds)     # the stratified folds verify_tta.py counts with
    for k in range(folds):
        f = fold == k
        fit = ~f
        s = fuse(scorer(fit), y, fit)
        errs += int(np.sum((s[f] >= best_threshold(s[fit], y[fit])) != (y[f] == 1)))
    return errs


def cohort_scorer(d: dict[str, np.ndarray], cohort: dict[str, np.ndarray], k: int, mode: str) -> Scorer:
    """Each cosine minus (shift) or standardised by (asnorm) the two faces' top-k cohort means."""
    stats = []
    for m in ("S", "D"):
        top = -np.sort(-(d[m] @ cohort[m].T), axis=1)[:, :k]
        stats.append((top.mean(1), top.std(1)))
    x, a, b = cosines(d), d["a"], d["b"]

    def score(_fit: np.ndarray) -> np.ndarray:
        cols = [(x[:, i] - 0.5 * (mu[a] + mu[b])) if mode == "shift"
                else 0.5 * ((x[:, i] - mu[a]) / sd[a] + (x[:, i] - mu[b]) / sd[b])
                for i, (mu, sd) in enumerate(stats)]
        return np.stack(cols, 1)
    return score


def kmeans(v: np.ndarray, k: int, seed: int = 0, iters: int = 30) -> np.ndarray:
    c = v[np.random.default_rng(seed).choice(len(v), k, replace=False)]
    for _ in range(iters):
        lab = score_norm.nearest(v, c)
        c = np.stack([v[lab == j].mean(0) if np.any(lab == j) else c[j] for j in range(k)])
    return c


def fit_fsn(cohort: dict[str, np.ndarray], k: int, far: float, pairs: int = 400_000) -> tuple[np.ndarray, np.ndarray]:
    """FSN on the shipped fused score: k-means centroids of the cohort (utkface-train: distinct
    people) and each cluster's impostor threshold at `far` less the global one."""
    vc = fused_vectors(cohort["S"], cohort["D"]).astype(np.float64)
    cent = kmeans(vc, k)
    lab = score_norm.nearest(vc, cent)
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(vc), pairs), rng.integers(0, len(vc), pairs)
    i, j = i[i != j], j[i != j]
    sc = np.sum(vc[i] * vc[j], 1)
    off = np.array([np.quantile(np.r_[sc[lab[i] == c], sc[lab[j] == c]], 1 - far) for c in range(k)])
    return cent, off - np.quantile(sc, 1 - far)


def fsn_scores(d: dict[str, np.ndarray], fsn: score_norm.Fsn) -> np.ndarray:
    """The product's FSN score (facelm.score_norm) of every pair."""
    off = fsn.offsets[score_norm.nearest(fused_vectors(d["S"], d["D"]), fsn.centroids)]
    return cosines(d) @ np.array([calibration.W_SFACE, calibration.W_DLIB]) - 0.5 * (off[d["a"]] + off[d["b"]])


def fsn_scorer(d: dict[str, np.ndarray], cohort: dict[str, np.ndarray], k: int, far: float) -> Scorer:
    s = fsn_scores(d, score_norm.Fsn(*fit_fsn(cohort, k, far), 0.0, 0.0, {}))
    return lambda _fit: np.c_[s, s]      # already fused: both columns equal, weights sum to 1


def write_fsn(d: dict[str, np.ndarray], cohort: dict[str, np.ndarray], k: int, far: float, path: Path) -> None:
    """Fit FSN, its threshold (max accuracy) and Platt slope on view1_train, and ship it."""
    cent, off = fit_fsn(cohort, k, far)
    s, y, tr = fsn_scores(d, score_norm.Fsn(cent, off, 0.0, 0.0, {})), d["y"], d["train"]
    thr = round(best_threshold(s[tr], y[tr]), 4)      # stated to 4 places, as calibration.py's
    slope = round(float(logistic((s[tr] - thr)[:, None], y[tr], bias=False)[0]), 4)
    card = {"method": "fair score normalisation (Terhoerst et al. 2020) of the fused score",
            "cohort": f"utkface-train, {len(cohort['S'])} faces", "clusters": k, "far": far,
            "weights": [calibration.W_SFACE, calibration.W_DLIB], "kmeans_seed": 0,
            "threshold_fit": "view1_train, max accuracy", "view1_test_accuracy": accuracy_at(s[~tr], y[~tr], thr),
            "view1_10fold_errors": cv_errors(d, lambda _f: np.c_[s, s]), "pairs": int(len(y))}
    score_norm.save(path, score_norm.Fsn(cent, off, float(thr), slope, card))
    print(f"-> {path}: threshold {thr:.4f}, slope {slope:.2f}, {card}", file=sys.stderr)


def wccn_scorer(d: dict[str, np.ndarray], shrink: float) -> Scorer:
    """Within-class whitening from the fitting pairs' same-person differences, then cosine."""
    def score(fit: np.ndarray) -> np.ndarray:
        g = fit & (d["y"] == 1)
        cols = []
        for m in ("S", "D"):
            diff = d[m][d["a"][g]] - d[m][d["b"][g]]
            sw = diff.T @ diff / (2 * len(diff))
            sw = (1 - shrink) * sw + shrink * np.trace(sw) / len(sw) * np.eye(len(sw))
            val, vec = np.linalg.eigh(sw)
            e = unit(d[m] @ (vec @ np.diag(val ** -0.5) @ vec.T).T)
            cols.append(np.sum(e[d["a"]] * e[d["b"]], 1))
        return np.stack(cols, 1)
    return score


def attribute_scorer(d: dict[str, np.ndarray]) -> Scorer:
    """The two cosines plus |difference| of estimated P(female), log-age and race distribution."""
    fem = np.array([1.0 if g == "female" else 0.0 if g == "male" else 0.5 for g in d["gender"]])
    age = np.log1p(np.nan_to_num(d["age"], nan=30.0))
    x = np.c_[cosines(d), np.abs(fem[d["a"]] - fem[d["b"]]), np.abs(age[d["a"]] - age[d["b"]]),
              (d["race"][d["a"]] != d["race"][d["b"]]).astype(float)]
    return lambda _fit: x


def far_at(s: np.ndarray, y: np.ndarray, groups: np.ndarray, thr: float, mask: np.ndarray) -> dict[str, tuple[int, int]]:
    """Per group (both photos in it): (false accepts, different-person pairs) where mask holds."""
    out = {}
    for g in ("female", "male"):
        m = mask & (groups == g) & (y == 0)
        out[g] = (int(np.sum(s[m] >= thr)), int(m.sum()))
    return out


def _rate(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {k / n:.2%} [{lo:.2%}, {hi:.2%}]"


def _ratio(f: dict[str, tuple[int, int]]) -> str:
    (kf, nf), (km, nm) = f["female"], f["male"]
    return f"{(kf / nf) / (km / nm):.2f}" if km else "unbounded (male 0)"


def step_row(name: str, d: dict[str, np.ndarray], scorer: Scorer, gender: np.ndarray) -> list[str]:
    """One step: test accuracy at the train threshold, 10-fold errors, the impostor gap and the
    female/male FAR ratio at overall FAR 1 % and 5 % (all pairs)."""
    y, tr = d["y"], d["train"]
    s = fuse(scorer(tr), y, tr)
    thr = best_threshold(s[tr], y[tr])
    imp = y == 0
    sd = s[imp].std()
    gap = (s[imp & (gender == "female")].mean() - s[imp & (gender == "male")].mean()) / sd
    cells = [name, f"{accuracy_at(s[~tr], y[~tr], thr):.4f}", str(cv_errors(d, scorer)), f"{gap:+.2f}"]
    for far in (0.01, 0.05):
        f = far_at(s, y, gender, float(np.quantile(s[imp], 1 - far)), np.ones(len(y), bool))
        cells.append(f"{f['female'][0]}/{f['female'][1]} vs {f['male'][0]}/{f['male'][1]} ({_ratio(f)})")
    f = far_at(s, y, gender, thr, ~tr)
    cells.append(f"{f['female'][0]} / {f['male'][0]}")
    return cells


def cause_rows(d: dict[str, np.ndarray], s: np.ndarray, gender: np.ndarray) -> list[list[str]]:
    """Female coefficient (impostor score in sd units) alone and with each covariate."""
    a, b = d["a"], d["b"]
    pair_cov = {"min log face size": np.minimum(d["size"][a], d["size"][b]),
                "min log sharpness": np.minimum(d["sharp"][a], d["sharp"][b]),
                "max |yaw|": np.maximum(d["yaw"][a], d["yaw"][b]),
                "mean estimated age": (d["age"][a] + d["age"][b]) / 2,
                "mean chip brightness L*": (d["L"][a] + d["L"][b]) / 2,
                "mean chip redness a*": (d["a*"][a] + d["a*"][b]) / 2}
    m = (d["y"] == 0) & np.isin(gender, ["female", "male"])
    m &= np.all([np.isfinite(v) for v in pair_cov.values()], axis=0)
    fem = (gender[m] == "female").astype(float)
    t = (s[m] - s[m].mean()) / s[m].std()

    def fit(cols: list[np.ndarray]) -> tuple[float, float]:
        X = np.c_[fem, *[(c - c.mean()) / c.std() for c in cols], np.ones(len(t))]
        beta, *_ = np.linalg.lstsq(X, t, rcond=None)
        se = np.sqrt(np.diag(np.linalg.inv(X.T @ X)) * np.var(t - X @ beta))
        return float(beta[0]), float(se[0])
    rows = [["none", "", "%+.2f ± %.2f" % fit([])]]
    for name, v in pair_cov.items():
        diff = v[m][fem == 1].mean() - v[m][fem == 0].mean()
        rows.append([name, f"{diff:+.3g}", "%+.2f ± %.2f" % fit([v[m]])])
    rows.append(["all six", "", "%+.2f ± %.2f" % fit([v[m] for v in pair_cov.values()])])
    return rows


def md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def shipped_rows(d: dict[str, np.ndarray], s: np.ndarray, key: str, thr: float) -> list[list[str]]:
    """Per estimated group at the shipped threshold: test pairs and all 3,200 pairs."""
    g, y, out = pair_groups(d, key), d["y"], []
    for name, mask in (("view1_test", ~d["train"]), ("all View 1", np.ones(len(y), bool))):
        rep = verification_by_group(list(g[mask]), y[mask], s[mask] >= thr, s[mask])
        for grp, r in rep["groups"].items():
            if grp in ("unknown",) or not r["different"]:
                continue
            k, n = round(r["far"] * r["different"]), r["different"]
            kr, nr = round(r["frr"] * r["same"]) if r["same"] else 0, r["same"]
            out.append([name, grp, _rate(k, n), _rate(kr, nr) if nr else "-"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks" / "verify_fairness.md")
    ap.add_argument("--write-fsn", action="store_true", help=f"fit and write {score_norm.SHIPPED.name} first")
    args = ap.parse_args()
    d = load(args.data)
    t = np.load(CACHE / "attr" / "train.npz")["x"].astype(np.float64)
    cohort = {"S": unit(t[:, slice(*BLOCKS["sface"])]), "D": unit(t[:, slice(*BLOCKS["dlib"])])}
    if args.write_fsn:
        write_fsn(d, cohort, FSN_CLUSTERS, FSN_FAR, score_norm.SHIPPED)
    gender = pair_groups(d, "gender")
    shipped = cosines(d) @ np.array([calibration.W_SFACE, calibration.W_DLIB])
    steps: list[tuple[str, Scorer]] = [("shipped fused score", lambda _f: cosines(d))]
    steps += [(f"cohort {m} k={k}", cohort_scorer(d, cohort, k, m)) for m in ("shift", "asnorm") for k in (10, 50)]
    steps += [(f"FSN K={k} at FAR {far:g}", fsn_scorer(d, cohort, k, far)) for k in (10, 25) for far in (1e-2, 1e-3)]
    steps += [("FSN, the shipped fsn-v1", lambda _f, s=fsn_scores(d, score_norm.load(score_norm.SHIPPED)): np.c_[s, s])]
    steps += [("attribute differences in the fusion", attribute_scorer(d))]
    steps += [(f"WCCN shrink {a}", wccn_scorer(d, a)) for a in (0.9, 0.5)]
    lines = ["# Verification fairness on LFW View 1 (estimated groups)", "",
             f"`python benchmarks/verify_fairness.py` — {len(d['y'])} pairs; groups from heads-v1.", "",
             f"## At the shipped threshold ({calibration.THRESHOLD})", "", "FAR and FRR with 95 % Wilson intervals.", ""]
    for key in ("gender", "race"):
        lines += md_table(["pairs", f"{key} (estimated)", "FAR", "FRR"],
                          shipped_rows(d, shipped, key, calibration.THRESHOLD)) + [""]
    fsn = score_norm.load(score_norm.SHIPPED)
    lines += [f"With FACELM_SCORE_NORM=fsn-v1 (its threshold {fsn.threshold:.4f}):", ""]
    lines += md_table(["pairs", "gender (estimated)", "FAR", "FRR"],
                      shipped_rows(d, fsn_scores(d, fsn), "gender", fsn.threshold)) + [""]
    lines += ["## What explains the female impostor scores", "",
              "Coefficient of 'both female' on the standardised impostor score (± s.e.), alone and with one covariate.", ""]
    lines += md_table(["covariate", "female − male mean", "female coefficient"], cause_rows(d, shipped, gender)) + [""]
    lines += ["## Steps without group labels", "",
              "10-fold errors: all pairs, everything refitted on 9 folds. Gap: female − male mean impostor score "
              "in impostor sd. FAR at overall 1 % / 5 %: female vs male false accepts (ratio). Last column: "
              "view1_test false accepts at the train-fitted threshold, female / male.", ""]
    rows = []
    for name, scorer in steps:
        rows.append(step_row(name, d, scorer, gender))
        print(" | ".join(rows[-1]), file=sys.stderr)
    lines += md_table(["step", "test acc", "10-fold errors (of 3,200)", "gap", "FAR 1 %: F vs M",
                       "FAR 5 %: F vs M", "test FA F / M"], rows)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"-> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
