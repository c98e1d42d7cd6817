"""Seeded template choice and number formatting shared by every explanation.

Why seeded choice: explanations are training targets for the face VLMs, so the same facts must come
out in varied wording (a model trained on one fixed sentence learns the template, not the facts),
yet every run of the tool must be reproducible. Each text therefore draws its wording from a
`random.Random` seeded by the caller's seed *and* stable fields of the input. Python's `hash()` of a
string is salted per process, so the derivation uses CRC-32 instead.
"""
from __future__ import annotations

import random
import re
import zlib
from typing import Any, Sequence


def rng_for(seed: int, *parts: Any) -> random.Random:
    """A generator that depends only on `seed` and the printed form of `parts`.

    Floats should be rounded by the caller first, so that values which print the same (and are
    stated the same in the text) give the same wording.
    """
    key = "\x1f".join([str(int(seed))] + [str(p) for p in parts])
    return random.Random(zlib.crc32(key.encode("utf-8")) ^ (int(seed) & 0xFFFFFFFF))


def pick(rng: random.Random, options: Sequence[str], **values: Any) -> str:
    """One of `options`, chosen by `rng`, with `values` filled in."""
    return rng.choice(list(options)).format(**values)


def sentences(*parts: str) -> str:
    """Join non-empty sentences with single spaces."""
    return " ".join(p.strip() for p in parts if p and p.strip())


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def join_list(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def word_count(text: str) -> int:
    return len(re.findall(r"[A-Za-z0-9][A-Za-z0-9'.%°×–-]*", text))


# ---- numbers: rounded to what the models can support ------------------------------------------

def deg(x: float) -> str:
    """Angles in whole degrees: the landmark-based pose solver is not better than a few degrees."""
    return f"{int(round(abs(x)))}°"


def signed_deg(x: float) -> str:
    """A signed angle in whole degrees (+ right/up/clockwise, see faces/types.py)."""
    v = int(round(x))
    return f"{v:+d}°" if v else "0°"


def pct(p: float) -> str:
    """A probability as a whole percentage; never '100%' or '0%' for a model output."""
    if p >= 0.995:
        return "over 99%"
    if p < 0.005:
        return "under 1%"
    return f"{int(round(p * 100))}%"


def age_years(x: float) -> str:
    """Ages as whole years; the age model's lowest bin is a quarter year."""
    return "under 1" if x < 0.5 else str(int(round(x)))


def years(n: int | str) -> str:
    """'1 year', 'under 1 year', '36 years': a stated number of years with its noun agreeing."""
    return f"{n} year" if str(n) in ("1", "under 1") else f"{n} years"


def age_span(lo: float, hi: float) -> str:
    return f"{age_years(lo)}–{age_years(hi)}"


def sim(x: float) -> str:
    """Cosine similarities to two decimals: the calibrated threshold has that precision. A value
    that rounds to zero is "0.00", never "-0.00" (a sign with no magnitude reads as a claim)."""
    return f"{x:.2f}" if round(x, 2) != 0 else "0.00"


def px(x: float) -> str:
    return f"{int(round(x))} px"


def share(x: float) -> str:
    """A 0..1 level (brightness, contrast) as a whole percentage of full scale."""
    return f"{int(round(x * 100))}%"


def ratio(x: float) -> str:
    """Landmark ratios to two decimals: the reference ranges differ in the second decimal."""
    return f"{x:.2f}"


def article(word: str) -> str:
    """'a' or 'an' before a word (by its first letter; enough for our vocabulary)."""
    return "an" if word[:1].lower() in "aeiou" else "a"
