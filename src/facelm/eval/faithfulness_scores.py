"""Checks of identity-score claims (explain/score_claims.py) against the pair's Comparison.

Rounding rule: a number stated with d decimals is supported iff it is within one unit of its last
digit of the true value rounded to d decimals, |stated - round(true, d)| <= 10**-d. Percentages
count as fractions, so "97%" has d = 2 and is supported for a true 0.96-0.98. The one-unit slack
absorbs ties (0.845 is formatted "0.84" or "0.85" depending on its binary value) and the margin
stated as the rounded difference rather than the difference of the rounded values; anything a
whole unit further off, such as a swapped model score or a margin of the wrong sign, is
contradicted.
Ranges ("over 99%" = 0.99-1.0) are widened by the same unit at both ends.

The Comparison is recomputed from the two analyses with the shipped threshold (calibration.py), so a
text written for a caller's own threshold has its threshold and margin claims checked against the
shipped one.
"""
from __future__ import annotations

import math
from typing import Sequence

from .. import calibration as cal
from ..explain.claims import Claim
from ..explain.score_claims import SCORE_KINDS
from ..faces.types import FaceAnalysis
from ..verify import Comparison, compare_analyses

Result = tuple[str, str]   # (status, reason), as in faithfulness.py
_EPS = 1e-9                # float noise in "0.85 - 0.84 <= 0.01"
_MODEL_NAMES = {"sface": "SFace", "dlib": "dlib"}
_MODEL_THRESHOLDS = {"sface": cal.THRESHOLD_SFACE, "dlib": cal.THRESHOLD_DLIB}
_IDENTITY_MODELS = tuple(_MODEL_NAMES)


def pair_comparison(faces: Sequence[FaceAnalysis | None]) -> Comparison | None:
    """The pair's Comparison, or None when a photo lacks an analysis or identity embeddings."""
    if len(faces) != 2 or any(f is None or not all(m in f.embeddings for m in _IDENTITY_MODELS)
                              for f in faces):
        return None
    return compare_analyses(faces[0], faces[1])


def stated_matches(value: float | tuple[float, float], true: float, unit: float) -> bool:
    """The rounding rule above; `value` a number or a (lo, hi) range."""
    lo, hi = value if isinstance(value, tuple) else (value, value)
    d = max(0, round(-math.log10(unit)))
    r = round(true, d)
    return lo - unit - _EPS <= r <= hi + unit + _EPS


def _numeric(c: Claim, true: float, what: str) -> Result:
    unit = c.precision or 0.01
    ok = stated_matches(c.value, true, unit)
    return ("supported" if ok else "contradicted", f"measured {what} {true:.3f}")


def _call(v: bool) -> str:
    return "match" if v else "non-match"


def check_score(c: Claim, cmp: Comparison) -> Result:
    """One identity-score claim against the Comparison (see the rounding rule above)."""
    model = c.kind.split("_")[0]
    if c.kind == "score":
        return _numeric(c, cmp.score, "fused similarity")
    if c.kind == "threshold":
        return _numeric(c, cmp.threshold, "fused threshold")
    if c.kind == "margin":
        return _numeric(c, cmp.score - cmp.threshold, "margin (score - threshold)")
    if c.kind == "confidence":
        return _numeric(c, cmp.confidence, "confidence of the verdict")
    if c.kind == "probability":
        return _numeric(c, cmp.probability, "probability of the same person")
    if c.kind.endswith("_score"):
        return _numeric(c, cmp.scores[model], f"{_MODEL_NAMES[model]} similarity")
    if c.kind.endswith("_threshold"):
        return _numeric(c, _MODEL_THRESHOLDS[model], f"{_MODEL_NAMES[model]} threshold")
    if c.kind.endswith("_verdict"):
        v = cmp.model_verdicts[model]
        return ("supported" if v == c.value else "contradicted",
                f"{_MODEL_NAMES[model]} {cmp.scores[model]:.3f} vs its threshold "
                f"{_MODEL_THRESHOLDS[model]}: {_call(v)}")
    if c.kind == "models_agree":
        calls = ", ".join(f"{_MODEL_NAMES[k]} {_call(v)}" for k, v in cmp.model_verdicts.items())
        return ("supported" if cmp.models_agree == c.value else "contradicted", calls)
    raise ValueError(f"not an identity-score claim kind: {c.kind!r} (known: {SCORE_KINDS})")
