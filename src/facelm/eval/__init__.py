"""Evaluation: multiple-choice benchmarks (FaceXBench format), the verification protocol, fairness
breakdowns, NLG metrics and the faithfulness audit. Submodules load their heavy dependencies
lazily; importing this package only pulls in the answer extractor (regular expressions)."""
from __future__ import annotations

from .extract import extract_choice

__all__ = ["extract_choice"]
