"""The verdict a text states, and whether it agrees with the calibrated identity score: the LM
writes the explanation, the calibrated score decides (the text must not contradict it)."""
from __future__ import annotations

import re

_SAME = re.compile(r"\bsame person\b", re.I)
_DIFF = re.compile(r"\bdifferent (people|persons|individuals)\b|\bnot the same person\b", re.I)


def stated_verdict(text: str) -> bool | None:
    """True (same), False (different) or None (no verdict found): the first phrase wins, as the
    teacher states its verdict first and later sentences may mention the other outcome."""
    s, d = _SAME.search(text), _DIFF.search(text)
    if s is None or d is None:
        return None if s is None and d is None else s is not None
    return s.start() < d.start()  # "not the same person" starts before its "same person"


def agrees(text: str, same: bool) -> bool:
    """Does the text state the calibrated verdict `same`? (No stated verdict counts as no.)"""
    return stated_verdict(text) is same
