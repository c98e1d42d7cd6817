"""Vision mode's measurement tokens: the pair's calibrated comparison as digit codes, not text.

A raw scalar such as a fused similarity of 0.66 among hundreds of feature dimensions is a weak
signal for an LM to turn into the tokens "0.66": trained on it, the model learns one text per
verdict (docs/benchmarks/verlm.md). With `number_tokens` on, every quantity a pair explanation
states gets its own prefix token, built from a one-hot code of its digits at the precision the
explainer states it (sign, hundreds, tens, units of the stated integer: 0.66 -> 066), and the
categorical readings (verdict strength, per-model calls, nuisance factors, expressions...) one
more token of flags. Everything is computed from the two faces' features (the same comparison the
score token reads); the LM still has to learn which token feeds which phrase and the vocabulary
item for each digit. No text of the evidence reaches the model: that is grounded mode.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ...explain.phrasing import pct, sim
from ...faces.types import EXPRESSIONS

DIGITS = 3                      # hundreds, tens, units of the stated integer
CODE_WIDTH = 2 + 10 * DIGITS    # sign one-hot, then one one-hot per digit


def _hundredths(x: float) -> int:
    """x as the explainer writes it (phrasing.sim, two decimals: "0.66" -> 66)."""
    return int(round(float(sim(x)) * 100))


def _pct(p: float) -> int:
    """As the explainer writes it (phrasing.pct): 100 stands for "over 99%", 0 for "under 1%"."""
    text = pct(p)
    return 100 if text.startswith("over") else 0 if text.startswith("under") else int(text[:-1])


# name -> the stated integer, from the comparison (raw values, rounded once as the text rounds
# them) or pair_evidence (gaps, already rounded as stated)
NUMBERS: dict[str, Callable[[Any, dict[str, Any]], float]] = {
    "confidence": lambda c, ev: _pct(c.confidence),
    "score": lambda c, ev: _hundredths(c.score),
    "margin": lambda c, ev: _hundredths(abs(c.score - c.threshold)),
    "threshold": lambda c, ev: _hundredths(c.threshold),
    "sface": lambda c, ev: _hundredths(c.scores["sface"]),
    "dlib": lambda c, ev: _hundredths(c.scores["dlib"]),
    "geometry": lambda c, ev: _hundredths(ev["geometry_distance"]),
    "yaw_gap": lambda c, ev: ev["yaw_gap"],
    "pitch_gap": lambda c, ev: ev["pitch_gap"],
    "roll_gap": lambda c, ev: ev["roll_gap"],
    "max_abs_yaw": lambda c, ev: ev["max_abs_yaw"],
    "brightness_gap": lambda c, ev: _hundredths(ev["brightness_gap"]),
    "sharpness_ratio": lambda c, ev: int(round(ev["sharpness_ratio"] * 10)),
    "age_gap": lambda c, ev: -1 if ev["age_gap"] is None else ev["age_gap"],
}
N_NUMBERS = len(NUMBERS)

_STRENGTHS = ("strong", "moderate", "weak")
_GEOMETRY = ("close", "far", "neutral", "pose")
_POSE = ("yaw_gap", "turned", "pitch_gap", "roll_gap")
_NUISANCE = ("pose", "lighting", "focus", "age", "expression")
_FACE_FLAGS = ("low_resolution", "blurred", "underexposed", "overexposed", "rotated")
FLAG_WIDTH = (3 + len(_STRENGTHS) + 3 + len(_GEOMETRY) + len(_POSE) + len(_NUISANCE)
              + 2 * len(EXPRESSIONS) + 2 * len(_FACE_FLAGS))


def digit_code(value: float) -> np.ndarray:
    """(CODE_WIDTH,) one-hot sign and digits of round(value), clipped to +-999; -1 (absent) is
    coded as the sign alone."""
    n = int(round(float(value)))
    out = np.zeros(CODE_WIDTH, np.float32)
    out[0 if n >= 0 else 1] = 1.0
    n = min(abs(n), 10 ** DIGITS - 1)
    for i, ch in enumerate(f"{n:0{DIGITS}d}"):
        out[2 + 10 * i + int(ch)] = 1.0
    return out


def _one_hot(value: Any, options: tuple[str, ...]) -> list[float]:
    return [1.0 if value == o else 0.0 for o in options]


def flag_code(ev: dict[str, Any]) -> np.ndarray:
    """(FLAG_WIDTH,) the categorical readings the explanation states."""
    v = ev["model_verdicts"]
    flags = [1.0 if ev["same"] else 0.0, 1.0 if ev["confidence"] < 0.5 else 0.0,
             1.0 if ev["gender_conflict"] else 0.0,
             *_one_hot(ev["strength"], _STRENGTHS),
             float(v.get("sface", False)), float(v.get("dlib", False)), float(ev["models_agree"]),
             *_one_hot(ev["geometry_reading"], _GEOMETRY), *_one_hot(ev["pose_reason"], _POSE),
             *[1.0 if n in ev["nuisance"] else 0.0 for n in _NUISANCE],
             *_one_hot(ev["expression_a"], EXPRESSIONS), *_one_hot(ev["expression_b"], EXPRESSIONS)]
    for face in (ev["a"], ev["b"]):
        flags += [1.0 if f in face.get("flags", ()) else 0.0 for f in _FACE_FLAGS]
    out = np.asarray(flags, np.float32)
    assert out.shape == (FLAG_WIDTH,), out.shape
    return out


def pair_codes(comparison: Any) -> np.ndarray:
    """(N_NUMBERS + 1, CODE_WIDTH + FLAG_WIDTH): one row per stated number (its digit code, zeros
    after), then one row of flags (zeros before). Zeros throughout for a single face."""
    out = np.zeros((N_NUMBERS + 1, CODE_WIDTH + FLAG_WIDTH), np.float32)
    if comparison is None:
        return out
    from ...explain.pair import pair_evidence
    ev = pair_evidence(comparison)
    for i, fn in enumerate(NUMBERS.values()):
        out[i, :CODE_WIDTH] = digit_code(fn(comparison, ev))
    out[N_NUMBERS, CODE_WIDTH:] = flag_code(ev)
    return out
