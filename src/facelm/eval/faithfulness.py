"""Faithfulness audit: is each claim an explanation makes backed by the measurements and labels?

Every claim (facelm.explain.claims) is checked against the measured FaceAnalysis of the photo it is
about and, separately, against the ground-truth labels where the record has them:
* `status` (faithfulness to the evidence): "supported", "contradicted" (a hallucination) or
  "uncheckable" (not measured, unreliable measurement, or a borderline value). Claims the text
  presents as the data set's labels are checked against the labels instead.
* `label_status`: the same claim against ground truth ("supported"/"contradicted"/None).

Tolerances follow how facelm states values (whole degrees and percent, two-decimal sharpness) plus
the slack a free-text model needs (a few degrees, +-3 years around the age model's 10th-90th
percentile range); the quality words use the explainer's own level boundaries (explain/evidence.py).
Identity-score claims (fused and per-model similarity, thresholds, margin, confidence, per-model
calls) are checked against the pair's Comparison at the precision they are stated with
(eval/faithfulness_scores.py); the Comparison is computed once per audited item.

Race claims are checked against the race head (eval/faithfulness_race.py): an unsure head backs
only a hedged statement of its top group, and race used as identity evidence is always
contradicted (facelm's rule: race is never identity evidence).

`summarise` reports per model, per claim kind and per claim group (CLAIM_GROUPS: verdict, score,
age, age_gap, gender, expression, race, pose, lighting_quality, accessories).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from ..explain import evidence as E
from ..explain.claims import Claim, extract_claims
from ..faces.types import FaceAnalysis
from ..teacher.labels import canonical_gender
from ..verify import Comparison, stated_gap
from .fairness import norm_race
from .faithfulness_race import RACE_FACE_CHECKS, check_race_identity
from .faithfulness_scores import SCORE_KINDS, check_score, pair_comparison

STATUSES = ("supported", "contradicted", "uncheckable")
AGE_SLACK_MEASURED = 3.0   # years around the model's 10th-90th percentile range
AGE_SLACK_LABEL = 5.0      # years between a claim and the labelled age (or age bin)
ANGLE_SLACK = 3.0          # degrees: rounding plus the landmark solver's precision
Result = tuple[str, str]   # (status, reason)


@dataclass(frozen=True)
class AuditItem:
    """One explanation to audit: its text and what it is about."""
    id: str
    model: str
    text: str
    images: tuple[str, ...]          # 1 (one face) or 2 (a pair)
    labels: dict[str, Any] = field(default_factory=dict)
    same: bool | None = None         # pair ground truth


@dataclass(frozen=True)
class Check:
    claim: Claim
    status: str
    reason: str
    label_status: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.claim.to_dict(), "status": self.status, "reason": self.reason,
                "label_status": self.label_status}


def _ok(cond: bool, reason: str) -> Result:
    return ("supported" if cond else "contradicted", reason)


def _banded(yes: bool, no: bool, reason: str) -> Result:
    return ("supported", reason) if yes else ("contradicted", reason) if no else (
        "uncheckable", reason + " (borderline)")


def _angle(claimed: float, measured: float, signed: bool = True) -> bool:
    m = measured if signed else abs(measured)
    return abs(claimed - m) <= max(ANGLE_SLACK, 0.25 * abs(m))


# ---- one face ----------------------------------------------------------------------------------

def _age(c: Claim, a: FaceAnalysis) -> Result:
    at = a.attributes
    lo, hi = min(at.age, at.age_range[0]), max(at.age, at.age_range[1])
    overlap = c.value[0] <= hi + AGE_SLACK_MEASURED and c.value[1] >= lo - AGE_SLACK_MEASURED
    return _ok(overlap, f"age model {at.age:.0f} (range {at.age_range[0]:.0f}-{at.age_range[1]:.0f})")


def _gender(c: Claim, a: FaceAnalysis) -> Result:
    at = a.attributes
    why = f"gender classifier {at.gender} {at.gender_confidence:.0%}"
    if c.value == at.gender:
        return "supported", why
    return ("contradicted" if at.gender_confidence >= E.LOW_GENDER_CONFIDENCE else "uncheckable",
            why)


def _expression(c: Claim, a: FaceAnalysis) -> Result:
    probs = a.attributes.expression_probs
    top = max(probs, key=probs.get)
    p = probs.get(c.value, 0.0)
    why = f"expression model: {top} {probs[top]:.0%}, {c.value} {p:.0%}"
    return _banded(c.value == top or p >= 0.25, p < 0.10, why)


def _pose(c: Claim, a: FaceAnalysis) -> Result:
    p = a.pose
    axis = c.kind.split("_")[0]
    measured = {"yaw": p.yaw, "pitch": p.pitch, "roll": p.roll, "frontal": p.yaw}[axis]
    why = f"measured {axis} {measured:+.0f}°"
    if c.kind == "frontal":
        return _banded(abs(p.yaw) < E.NEAR_FRONTAL_YAW_DEG, abs(p.yaw) > E.STRONG_YAW_DEG, why)
    if c.value == "profile":   # a side view: far more than the explainer's "strong" 30 degrees
        return _banded(abs(p.yaw) >= 45, abs(p.yaw) < E.NEAR_FRONTAL_YAW_DEG, why)
    if c.value == "turned":
        return _banded(abs(p.yaw) >= E.FRONTAL_YAW_DEG, abs(p.yaw) < 5, why)
    if c.value in ("up", "down"):
        sign = 1 if c.value == "up" else -1
        return _banded(sign * measured >= 3, sign * measured <= -5, why)
    return _ok(_angle(float(c.value), measured, signed=not c.kind.endswith("_abs")), why)


def _brightness(c: Claim, a: FaceAnalysis) -> Result:
    b, flags = a.quality.brightness, E.quality_flags(a)
    why = f"brightness {b:.0%}" + (f", flags {flags}" if flags else "")
    if isinstance(c.value, float):
        return _ok(abs(c.value - b) <= 0.02, why)
    if c.value == "dark":
        return _banded(b < 0.35 or "underexposed" in flags,
                       b > 0.5 and "underexposed" not in flags, why)
    if c.value == "bright":
        return _banded(b > 0.65 or "overexposed" in flags,
                       b < 0.5 and "overexposed" not in flags, why)
    return _banded(0.35 <= b <= 0.65, b < E.DARK_BRIGHTNESS or b > E.BRIGHT_BRIGHTNESS, why)


def _sharpness(c: Claim, a: FaceAnalysis) -> Result:
    s = a.quality.sharpness
    why = f"sharpness {s:.2f}"
    if isinstance(c.value, float):
        return _ok(abs(c.value - s) <= max(0.006, 0.1 * s), why)
    if c.value == "blurred":
        return _banded(s < E.BLURRED_SHARPNESS, s >= E.SOFT_SHARPNESS, why)
    if c.value == "soft":
        return _banded(s < E.SOFT_SHARPNESS, s >= E.SHARP_SHARPNESS, why)
    return _banded(s >= E.SOFT_SHARPNESS, s < E.BLURRED_SHARPNESS, why)


def _not_measured(c: Claim, a: FaceAnalysis) -> Result:
    return "uncheckable", f"{c.kind} is not measured by facelm's face analysis"


# Plain registry: claim kind -> check against one face's analysis.
FACE_CHECKS: dict[str, Callable[[Claim, FaceAnalysis], Result]] = {
    "age": _age, "gender": _gender, "expression": _expression,
    "yaw": _pose, "yaw_abs": _pose, "pitch": _pose, "pitch_abs": _pose, "roll": _pose,
    "frontal": _pose, "brightness": _brightness, "sharpness": _sharpness,
    "glasses": _not_measured, "occlusion": _not_measured, **RACE_FACE_CHECKS,
}
_NEEDS_ATTRIBUTES = ("age", "gender", "expression", *RACE_FACE_CHECKS)
_POSE_KINDS = ("yaw", "yaw_abs", "pitch", "pitch_abs", "roll", "frontal")


def check_face(c: Claim, a: FaceAnalysis | None) -> Result:
    if a is None:
        return "uncheckable", "no analysis of this photo"
    if c.kind in _NEEDS_ATTRIBUTES and a.attributes is None:
        return "uncheckable", "attributes were not estimated (fast analysis)"
    if c.kind in _POSE_KINDS and not E.pose_reliable(a):
        return "uncheckable", "the pose estimate is unreliable for this photo"
    return FACE_CHECKS[c.kind](c, a)


# ---- pairs -------------------------------------------------------------------------------------

def _pair_check(c: Claim, faces: Sequence[FaceAnalysis | None], cmp: Comparison | None) -> Result:
    a, b = faces
    if a is None or b is None:
        return "uncheckable", "a photo of the pair has no analysis"
    if c.kind == "verdict" or c.kind in SCORE_KINDS:
        if cmp is None:
            return "uncheckable", "no identity embeddings for this pair"
        if c.kind in SCORE_KINDS:
            return check_score(c, cmp)
        return _ok(cmp.same == c.value, f"measured verdict: {'same' if cmp.same else 'different'}")
    if c.kind in ("yaw_gap", "pitch_gap", "roll_gap"):
        axis = c.kind.split("_")[0]
        if not (E.pose_reliable(a) and E.pose_reliable(b)):
            return "uncheckable", "a pose estimate is unreliable"
        gap = stated_gap(getattr(a.pose, axis), getattr(b.pose, axis))
        return _ok(_angle(c.value, gap), f"measured {axis} gap {gap}°")
    if c.kind == "brightness_gap":
        gap = abs(a.quality.brightness - b.quality.brightness)
        return _ok(abs(c.value - gap) <= 0.02, f"measured brightness gap {gap:.0%}")
    if a.attributes is None or b.attributes is None:
        return "uncheckable", "attributes were not estimated (fast analysis)"
    if c.kind == "age_gap":
        gap = stated_gap(a.attributes.age, b.attributes.age)
        return _ok(abs(c.value - gap) <= 1, f"measured age gap {gap}")
    ga, gb = a.attributes.gender, b.attributes.gender
    return _ok((ga != gb) != c.value, f"genders {ga} and {gb}")   # gender_match


PAIR_KINDS = ("verdict", "yaw_gap", "pitch_gap", "roll_gap", "brightness_gap", "age_gap",
              "gender_match", "race_identity", *SCORE_KINDS)


def check_measured(c: Claim, faces: Sequence[FaceAnalysis | None],
                   cmp: Comparison | None = None) -> Result:
    """The claim against the analyses: the named photo, else (pairs) whichever photo backs it.

    cmp: the pair's Comparison (`pair_comparison(faces)`), which verdict and identity-score claims
    are checked against; without it they are uncheckable.
    """
    if c.kind == "race_identity":
        return check_race_identity(c)
    if c.kind in PAIR_KINDS:
        if len(faces) != 2:
            return "uncheckable", "a pair claim about a single photo"
        return _pair_check(c, faces, cmp)
    if c.subject in ("a", "b") and len(faces) == 2:
        return check_face(c, faces[0 if c.subject == "a" else 1])
    results = [check_face(c, f) for f in faces]
    for status in ("supported", "uncheckable"):  # one photo backing an unattributed claim suffices
        hit = [r for r in results if r[0] == status]
        if hit:
            return hit[0]
    return results[0]


# ---- labels ------------------------------------------------------------------------------------

_EXPR_LABEL = {"happiness": "happy", "happy": "happy", "sadness": "sad", "sad": "sad",
               "anger": "angry", "angry": "angry", "surprise": "surprise", "fear": "fear",
               "disgust": "disgust", "neutral": "neutral"}


def label_age(v: Any) -> tuple[float, float] | None:
    """UTKFace's exact ages, FairFace's bins ("20-29", "more than 70")."""
    s = str(v).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s), float(s)
    m = re.fullmatch(r"(\d+)\s*[-–]\s*(\d+)", s)
    if m:
        return float(m[1]), float(m[2])
    m = re.search(r"(\d+)", s)
    if m and re.search(r"more|over|\+|above", s):
        return float(m[1]), 100.0
    return None


def _labels_for(c: Claim, labels: dict[str, Any], n_faces: int) -> dict[str, Any]:
    if n_faces == 2 and c.subject in ("a", "b"):
        return labels.get(c.subject) or {}
    return labels if n_faces == 1 else {}


def check_label(c: Claim, labels: dict[str, Any], same: bool | None, n_faces: int) -> str | None:
    """The claim against ground truth: 'supported', 'contradicted' or None (no such label)."""
    if c.kind == "verdict":
        return None if same is None else ("supported" if c.value == same else "contradicted")
    lab = _labels_for(c, labels, n_faces)
    if c.kind == "age" and label_age(lab.get("age", "")) is not None:
        lo, hi = label_age(lab["age"])
        dist = max(0.0, c.value[0] - hi, lo - c.value[1])
        return "supported" if dist <= AGE_SLACK_LABEL else "contradicted"
    if c.kind == "gender" and (gender := canonical_gender(lab.get("gender"))):
        return "supported" if gender == c.value else "contradicted"
    if c.kind == "race" and (race := norm_race(lab.get("race"))):
        return "supported" if race == c.value else "contradicted"
    if c.kind == "expression" and str(lab.get("expression", "")).lower() in _EXPR_LABEL:
        return ("supported" if _EXPR_LABEL[str(lab["expression"]).lower()] == c.value
                else "contradicted")
    if c.kind in ("glasses", "occlusion") and isinstance(lab.get(c.kind), bool):
        return "supported" if lab[c.kind] == c.value else "contradicted"
    return None


# ---- audit -------------------------------------------------------------------------------------

def audit_item(item: AuditItem, faces: Sequence[FaceAnalysis | None] | None) -> list[Check]:
    """Extract and check every claim of one explanation. faces=None: labels only."""
    pair = len(item.images) == 2
    claims = extract_claims(item.text, pair=pair)
    # Once per item, and only when a claim needs it (cosines and the pair's differences).
    needs_cmp = pair and faces is not None and any(c.kind in ("verdict", *SCORE_KINDS)
                                                   for c in claims)
    cmp = pair_comparison(faces) if needs_cmp else None
    checks = []
    for c in claims:
        label = check_label(c, item.labels, item.same, len(item.images))
        if c.kind == "race_identity":   # a rule, not a measurement: wrong whatever was measured
            status = check_race_identity(c)
        elif c.source == "label" or faces is None:
            status = (label or "uncheckable",
                      "stated as a label" if c.source == "label" else "no analysis: labels only")
        else:
            status = check_measured(c, faces, cmp)
        checks.append(Check(c, status[0], status[1], label))
    return checks


# Claim kind -> the group a report shows it under (one mapping for every summary).
CLAIM_GROUPS: dict[str, str] = {
    "verdict": "verdict", **{k: "score" for k in SCORE_KINDS}, "age": "age", "age_gap": "age_gap",
    "gender": "gender", "gender_match": "gender", "expression": "expression",
    "race": "race", "race_confidence": "race", "race_identity": "race",
    **{k: "pose" for k in ("yaw", "yaw_abs", "pitch", "pitch_abs", "roll", "frontal", "yaw_gap",
                           "pitch_gap", "roll_gap")},
    **{k: "lighting_quality" for k in ("brightness", "brightness_gap", "sharpness")},
    "glasses": "accessories", "occlusion": "accessories",
}
GROUPS = tuple(dict.fromkeys(CLAIM_GROUPS.values()))


def claim_group(kind: str) -> str:
    """The report group of a claim kind: 'verdict', 'score', 'age', 'age_gap', 'gender',
    'expression', 'race', 'pose', 'lighting_quality' or 'accessories'."""
    try:
        return CLAIM_GROUPS[kind]
    except KeyError:
        raise ValueError(f"claim kind {kind!r} has no group: add it to CLAIM_GROUPS") from None


def tally(checks: Iterable[Check], key: Callable[[Check], str]) -> dict[str, dict[str, float]]:
    """Per key (e.g. claim kind or group): claims, counts per status and their % of those claims."""
    out: dict[str, dict[str, float]] = {}
    for ch in checks:
        t = out.setdefault(key(ch), {"claims": 0, **{s: 0 for s in STATUSES}})
        t["claims"] += 1
        t[ch.status] += 1
    for t in out.values():
        t.update({f"{s}_pct": 100.0 * t[s] / t["claims"] for s in STATUSES})
    return out


def by_kind(ch: Check) -> str:
    return ch.claim.kind


def by_group(ch: Check) -> str:
    return claim_group(ch.claim.kind)


def summarise(items: Sequence[AuditItem], checks: Sequence[list[Check]]) -> dict[str, Any]:
    """Per-model figures: claims per explanation, % supported/contradicted/uncheckable, labels,
    verdict agreement, the share of distinct texts, and `kinds` / `groups`: the same counts and
    shares per claim kind and per claim group (`tally`)."""
    models: dict[str, Any] = {}
    texts: dict[str, set[str]] = {}
    flat: dict[str, list[Check]] = {}
    for item, cs in zip(items, checks):
        m = models.setdefault(item.model, {"texts": 0, "claims": 0, **{s: 0 for s in STATUSES},
                                           "label_checked": 0, "label_contradicted": 0,
                                           "pair_texts": 0, "verdicts_stated": 0,
                                           "verdicts_agree": 0})
        m["texts"] += 1
        m["claims"] += len(cs)
        texts.setdefault(item.model, set()).add(item.text)
        flat.setdefault(item.model, []).extend(cs)
        for ch in cs:
            m[ch.status] += 1
            if ch.label_status is not None and ch.claim.kind != "verdict":
                m["label_checked"] += 1
                m["label_contradicted"] += ch.label_status == "contradicted"
        if len(item.images) == 2 and item.same is not None:
            m["pair_texts"] += 1
            verdicts = [ch for ch in cs if ch.claim.kind == "verdict"]
            m["verdicts_stated"] += bool(verdicts)
            m["verdicts_agree"] += bool(verdicts) and verdicts[0].claim.value == item.same
    for name, m in models.items():
        n = max(m["claims"], 1)
        m["claims_per_text"] = m["claims"] / max(m["texts"], 1)
        m.update({f"{s}_pct": 100.0 * m[s] / n for s in STATUSES})
        m["hallucination_rate_pct"] = m["contradicted_pct"]
        m["label_contradicted_pct"] = (100.0 * m["label_contradicted"] / m["label_checked"]
                                       if m["label_checked"] else None)
        m["verdict_agreement_pct"] = (100.0 * m["verdicts_agree"] / m["pair_texts"]
                                      if m["pair_texts"] else None)
        # A model that repeats one text for many items says little about each of them.
        m["distinct_texts"] = len(texts[name])
        m["distinct_texts_pct"] = 100.0 * m["distinct_texts"] / max(m["texts"], 1)
        m["kinds"] = tally(flat[name], by_kind)
        m["groups"] = tally(flat[name], by_group)
    return models
