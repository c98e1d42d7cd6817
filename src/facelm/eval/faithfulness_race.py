"""Checks of race claims (explain/claims_demographics.py) against the race head's estimate.

* race: supported when the stated group is the head's top group, contradicted when it is another
  and the head is sure (confidence >= explain.evidence.LOW_RACE_CONFIDENCE). Below that the
  explainer states no group at all (aspects._race_sentence), so a text may state one only hedged
  ("possibly", "only 45%"): an unhedged group is contradicted (it claims a certainty the
  measurement lacks), a hedged one is supported for the top group, contradicted for a group under
  10% and uncheckable (borderline) in between.
* race_confidence: the stated probability of that group, at the precision it is stated with
  (faithfulness_scores.stated_matches, the identity scores' rounding rule).
* race_identity: always contradicted: race is never identity evidence (facelm's rule, whatever the
  photos or labels show).

A face analysed by an estimator without the race head (FACELM_ATTRIBUTES=dlib-v1: race None) leaves
race claims uncheckable, as unmeasured attributes are.
"""
from __future__ import annotations

from typing import Callable

from ..explain import evidence as E
from ..explain.claims import Claim
from ..faces.types import FaceAnalysis
from .faithfulness_scores import stated_matches

Result = tuple[str, str]   # (status, reason), as in faithfulness.py
RARE_GROUP = 0.10          # a hedged group the head gives less than this is still contradicted


def _no_race(a: FaceAnalysis) -> Result | None:
    at = a.attributes
    if at.race is None or at.race_probs is None:
        return "uncheckable", "race is not estimated (an attribute estimator without the race head)"
    return None


def check_race(c: Claim, a: FaceAnalysis) -> Result:
    if (none := _no_race(a)) is not None:
        return none
    at = a.attributes
    p = at.race_probs.get(c.value, 0.0)
    why = f"race head: {at.race} {at.race_confidence:.0%}, {c.value} {p:.0%}"
    if at.race_confidence >= E.LOW_RACE_CONFIDENCE:
        return ("supported" if c.value == at.race else "contradicted"), why
    if not c.hedged:
        return "contradicted", (f"{why}; below {E.LOW_RACE_CONFIDENCE:.0%} no group is a reading, "
                                "so stating one unhedged claims more than was measured")
    if c.value == at.race:
        return "supported", why + " (hedged, as the unsure estimate requires)"
    return ("contradicted" if p < RARE_GROUP else "uncheckable"), why + " (hedged; borderline)"


def check_race_confidence(c: Claim, a: FaceAnalysis) -> Result:
    if (none := _no_race(a)) is not None:
        return none
    group, lo, hi = c.value
    p = a.attributes.race_probs.get(group, 0.0)
    ok = stated_matches((lo, hi), p, c.precision or 0.01)
    return ("supported" if ok else "contradicted"), f"race head: {group} {p:.3f}"


def check_race_identity(c: Claim) -> Result:
    return "contradicted", "race is never identity evidence (facelm's rule, docs/attributes.md)"


# Claim kind -> check against one face's analysis (merged into faithfulness.FACE_CHECKS).
RACE_FACE_CHECKS: dict[str, Callable[[Claim, FaceAnalysis], Result]] = {
    "race": check_race, "race_confidence": check_race_confidence,
}
