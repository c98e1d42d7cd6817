"""Evidence-grounded explanations: measurements in, template-based text out (no language model).

* `explain_pair(cmp, seed=0)` -> PairExplanation: a concise (~50 words) and a detailed (~120 words)
  account of a verification decision, with the evidence dict the texts state.
* `describe_face(a, aspect, seed=0)` / `describe_all(a, seed=0)`: per-aspect descriptions of one
  face for the eight aspects in ASPECTS (titles in ASPECT_TITLES).

Every claim is a rounded measured value or an explicit statement that something was not measured;
weak evidence (low resolution, blur, strong pose, poor exposure, low confidence) is hedged.
Wording varies with `seed` and is reproducible for a given seed and input.
"""
from .aspects import ASPECT_TITLES, ASPECTS, describe_all, describe_face
from .evidence import face_evidence, quality_flags
from .pair import PairExplanation, explain_pair, pair_evidence

__all__ = ["ASPECTS", "ASPECT_TITLES", "PairExplanation", "describe_all", "describe_face",
           "explain_pair", "face_evidence", "pair_evidence", "quality_flags"]
