"""Checks on teacher output: refusals, and the verdict a pair explanation states.

Refusals are first-person statements of unwillingness or inability ("I can't analyse faces",
"I'm sorry, but I can't help with identifying people"); explanations written about a face in the
third person ("nothing is claimed about age") never match, so evidence text is not mistaken for one.
"""
from __future__ import annotations

import re

_REFUSAL = [re.compile(p, re.I) for p in (
    r"^\W*(i'?m|i am)\s+(so\s+|really\s+)?sorry\b",
    r"^\W*sorry\b",
    r"\bi\s*(can(?:'|’)?t|cannot|can not|won(?:'|’)?t|will not|am unable to|'m unable to|am not able "
    r"to|'m not able to|do not|don(?:'|’)?t)\s+(help|assist|analy[sz]e|identify|determine|provide|"
    r"comply|describe|discuss|make|do that|speculate|infer|guess|recogni[sz]e|process|fulfil)",
    r"\bas an ai\b",
    r"\b(unable|not able) to (help|assist|comply) with (this|that)\b",
    r"\bagainst (my|our|openai'?s?) (guidelines|policy|policies)\b",
)]
# Shorter than this and it is no usable answer either (an empty body, "N/A", a lone verdict word).
MIN_ANSWER_CHARS = 20

_NEG = r"(?:\bnot\b|n['’]t\b|\bnever\b|\bno longer\b|\bcannot\b)"
_SAME = r"(?:the\s+)?same\s+(?:person|individual|identity|man|woman|people|subject)"
_DIFF = (r"(?:two\s+)?different\s+(?:people|persons|individuals|identities|men|women|person|"
         r"individual|subjects)|not\s+a\s+match|non-?match(?:ing)?\s+(?:pair|identities)")
_VERDICT = re.compile(rf"(?P<neg>{_NEG}[^.;:!?]{{0,40}}?)?\b(?P<same>{_SAME})\b|\b(?P<diff>{_DIFF})\b",
                      re.I)


def is_refusal(text: str) -> bool:
    """True for a refusal or a reply too short to be an answer."""
    t = (text or "").strip()
    if len(t) < MIN_ANSWER_CHARS:
        return True
    head = t[:400]  # refusals come first; a long answer may quote "I can't" later in passing
    return any(p.search(head) for p in _REFUSAL)


def stated_verdict(text: str) -> bool | None:
    """The verdict an explanation states first: True (same person), False (different people),
    or None when it states neither.

    'not the same person', "aren't the same individual" and 'different people' read as False; the
    first verdict phrase decides, because explanations lead with their verdict.
    """
    m = _VERDICT.search(text or "")
    if m is None:
        return None
    if m.group("diff"):
        return False
    return m.group("neg") is None
