"""Fairness breakdowns: verification figures and attribute accuracy per demographic group.

Where the groups come from is part of every result (`source`):
* "labels": a column of the input (pairs CSV: `gender`, `race`, `age`, or per photo `gender_a` /
  `gender_b`, ...; attribute CSV: `gender`, `race`, `age`);
* "estimated": facelm's own attribute estimates (gender, age, and race where the race head ran; a
  pair whose two photos fall in different groups is "mixed"). Estimated groups are biased by the
  very models being audited, so read them as a screening aid, not a measurement of fairness:
  reports that use estimated race print the race head's measured per-group accuracy beside them.

The gap is best minus worst over groups with at least `min_count` members ("mixed" and unknown
groups are listed but never enter the gap).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..models.evidence_mcq import AGE_BINS, EXPRESSION_WORDS, RACE_WORDS
from ..teacher.labels import canonical_gender
from .verification import roc_auc

ATTRIBUTES = ("gender", "age", "race")
# Coarse bands for grouping (enough members per group); age-group *accuracy* uses FaceXBench's nine
# (AGE_BINS, shared with the evidence model's MCQ answers).
AGE_BANDS = ((0, 20, "0-19"), (20, 40, "20-39"), (40, 60, "40-59"), (60, 200, "60+"))
NOT_A_GROUP = ("mixed", "unknown")


def age_band(age: float) -> str:
    return next(name for lo, hi, name in AGE_BANDS if lo <= age < hi)


def age_group_index(age: float) -> int:
    return next(i for i, (lo, hi) in enumerate(AGE_BINS) if lo <= age < hi)


def norm_gender(value: Any) -> str | None:
    """The teacher's reading of a gender label, so that every command reads labels alike. Numeric
    codes are not guessed: UTKFace's 0 is male, other sets use 1 for male."""
    return canonical_gender(value)


def age_label(value: Any) -> tuple[float, float] | None:
    """(lo, hi) years of an age label: an exact age (lo == hi), a bin "20-29", or an open bin
    "more than 70" / "70+" (hi = 200); None when empty or unreadable."""
    from ..teacher.labels import age_bin_bounds
    bounds = age_bin_bounds(value)
    if bounds:
        return bounds
    text = str(value if value is not None else "").strip()
    try:
        age = float(text)
    except ValueError:
        return None
    return (age, age) if np.isfinite(age) else None


def norm_race(value: Any) -> str | None:
    """A race label in the race head's five UTKFace groups (FairFace's seven mapped onto them:
    East and Southeast Asian -> Asian, Latino and Middle Eastern -> Others); None if unknown."""
    return RACE_WORDS.get(str(value or "").strip().lower())


def _label_group(value: Any, attribute: str) -> str | None:
    if value in (None, ""):
        return None
    if attribute == "age":
        span = age_label(value)
        return None if span is None else age_band((span[0] + min(span[1], span[0] + 10)) / 2)
    if attribute == "gender":
        return norm_gender(value)
    return str(value).strip()


def _estimated_group(side: Mapping[str, Any] | None, attribute: str) -> str | None:
    at = (side or {}).get("attributes")
    if not at:
        return None
    if attribute == "race":
        return at.get("race")
    return age_band(float(at["age"])) if attribute == "age" else norm_gender(at["gender"])


def _combine(ga: str | None, gb: str | None) -> str:
    if ga is None or gb is None:
        return "unknown"
    return ga if ga == gb else "mixed"


def pair_groups(records: Sequence[Mapping[str, Any]], attribute: str) -> tuple[list[str], str] | None:
    """(group per pair, source) for one attribute, or None when there is nothing to group by."""
    keys = set().union(*(r.keys() for r in records)) if records else set()
    if {f"{attribute}_a", f"{attribute}_b"} <= keys:
        return [_combine(_label_group(r.get(f"{attribute}_a"), attribute),
                         _label_group(r.get(f"{attribute}_b"), attribute)) for r in records], "labels"
    col = attribute if attribute in keys else f"input_{attribute}" if f"input_{attribute}" in keys else None
    if col:
        return [_label_group(r.get(col), attribute) or "unknown" for r in records], "labels"
    groups = [_combine(_estimated_group(r.get("a"), attribute), _estimated_group(r.get("b"), attribute))
              for r in records]
    return (groups, "estimated") if any(g not in NOT_A_GROUP for g in groups) else None


def _gap(per_group: Mapping[str, Mapping[str, Any]], metric: str, min_count: int,
         count_key: str = "pairs", higher_is_better: bool = True) -> dict[str, Any] | None:
    vals = {g: v[metric] for g, v in per_group.items()
            if g not in NOT_A_GROUP and v.get(metric) is not None and v[count_key] >= min_count}
    if len(vals) < 2:
        return None
    order = sorted(vals, key=lambda g: (vals[g], g))  # ascending; two distinct groups even on ties
    best, worst = (order[-1], order[0]) if higher_is_better else (order[0], order[-1])
    return {"metric": metric, "best": best, "worst": worst, "gap": abs(vals[best] - vals[worst])}


def verification_by_group(groups: Sequence[str], labels: np.ndarray, predictions: np.ndarray,
                          scores: np.ndarray, min_count: int = 20) -> dict[str, Any]:
    """Per group: pairs, accuracy at the k-fold thresholds, FAR, FRR, ROC AUC; gaps best-worst."""
    y, p, s = np.asarray(labels, int), np.asarray(predictions, bool), np.asarray(scores, float)
    g = np.asarray(groups, dtype=object)
    per: dict[str, dict[str, Any]] = {}
    for name in sorted(set(groups), key=lambda x: (x in NOT_A_GROUP, x)):
        m = g == name
        ym, pm = y[m], p[m]
        neg, pos = int((ym == 0).sum()), int((ym == 1).sum())
        fa, fr = int(pm[ym == 0].sum()), int((~pm[ym == 1]).sum())
        per[name] = {"pairs": int(m.sum()), "same": pos, "different": neg,
                     "accuracy": float(np.mean(pm == (ym == 1))),
                     "far": fa / neg if neg else None, "far_ci95": wilson(fa, neg) if neg else None,
                     "frr": fr / pos if pos else None, "frr_ci95": wilson(fr, pos) if pos else None,
                     "roc_auc": roc_auc(s[m], ym) if neg and pos else None}
    gaps = [x for x in (_gap(per, "accuracy", min_count), _gap(per, "roc_auc", min_count),
                        _gap(per, "far", min_count, higher_is_better=False),
                        _gap(per, "frr", min_count, higher_is_better=False)) if x]
    return {"groups": per, "gaps": gaps, "min_count": min_count,
            "far_ratio": far_ratio(g, y, p, per, min_count)}


def wilson(k: int, n: int, z: float = 1.96) -> list[float]:
    """95 % Wilson score interval of a rate k/n (sound at k = 0, where FARs usually sit)."""
    phat, d = k / n, 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / d
    half = z * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / d
    # min/max with phat: in floating point the bounds can miss phat by an ulp at k = 0 or k = n
    return [float(max(0.0, min(phat, centre - half))), float(min(1.0, max(phat, centre + half)))]


def far_ratio(g: np.ndarray, y: np.ndarray, p: np.ndarray, per: Mapping[str, Mapping[str, Any]],
              min_count: int, reps: int = 2000, seed: int = 0) -> dict[str, Any] | None:
    """Worst / best group FAR (groups with >= min_count different-person pairs), with a 95 %
    interval from resampling each group's different-person pairs; None with < 2 such groups.
    A best FAR of 0 makes the ratio unbounded: reported as None with the counts."""
    vals = {k: v["far"] for k, v in per.items() if k not in NOT_A_GROUP and v["different"] >= min_count}
    if len(vals) < 2:
        return None
    worst, best = max(vals, key=lambda k: (vals[k], k)), min(vals, key=lambda k: (vals[k], k))
    out = {"worst": worst, "best": best, "ratio": vals[worst] / vals[best] if vals[best] else None}
    rng = np.random.default_rng(seed)
    neg = {k: p[(g == k) & (y == 0)] for k in (worst, best)}
    draws = {k: rng.choice(v, (reps, len(v))).mean(1) for k, v in neg.items()}
    ok = draws[best] > 0
    ratios = draws[worst][ok] / draws[best][ok]
    out["ratio_ci95"] = ([float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))]
                         if ok.mean() >= 0.975 else None)  # too many resamples with best FAR 0
    return out


def _photo_row_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Accuracy figures over photos that have both a label and an estimate."""
    out: dict[str, Any] = {"photos": len(rows)}
    g = [(norm_gender(r["label"].get("gender")), r["est"]["gender"]) for r in rows
         if norm_gender(r["label"].get("gender"))]
    out["gender_accuracy"] = float(np.mean([a == b for a, b in g])) if g else None
    out["gender_photos"] = len(g)  # the accuracy's denominator (for its interval)
    ages = [(age_label(r["label"].get("age")), float(r["est"]["age"])) for r in rows]
    exact = [(lab[0], est) for lab, est in ages if lab is not None and lab[0] == lab[1]]
    out["age_mae"] = float(np.mean([abs(a - b) for a, b in exact])) if exact else None
    # a bin label ("20-29", FairFace) is right when the estimate falls in it; an exact one when
    # both fall in the same FaceXBench group
    hits = [age_group_index(lab[0]) == age_group_index(est) if lab[0] == lab[1] else lab[0] <= est < lab[1] + 1
            for lab, est in ages if lab is not None]
    out["age_group_accuracy"] = float(np.mean(hits)) if hits else None
    races = [(norm_race(r["label"].get("race")), r["est"].get("race")) for r in rows
             if norm_race(r["label"].get("race")) and r["est"].get("race")]
    out["race_accuracy"] = float(np.mean([a == b for a, b in races])) if races else None
    ex = [(EXPRESSION_WORDS.get(str(r["label"].get("expression", "")).lower()), r["est"]["expression"])
          for r in rows if str(r["label"].get("expression", "")).lower() in EXPRESSION_WORDS]
    ex = [(a, b) for a, b in ex if a is not None]  # "contempt" has no class in the model
    out["expression_accuracy"] = float(np.mean([a == b for a, b in ex])) if ex else None
    return out


METRICS = (("gender_accuracy", True), ("age_group_accuracy", True), ("age_mae", False),
           ("race_accuracy", True), ("expression_accuracy", True))


def attributes_by_group(rows: Iterable[Mapping[str, Any]], min_count: int = 20) -> dict[str, Any]:
    """rows: {"label": {gender, age, race, expression...}, "est": {gender, age, expression}}.

    Groups come from the labels only (source "labels"); returns per attribute the per-group figures
    and the best-worst gap of each metric."""
    rows = list(rows)
    out: dict[str, Any] = {"overall": _photo_row_metrics(rows), "by": {}, "source": "labels",
                           "min_count": min_count}
    for attribute in ATTRIBUTES:
        buckets: dict[str, list] = defaultdict(list)
        for r in rows:
            grp = _label_group(r["label"].get(attribute), attribute)
            if grp is not None:
                buckets[grp].append(r)
        if len(buckets) < 2:
            continue
        per = {k: _photo_row_metrics(v) for k, v in sorted(buckets.items())}
        gaps = [x for m, hib in METRICS if (x := _gap(per, m, min_count, "photos", hib))]
        out["by"][attribute] = {"groups": per, "gaps": gaps}
    return out
