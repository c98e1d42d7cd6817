"""Whether a text agrees with the calibrated identity score: the LM writes the explanation, the
calibrated score decides (the text must not contradict it). The verdict is read by the same
parser the teacher-data jobs use (facelm.teacher.checks.stated_verdict)."""
from __future__ import annotations

from ...teacher.checks import stated_verdict

__all__ = ["agrees", "stated_verdict"]


def agrees(text: str, same: bool) -> bool:
    """Does the text state the calibrated verdict `same`? (No stated verdict counts as no.)"""
    return stated_verdict(text) is same
