"""Dual-tier explanations of a verification decision (the VerLM task), from measured evidence.

The concise tier (~50 words) gives the verdict, how strong it is and the main reasons; the detailed
tier (~120 words) walks through each aspect and says which differences bear on identity (identity
embeddings; landmark geometry when both faces are near-frontal) and which are nuisance factors
(pose, lighting, focus, age gap, expression) that change appearance without changing who it is.
Per-model verdicts are worded "match"/"non-match" so that the text never contains the opposite of
its own verdict phrase.
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any

from .. import calibration as cal
from ..verify import Comparison
from . import evidence as E
from .aspects import face_key
from .hedges import flag_clauses
from .phrasing import (age_years, capitalise, deg, join_list, pct, pick, px, rng_for, sentences,
                       share, signed_deg, sim, word_count, years)

# Confidence bands for the stated verdict (calibrated probability of that verdict).
STRONG_CONFIDENCE = 0.95
MODERATE_CONFIDENCE = 0.75
# A margin under 0.02 is within the two-decimal precision at which similarities are stated (and
# within the score change a small pose or lighting change can cause): never a "strong" call.
BORDERLINE_MARGIN = 0.02
# Landmark-ratio distance of same-person LFW pairs: median 0.075; different people: median 0.11
# (160 View 1 test pairs). Below/above these the geometry leans one way; between, it is neutral.
GEOMETRY_CLOSE = 0.07
GEOMETRY_FAR = 0.12
# Gaps large enough to visibly change a face's appearance (and its embedding).
YAW_GAP_NOTABLE = 15.0
PITCH_ROLL_GAP_NOTABLE = 10.0
BRIGHTNESS_GAP_NOTABLE = 0.15
SHARPNESS_RATIO_NOTABLE = 3.0
AGE_GAP_NOTABLE = 10.0
EXPRESSION_DISTANCE_NOTABLE = 0.5

# The detailed tier aims at ~120 words (VerLM's comprehensive tier averages 122); when many
# quality problems pile up, secondary notes are dropped to stay under this.
DETAILED_MAX_WORDS = 160


@dataclass(frozen=True)
class PairExplanation:
    """A verification decision explained at two levels, with the evidence the texts state."""
    concise: str
    detailed: str
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def explain_pair(cmp: Comparison, *, seed: int = 0) -> PairExplanation:
    """Explain a Comparison: a ~50-word concise summary and a ~120-word detailed account.

    Every number in the texts is a rounded value from `cmp` (and is recorded in `evidence`); a gap
    is the one in `cmp.differences`, which the JSON and the web table show. The wording is chosen
    deterministically from `seed` and the measurements (never the file's path), so the CLI and the
    HTTP API word the same pair identically.
    """
    ev = pair_evidence(cmp)
    key = ("pair", *face_key(cmp.a), *face_key(cmp.b), round(cmp.score, 3))
    concise = _concise(cmp, ev, rng_for(seed, "concise", *key))
    detailed = _detailed(cmp, ev, rng_for(seed, "detailed", *key))
    return PairExplanation(concise=concise, detailed=detailed, evidence=ev)


def strength(cmp: Comparison) -> str:
    """'strong', 'moderate' or 'weak': calibrated confidence, margin and model agreement.

    The confidence already reflects the margin through the Platt fit; a score within
    BORDERLINE_MARGIN of the threshold, or models that disagree, still cap the call at 'moderate'.
    """
    borderline = abs(cmp.score - cmp.threshold) < BORDERLINE_MARGIN
    if cmp.confidence >= STRONG_CONFIDENCE and cmp.models_agree and not borderline:
        return "strong"
    if cmp.confidence >= MODERATE_CONFIDENCE:
        return "moderate"
    return "weak"


def _poses_reliable(cmp: Comparison) -> bool:
    return E.pose_reliable(cmp.a) and E.pose_reliable(cmp.b)


def pose_reason(cmp: Comparison) -> str | None:
    """Which pose difference is notable: 'yaw_gap', 'turned', 'pitch_gap', 'roll_gap' or None."""
    d = cmp.differences
    if not _poses_reliable(cmp):
        return None
    if d.yaw_gap > YAW_GAP_NOTABLE:
        return "yaw_gap"
    if d.max_abs_yaw > E.STRONG_YAW_DEG:
        return "turned"
    if max(d.pitch_gap, d.roll_gap) > PITCH_ROLL_GAP_NOTABLE:
        return "pitch_gap" if d.pitch_gap >= d.roll_gap else "roll_gap"
    return None


def nuisance_factors(cmp: Comparison) -> list[str]:
    """Notable differences that change appearance but not identity, largest effect first."""
    d, out = cmp.differences, []
    if pose_reason(cmp):
        out.append("pose")
    flags = set(E.quality_flags(cmp.a)) | set(E.quality_flags(cmp.b))
    if d.brightness_gap > BRIGHTNESS_GAP_NOTABLE or flags & {"underexposed", "overexposed"}:
        out.append("lighting")
    if d.sharpness_ratio > SHARPNESS_RATIO_NOTABLE or flags & {"blurred", "low_resolution"}:
        out.append("focus")
    if d.age_gap is not None and d.age_gap > AGE_GAP_NOTABLE:
        out.append("age")
    if (d.expression_distance is not None and d.expression_a != d.expression_b
            and d.expression_distance > EXPRESSION_DISTANCE_NOTABLE):
        out.append("expression")
    return out


def geometry_reading(cmp: Comparison) -> str:
    """'close', 'far', 'neutral', or 'pose' when the faces are not both near-frontal."""
    if not (E.near_frontal(cmp.a) and E.near_frontal(cmp.b)):
        return "pose"
    g = cmp.differences.geometry_distance
    return "close" if g < GEOMETRY_CLOSE else "far" if g > GEOMETRY_FAR else "neutral"


def gender_conflict(cmp: Comparison) -> bool:
    """Both faces confidently given different genders, at ages where the heads read gender well
    (the measured table): a cue against one identity."""
    aa, ab = cmp.a.attributes, cmp.b.attributes
    return (aa is not None and ab is not None and aa.gender != ab.gender
            and min(aa.gender_confidence, ab.gender_confidence) >= 0.9
            and not E.gender_unreliable(cmp.a) and not E.gender_unreliable(cmp.b))


def pair_evidence(cmp: Comparison) -> dict[str, Any]:
    """The measured values the two texts state, rounded as stated (JSON-serialisable). Gaps are
    copied from `cmp.differences` (already rounded as stated), so evidence and JSON agree."""
    d = cmp.differences
    return {
        "same": bool(cmp.same), "probability": round(cmp.probability, 4),
        "confidence": round(cmp.confidence, 4), "strength": strength(cmp),
        "score": round(cmp.score, 3), "threshold": round(cmp.threshold, 3),
        "margin": round(cmp.score - cmp.threshold, 3),
        "scores": {k: round(v, 3) for k, v in cmp.scores.items()},
        "model_thresholds": {"sface": cal.THRESHOLD_SFACE, "dlib": cal.THRESHOLD_DLIB},
        "model_verdicts": {k: bool(v) for k, v in cmp.model_verdicts.items()},
        "models_agree": bool(cmp.models_agree),
        "age_gap": d.age_gap,
        "gender_match": d.gender_match, "gender_conflict": gender_conflict(cmp),
        "expression_a": d.expression_a, "expression_b": d.expression_b,
        "expression_distance": d.expression_distance,
        "poses_reliable": _poses_reliable(cmp), "pose_reason": pose_reason(cmp),
        "yaw_gap": d.yaw_gap, "pitch_gap": d.pitch_gap, "roll_gap": d.roll_gap,
        "max_abs_yaw": d.max_abs_yaw, "brightness_gap": d.brightness_gap,
        "sharpness_ratio": d.sharpness_ratio, "min_interocular_px": d.min_interocular_px,
        "geometry_distance": d.geometry_distance, "geometry_largest": list(d.geometry_largest),
        "geometry_reading": geometry_reading(cmp),
        "nuisance": nuisance_factors(cmp),
        "a": E.face_evidence(cmp.a), "b": E.face_evidence(cmp.b),
    }


# ---- concise tier --------------------------------------------------------------------------------

_VERDICT = {
    (True, "strong"): ("These two photos very likely show the same person",
                       "The evidence strongly indicates the same person in both photos"),
    (True, "moderate"): ("These two photos probably show the same person",
                         "The photos most likely show the same person"),
    (True, "weak"): ("These photos may show the same person, but the call is uncertain",
                     "A tentative verdict: the same person, on weak evidence"),
    (False, "strong"): ("These two photos very likely show different people",
                        "The evidence strongly indicates two different people"),
    (False, "moderate"): ("These two photos probably show different people",
                          "The photos most likely show different people"),
    (False, "weak"): ("These photos may show different people, but the call is uncertain",
                      "A tentative verdict: different people, on weak evidence"),
}


def _models_clause(cmp: Comparison, rng: random.Random) -> str:
    s = {k: sim(v) for k, v in cmp.scores.items()}
    if cmp.models_agree:
        # The models can agree with each other yet not with the fused decision (own thresholds).
        word = "a match" if all(cmp.model_verdicts.values()) else "a non-match"
        return pick(rng, ("both identity models call it {w} (SFace {a}, dlib {b})",
                          "SFace ({a}) and dlib ({b}) both call it {w}"), w=word, a=s["sface"],
                    b=s["dlib"])
    call = {k: "a match" if v else "a non-match" for k, v in cmp.model_verdicts.items()}
    return (f"the identity models disagree: SFace ({s['sface']}) calls it {call['sface']}, "
            f"dlib ({s['dlib']}) {call['dlib']}")


_NUISANCE_SHORT = {
    "lighting": "lighting (brightness gap {bgap})", "age": "apparent age (gap {age_gap})",
    "expression": "expression ({ea} vs {eb})",
}
_QUALITY_NAMES = {"blurred": "blur", "low_resolution": "low resolution"}


def _focus_short(ev: dict[str, Any]) -> str:
    """Either a sharpness mismatch between the photos, or blur/low resolution in them."""
    flags = [f for f in ("low_resolution", "blurred") if f in ev["a"]["flags"] + ev["b"]["flags"]]
    if ev["sharpness_ratio"] > SHARPNESS_RATIO_NOTABLE or not flags:
        return f"sharpness (one photo {ev['sharpness_ratio']:.1f}× sharper)"
    return f"image quality ({join_list([_QUALITY_NAMES[f] for f in flags])})"


def _pose_short(ev: dict[str, Any]) -> str:
    """Name the pose difference that made pose a nuisance factor, with its stated value."""
    reason = ev["pose_reason"]
    if reason == "turned":
        return f"head pose (one face turned {ev['max_abs_yaw']}°)"
    return f"head pose ({reason.split('_')[0]} gap {ev[reason]}°)"


def _nuisance_text(ev: dict[str, Any], factors: list[str]) -> str:
    values = {"bgap": share(ev["brightness_gap"]), "age_gap": years(ev["age_gap"]),
              "ea": ev["expression_a"], "eb": ev["expression_b"]}
    special = {"pose": _pose_short, "focus": _focus_short}
    return join_list([special[f](ev) if f in special else _NUISANCE_SHORT[f].format(**values)
                      for f in factors])


def _concise_reasons(cmp: Comparison, ev: dict[str, Any], rng: random.Random) -> str:
    geo, parts = ev["geometry_reading"], []
    if cmp.same and geo == "close":
        parts.append(f"Facial proportions also match closely (landmark ratios differ by "
                     f"{share(ev['geometry_distance'])} on average).")
    elif not cmp.same and (geo == "far" or ev["gender_conflict"]):
        cues = [c for c, on in (("facial proportions differ", geo == "far"),
                                ("the estimated genders differ", ev["gender_conflict"])) if on]
        parts.append(capitalise(join_list(cues)) + ", supporting this.")
    # Two nuisance factors at most, one when an intrinsic cue already took a sentence: ~50 words.
    nuis = ev["nuisance"][:1 if parts else 2]
    if nuis and cmp.same:
        plural = len(nuis) > 1
        parts.append(pick(rng, ("{N} {v} nuisance factor{s}, not identity.",
                                "Nuisance factors such as {n} do not bear on identity."),
                          N=capitalise(_nuisance_text(ev, nuis)), n=_nuisance_text(ev, nuis),
                          v="are" if plural else "is a", s="s" if plural else ""))
    elif nuis:
        parts.append(pick(rng, ("{N} may explain part of the low score.",
                                "Nuisance factors, {n}, can also lower the score."),
                          N=capitalise(_nuisance_text(ev, nuis)), n=_nuisance_text(ev, nuis)))
    elif not _rotated_photos(cmp):  # else _rotation_caveat names the confound
        parts.append(pick(rng, ("No large pose, lighting or quality difference confounds this.",
                                "Pose, lighting and image quality are comparable, so the scores are "
                                "a fair test.")))
    return sentences(*parts)


def _verdict_sentence(cmp: Comparison, ev: dict[str, Any], rng: random.Random) -> str:
    if cmp.confidence < 0.5:
        # A caller's own threshold (or the Platt offset right at the threshold) can decide against
        # the calibrated probability: state the decision, and that the probability disagrees.
        said = "the same person" if cmp.same else "different people"
        return (f"At this threshold the photos count as {said}, but the call is uncertain "
                f"(the other outcome's calibrated probability: {pct(1 - cmp.confidence)}).")
    return (pick(rng, _VERDICT[(bool(cmp.same), ev["strength"])])
            + f" ({pct(cmp.confidence)} confidence).")


def _rotated_photos(cmp: Comparison) -> str:
    """'photo A', 'photo B', 'photos A and B' or '' for faces turned in the image."""
    turned = [x for x, face in (("A", cmp.a), ("B", cmp.b)) if E.rotated(face)]
    return ("photos A and B" if len(turned) == 2 else f"photo {turned[0]}") if turned else ""


def _rotation_caveat(cmp: Comparison) -> str:
    """The warning a turned face needs: the models expect upright faces, so a same-person pair
    can score as different (LFW, 90 degrees: 0.72 against a 0.78 threshold)."""
    photos = _rotated_photos(cmp)
    if not photos:
        return ""
    return (f"Caution: the face in {photos} is turned on its side in the image, which lowers the "
            "identity score; rotate the photo upright and compare again.")


def _concise(cmp: Comparison, ev: dict[str, Any], rng: random.Random) -> str:
    verdict = _verdict_sentence(cmp, ev, rng)
    margin = cmp.score - cmp.threshold
    # Below 0.005 the two-decimal margin would read "0.00 above": say "right at" instead.
    where = ("right at" if abs(margin) < 0.005 else
             f"{sim(abs(margin))} {'above' if margin >= 0 else 'below'}")
    ident = pick(rng, ("The fused identity similarity is {s}, {w} the {t} threshold, and {mc}.",
                       "Fused similarity {s} sits {w} the threshold of {t}; {mc}."),
                 s=sim(cmp.score), w=where, t=sim(cmp.threshold), mc=_models_clause(cmp, rng))
    return sentences(verdict, ident, _concise_reasons(cmp, ev, rng), _rotation_caveat(cmp))


# ---- detailed tier -------------------------------------------------------------------------------

def _identity_detail(cmp: Comparison, rng: random.Random) -> str:
    s = {k: sim(v) for k, v in cmp.scores.items()}
    if cmp.models_agree:
        agree = f"both call it a {'match' if all(cmp.model_verdicts.values()) else 'non-match'}"
    else:
        agree = "the models disagree, which weakens the call"
    return pick(rng, ("Identity, the intrinsic evidence: fused similarity {f} against a {t} threshold; "
                      "SFace {a} (threshold {ta}) and dlib {b} (threshold {tb}); {ag}.",
                      "Identity embeddings (intrinsic): fused score {f} vs threshold {t}, SFace {a} "
                      "(cut-off {ta}), dlib {b} (cut-off {tb}); {ag}."),
                f=sim(cmp.score), t=sim(cmp.threshold), a=s["sface"], b=s["dlib"],
                ta=sim(cal.THRESHOLD_SFACE), tb=sim(cal.THRESHOLD_DLIB), ag=agree)


def _attributes_detail(cmp: Comparison, rng: random.Random, notes: bool = True) -> str:
    aa, ab = cmp.a.attributes, cmp.b.attributes
    if aa is None or ab is None:
        return "Age, gender and expression were not estimated (identity-only analysis)."
    gap = cmp.differences.age_gap
    age = pick(rng, ("Age: estimated {x} and {y} years, a {g}-year gap.",
                     "Estimated ages are {x} and {y} ({gy} apart)."),
               x=age_years(aa.age), y=age_years(ab.age), g=gap, gy=years(gap))
    if "child" in (E.age_caveat(cmp.a), E.age_caveat(cmp.b)):
        age += " Age estimates for apparent children are unreliable."
    elif gap > AGE_GAP_NOTABLE and notes:
        age += " That may reflect time between the photos or estimation error."
    ca, cb = pct(aa.gender_confidence), pct(ab.gender_confidence)
    if aa.gender == ab.gender:
        gender = f"Gender: both {aa.gender} (confidence {_pair_values(ca, cb)})."
    else:
        gender = f"Gender: {aa.gender} ({ca}) vs {ab.gender} ({cb})."
    if min(aa.gender_confidence, ab.gender_confidence) < E.LOW_GENDER_CONFIDENCE:
        gender = gender[:-1] + ", one of them too uncertain to rely on."
    expr = (f"Expression: both {aa.expression}." if aa.expression == ab.expression
            else f"Expression: {aa.expression} vs {ab.expression}.")
    return sentences(age, gender, expr)


def _pose_detail(cmp: Comparison, ev: dict[str, Any], rng: random.Random) -> str:
    if cmp.a.pose.image_rotation or cmp.b.pose.image_rotation:
        return (f"Head pose: the face in {_rotated_photos(cmp)} lies on its side in the image, as if "
                "the photo lost its EXIF orientation, so pose angles are not measured.")
    if not ev["poses_reliable"]:
        return ("Head pose: the solver gave an implausible angle for at least one face, so pose "
                "is unreliable.")
    a, b = cmp.a.pose, cmp.b.pose
    return pick(rng, ("Head pose: yaw {ya} and {yb} (gap {yg}), pitch gap {pg}, roll gap {rg}.",
                      "Pose: yaws of {ya} and {yb} differ by {yg}; pitch by {pg}, roll by {rg}."),
                ya=signed_deg(a.yaw), yb=signed_deg(b.yaw), yg=deg(ev["yaw_gap"]),
                pg=deg(ev["pitch_gap"]), rg=deg(ev["roll_gap"]))


def _pair_values(x: str, y: str) -> str:
    """'x vs y', or 'x in both' when they are stated the same."""
    return f"{x} in both" if x == y else f"{x} vs {y}"


def _eye_spacing(x: str, y: str) -> str:
    return f"both {x} between the eyes" if x == y else f"{x} vs {y} between the eyes"


def _quality_detail(cmp: Comparison, rng: random.Random, max_flags: int = 2) -> str:
    qa, qb = cmp.a.quality, cmp.b.quality
    brightness = _pair_values(share(qa.brightness), share(qb.brightness))
    focus = _pair_values(E.sharpness_level(qa.sharpness), E.sharpness_level(qb.sharpness))
    base = (f"Lighting and quality: brightness {brightness}, focus {focus}, "
            f"{_eye_spacing(px(qa.interocular_px), px(qb.interocular_px))}.")
    issues = []
    for label, face in (("photo A", cmp.a), ("photo B", cmp.b)):
        flags = [f for f in E.quality_flags(face) if f not in ("strong_yaw", "strong_pitch",
                                                               "pose_unreliable", "rotated")]
        if flags:
            issues.append(f"in {label}, " + join_list(flag_clauses(face, flags[:max_flags], rng)))
    return sentences(base, capitalise("; ".join(issues)) + "." if issues else "")


def _geometry_detail(cmp: Comparison, ev: dict[str, Any]) -> str:
    name, rel = ev["geometry_largest"]
    base = (f"Geometry: landmark ratios differ by {share(ev['geometry_distance'])} on average, most in "
            f"{E.GEOMETRY_NAMES[name]} ({share(rel)})")
    reading = {
        "close": "; both faces are near-frontal, so this close match is intrinsic evidence",
        "far": "; both faces are near-frontal, so this large difference is intrinsic evidence",
        "neutral": "; both faces are near-frontal, and this level is typical of either verdict",
        "pose": "; the faces are not both near-frontal, so pose explains part of it",
    }[ev["geometry_reading"]]
    return base + reading + "."


_FACTOR_NAMES = {"pose": "head pose", "lighting": "lighting", "focus": "image sharpness",
                 "age": "the age gap", "expression": "expression"}


def _attribution(ev: dict[str, Any], rng: random.Random) -> str:
    intrinsic = ["identity similarity"]
    if ev["geometry_reading"] in ("close", "far"):
        intrinsic.append("face geometry")
    nuis = [_FACTOR_NAMES[f] for f in ev["nuisance"]]
    if nuis:
        return pick(rng, ("Intrinsic to identity: {i}; explained by nuisance factors: {n}.",
                          "What bears on identity is {i}; {n} change appearance, not identity."),
                    i=join_list(intrinsic), n=join_list(nuis))
    return pick(rng, ("Intrinsic to identity: {i}; no large nuisance difference was found.",
                      "The decision rests on {i}; pose, lighting and expression are comparable."),
                i=join_list(intrinsic))


def _detailed(cmp: Comparison, ev: dict[str, Any], rng: random.Random) -> str:
    verdict = "same person" if cmp.same else "different people"
    conf = (f"{pct(cmp.confidence)} confidence" if cmp.confidence >= 0.5 else
            "the calibrated probability favours the other outcome")
    head = f"Verdict: {verdict}, {ev['strength']} evidence ({conf})."
    state = rng.getstate()
    for max_flags in (2, 1, 0):
        rng.setstate(state)  # a shorter retry keeps the wording of the full attempt
        text = sentences(head, _identity_detail(cmp, rng),
                         _attributes_detail(cmp, rng, notes=max_flags == 2),
                         _pose_detail(cmp, ev, rng), _quality_detail(cmp, rng, max_flags),
                         _geometry_detail(cmp, ev), _attribution(ev, rng))
        if word_count(text) <= DETAILED_MAX_WORDS:
            break
    return text
