"""Multiple-choice answers from measurements: which option does the measured analysis support?

Each recognised question kind turns the analyses of the question's photos into a probability per
option (age bins from the age model's distribution, gender from its confidence, expression from the
7-class distribution, race from the race head's, identity from calibrated P(same) per pair). Kinds
with no measurement behind them (tools, anything unrecognised; race where no race head ran) raise
`Unanswerable`: the evidence model does not guess.
"""
from __future__ import annotations

import itertools
import math
import re
from typing import Callable, Sequence

from ..faces.types import FaceAnalysis

EPS = 1e-4          # floor for options the evidence rules out (keeps log-likelihoods finite)
AGE_SD_MIN = 3.0    # the age model's 10th-90th span is at least +-3 years (types.Attributes)
NONE_OPTIONS = ("none of the above", "none", "both", "cannot be determined", "not sure")

# FaceXBench's age groups (utkface/fairface age files): [lo, hi) in years.
AGE_BINS = ((0, 3), (3, 10), (10, 20), (20, 30), (30, 40), (40, 50), (50, 60), (60, 70), (70, 200))

GENDER_WORDS = {"male": "male", "man": "male", "men": "male", "boy": "male",
                "female": "female", "woman": "female", "women": "female", "girl": "female"}
# FaceXBench / LFW / RAF-DB expression words -> the expression model's 7 classes; contempt has none.
EXPRESSION_WORDS = {
    "happy": "happy", "happiness": "happy", "smiling": "happy", "joy": "happy",
    "sad": "sad", "sadness": "sad", "surprise": "surprise", "surprised": "surprise",
    "anger": "angry", "angry": "angry", "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear", "scared": "fear", "neutral": "neutral", "calm": "neutral",
    "contempt": None,
}
# FairFace's seven groups and common synonyms -> the race head's five UTKFace groups.
RACE_WORDS = {"white": "White", "caucasian": "White", "black": "Black", "asian": "Asian",
              "east asian": "Asian", "southeast asian": "Asian", "indian": "Indian",
              "others": "Others", "other": "Others", "latino": "Others", "latino_hispanic": "Others",
              "hispanic": "Others", "middle eastern": "Others"}


class Unanswerable(Exception):
    """No measurement behind this question: callers answer honestly instead of guessing."""


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower().rstrip("."))


def _is_none(option: str) -> bool:
    return _norm(option) in NONE_OPTIONS or _norm(option).startswith("none of")


# ---- age -----------------------------------------------------------------------------------------

def parse_age_bin(text: str) -> tuple[float, float] | None:
    """'20-29' -> (20, 30); '50-60' -> (50, 60) (FaceXBench writes both); 'more than 70' -> (70, inf)."""
    t = _norm(text)
    m = re.search(r"(\d+)\s*(?:-|to|–)\s*(\d+)", t)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        decade = hi - lo == 10 and lo % 10 == 0
        return (lo, hi) if decade else (lo, hi + 1)
    m = re.search(r"(?:more than|over|above|older than)\s*(\d+)|(\d+)\s*\+", t)
    if m:
        return (int(m.group(1) or m.group(2)), math.inf)
    m = re.search(r"(?:less than|under|below|younger than)\s*(\d+)", t)
    return (0, int(m.group(1))) if m else None


def _age_sd(a: FaceAnalysis) -> float:
    lo, hi = a.attributes.age_range
    return max((hi - lo) / 2.563, AGE_SD_MIN)  # 10th-90th percentile span of a normal = 2.563 sd


def p_age_in(a: FaceAnalysis, lo: float, hi: float) -> float:
    """P(lo <= age < hi) under a normal around the age model's estimate."""
    mu, sd = a.attributes.age, _age_sd(a)
    cdf = lambda x: 0.5 * (1 + math.erf((x - mu) / (sd * math.sqrt(2))))  # noqa: E731
    return max(cdf(hi) - (cdf(lo) if lo > 0 else 0.0), 0.0)


def _bin_probs(a: FaceAnalysis) -> list[float]:
    return [p_age_in(a, lo, hi) for lo, hi in AGE_BINS]


# ---- option probabilities per kind ---------------------------------------------------------------

def _age_single(faces: Sequence[FaceAnalysis], q: str, options: Sequence[str]) -> list[float]:
    bins = [parse_age_bin(o) for o in options]
    return [EPS if b is None else p_age_in(faces[0], *b) for b in bins]


def _gender(faces: Sequence[FaceAnalysis], q: str, options: Sequence[str]) -> list[float]:
    at = faces[0].attributes
    p_male = at.gender_confidence if at.gender == "male" else 1 - at.gender_confidence
    probs = {"male": p_male, "female": 1 - p_male}
    return [probs[GENDER_WORDS[_norm(o)]] if _norm(o) in GENDER_WORDS else EPS for o in options]


def _race(faces: Sequence[FaceAnalysis], q: str, options: Sequence[str]) -> list[float]:
    """The head's group probability, shared equally by options that map to one group (FairFace's
    East and Southeast Asian both read the head's "Asian")."""
    probs = faces[0].attributes.race_probs or {}
    groups = [RACE_WORDS.get(_norm(o)) for o in options]
    return [probs.get(g, 0.0) / groups.count(g) if g else EPS for g in groups]


def _expression(faces: Sequence[FaceAnalysis], q: str, options: Sequence[str]) -> list[float]:
    probs = faces[0].attributes.expression_probs
    out = []
    for o in options:
        cls = EXPRESSION_WORDS.get(_norm(o))
        out.append(probs.get(cls, 0.0) if cls else EPS)  # contempt/unknown: no class measured
    return out


def _image_sets(options: Sequence[str], n: int) -> list[frozenset[int] | None]:
    """'Image 2', 'Images 1 and 4', 'Image 1 and Image 3' -> 0-based index sets; None otherwise."""
    out: list[frozenset[int] | None] = []
    for o in options:
        nums = [int(x) - 1 for x in re.findall(r"\d+", o)]
        ok = re.fullmatch(r"\s*images?\s+\d+((\s*(,|and|&)\s*(images?\s+)?\d+)*)\s*\.?", o.lower())
        out.append(frozenset(nums) if ok and all(0 <= k < n for k in nums) else None)
    return out


def _which_image_age(faces: Sequence[FaceAnalysis], q: str, options: Sequence[str]) -> list[float]:
    """'Which image shows a person in 30-39 age group?': exactly one image in the bin, or none."""
    bin_ = parse_age_bin(q)
    p = [p_age_in(f, *bin_) for f in faces]
    sets = _image_sets(options, len(faces))
    out = []
    for o, s in zip(options, sets):
        if s is not None and len(s) == 1:
            (k,) = s
            out.append(p[k] * math.prod(1 - p[j] for j in range(len(p)) if j != k))
        else:
            out.append(math.prod(1 - x for x in p) if _is_none(o) else EPS)
    return out


def _older(faces: Sequence[FaceAnalysis], q: str, options: Sequence[str]) -> list[float]:
    """'Who among these two appears to be older?' over FaceXBench's age groups."""
    b1, b2 = _bin_probs(faces[0]), _bin_probs(faces[1])
    same = sum(x * y for x, y in zip(b1, b2))
    first_higher = sum(b1[i] * b2[j] for i in range(len(b1)) for j in range(len(b2)) if i > j)
    younger = bool(re.search(r"younger|youngest", q))
    p_first = (1 - same - first_higher) if younger else first_higher
    p_second = 1 - same - p_first
    out = []
    for o, s in zip(options, _image_sets(options, 2)):
        if s == frozenset({0}):
            out.append(p_first)
        elif s == frozenset({1}):
            out.append(p_second)
        else:
            out.append(same if "same" in _norm(o) else EPS)
    return out


def _yes_no_same(faces: Sequence[FaceAnalysis], q: str, options: Sequence[str],
                 pair: Callable[[int, int], float]) -> list[float]:
    p = pair(0, 1)
    table = {"yes": p, "no": 1 - p, "same person": p, "different people": 1 - p}
    return [table.get(_norm(o), EPS) for o in options]


def _which_pair_same(faces: Sequence[FaceAnalysis], q: str, options: Sequence[str],
                     pair: Callable[[int, int], float]) -> list[float]:
    """'Which two images show the same person?': that pair same, every other pair different."""
    pairs = list(itertools.combinations(range(len(faces)), 2))
    p = {ij: pair(*ij) for ij in pairs}
    out = []
    for s in _image_sets(options, len(faces)):
        if s is None or len(s) != 2:
            out.append(EPS)
            continue
        ij = tuple(sorted(s))
        out.append(p[ij] * math.prod(1 - p[kl] for kl in pairs if kl != ij))
    return out


def _first_in_others(faces: Sequence[FaceAnalysis], q: str, options: Sequence[str],
                     pair: Callable[[int, int], float]) -> list[float]:
    """'The first image is of a person A. ... in which of the other images?'"""
    p = {k: pair(0, k) for k in range(1, len(faces))}
    out = []
    for o, s in zip(options, _image_sets(options, len(faces))):
        if s is None:
            out.append(math.prod(1 - x for x in p.values()) if _is_none(o) else EPS)
        else:
            out.append(math.prod(p[k] if k in s else 1 - p[k] for k in p) if 0 not in s else EPS)
    return out


def _count_same_pairs(faces: Sequence[FaceAnalysis], q: str, options: Sequence[str],
                      pair: Callable[[int, int], float]) -> list[float]:
    """'How many pairs of images show the same person?': Poisson-binomial over pair verdicts."""
    dist = [1.0]
    for i, j in itertools.combinations(range(len(faces)), 2):
        pij = pair(i, j)
        dist = [a * (1 - pij) + b * pij for a, b in zip(dist + [0.0], [0.0] + dist)]
    out = []
    for o in options:
        m = re.fullmatch(r"\s*(\d+)\s*", o)
        out.append(dist[int(m.group(1))] if m and int(m.group(1)) < len(dist) else EPS)
    return out


def _different_from_pair(faces: Sequence[FaceAnalysis], q: str, options: Sequence[str],
                         pair: Callable[[int, int], float]) -> list[float]:
    """'There are two images of the same person. Which images are of people different from that
    person?': the images not named form the matching pair; each named one differs from both."""
    n = len(faces)
    out = []
    for s in _image_sets(options, n):
        rest = sorted(set(range(n)) - s) if s is not None else []
        if len(rest) != 2:
            out.append(EPS)
            continue
        i, j = rest
        out.append(pair(i, j) * math.prod((1 - pair(min(k, m), max(k, m))) for k in s for m in rest))
    return out


def _count_identities(faces: Sequence[FaceAnalysis], q: str, options: Sequence[str],
                      pair: Callable[[int, int], float], draws: int = 2000) -> list[float]:
    """'How many unique identities are present?': distribution of the number of connected groups
    when each pair is judged the same person with its calibrated probability (seeded sampling)."""
    import numpy as np
    n = len(faces)
    pairs = list(itertools.combinations(range(n), 2))
    p = np.array([pair(i, j) for i, j in pairs])
    rng = np.random.default_rng(0)
    counts = np.zeros(n + 1)
    for same in rng.random((draws, len(pairs))) < p:
        parent = list(range(n))

        def root(x: int) -> int:
            while parent[x] != x:
                x = parent[x]
            return x
        for (i, j), s in zip(pairs, same):
            if s:
                parent[root(i)] = root(j)
        counts[len({root(x) for x in range(n)})] += 1
    out = []
    for o in options:
        m = re.fullmatch(r"\s*(\d+)\s*", o)
        out.append(max(counts[int(m.group(1))] / draws, EPS) if m and int(m.group(1)) <= n else EPS)
    return out


# ---- question kind detection ---------------------------------------------------------------------

def _all_in(options: Sequence[str], vocab: set[str] | dict) -> bool:
    """Every option is in vocab or a none-of-the-above filler, and at least two are in vocab."""
    hits = [_norm(o) in vocab for o in options]
    return sum(hits) >= 2 and all(h or _is_none(o) for h, o in zip(hits, options))


def option_probabilities(faces: Sequence[FaceAnalysis], question: str, options: Sequence[str],
                         pair: Callable[[int, int], float]) -> tuple[str, list[float]]:
    """(kind, probability per option) for a recognised question; raises Unanswerable otherwise."""
    q = question.lower()
    n = len(faces)
    needs_attrs = n >= 1 and all(f.attributes is not None for f in faces)
    if _all_in(options, RACE_WORDS):
        if n != 1 or not needs_attrs or faces[0].attributes.race_probs is None:
            raise Unanswerable("race: only the heads-v1 attribute estimator reads race, for one face")
        return "race", _race(faces, q, options)
    if n == 1 and needs_attrs:
        if _all_in(options, GENDER_WORDS):
            return "gender", _gender(faces, q, options)
        if _all_in(options, EXPRESSION_WORDS):
            return "expression", _expression(faces, q, options)
        if sum(parse_age_bin(o) is not None for o in options) >= 2 and re.search(r"\bage\b", q):
            return "age", _age_single(faces, q, options)
    if n >= 2 and needs_attrs:
        if n == 2 and re.search(r"\b(older|younger|oldest|youngest)\b", q):
            return "age_compare", _older(faces, q, options)
        if re.search(r"\bage\b", q) and parse_age_bin(q) and any(s is not None for s in _image_sets(options, n)):
            return "age_which_image", _which_image_age(faces, q, options)
    if n >= 2 and re.search(r"same person|same identity|same individual|person a\b", q):
        if n == 2 and any(_norm(o) in ("yes", "no") for o in options):
            return "same_person", _yes_no_same(faces, q, options, pair)
        if "first image" in q and "other images" in q:
            return "same_person_first", _first_in_others(faces, q, options, pair)
        if re.search(r"how many pairs", q):
            return "same_person_count", _count_same_pairs(faces, q, options, pair)
        if re.search(r"which two images", q):
            return "same_person_pair", _which_pair_same(faces, q, options, pair)
        if re.search(r"different from that person", q):
            return "same_person_others", _different_from_pair(faces, q, options, pair)
    if n >= 2 and re.search(r"how many (unique|different|distinct) (identities|people|persons)", q):
        return "identity_count", _count_identities(faces, q, options, pair)
    raise Unanswerable("no measurement answers this kind of question")
