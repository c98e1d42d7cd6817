"""Identity-score claims in pair texts: the numbers and per-model calls behind a verdict.

| kind | value | from phrases such as |
|---|---|---|
| score | fused cosine similarity | "fused similarity 0.85", "similarity score of 0.85" |
| sface_score, dlib_score | that model's cosine similarity | "SFace 0.54", "dlib (0.93)" |
| threshold | the fused decision threshold | "threshold of 0.78", "a 0.78 threshold" |
| sface_threshold, dlib_threshold | that model's own threshold | "SFace 0.54 (cut-off 0.33)" |
| margin | fused score minus threshold (signed); (lo, hi) when only its side is stated | "0.07 above
  the threshold", "0.03 below", "right at", "the score is below the threshold" |
| confidence | (lo, hi) probability of the stated verdict | "(97% confidence)", "over 99%
  confidence", "the other outcome's calibrated probability: 3%" (read as 97%) |
| probability | (lo, hi) probability of the same person | "probability of a match 97%" |
| sface_verdict, dlib_verdict | True (match) / False | "SFace calls it a non-match", "both identity
  models call it a match", "dlib (0.93) a match" |
| models_agree | True / False | "the identity models disagree", "both models agree" |

Numeric claims carry `precision`, the unit of the last stated digit (0.01 for "0.85" and for "97%"):
the audit compares at that precision (facelm.eval.faithfulness_scores). Claims are read only in pair
texts: a single photo has no similarity. Numbers are read only where identity words anchor them
("similarity", "threshold", a model's name), so ages, degrees, brightness and sharpness are never
taken for scores; a confidence next to "gender"/"expression" words is the classifier's, not the
verdict's, and is skipped.
"""
from __future__ import annotations

import re
from typing import Callable

from .claims import Claim, _negated

_NUM = r"[-−]?\d*\.\d+"                       # a similarity is always stated with a decimal point
_MODEL = r"(?P<model>SFace|dlib)"
_CUTOFF = r"(?:threshold|cut-?off)"
_WORD = r"(?P<w>non-?match|mismatch|match)"
_NOT_UNIT = r"(?![\d%°×]|\s*[%°×])"   # "0.5%", "0.5°", "3.5×" are not similarities
_PCT = r"(?:(?P<q>over|above|more than|under|below|less than|about|around)\s+)?" \
       r"(?P<p>\d+(?:\.\d+)?)\s*%"

# Ordered: a span read by an earlier pattern is not read again (the threshold inside
# "0.07 above the 0.78 threshold" or "SFace 0.54 (threshold 0.33)" is not the fused one).
_MODEL_CUTOFF = re.compile(rf"\b{_MODEL}(?:'s)?\s+(?:own\s+)?{_CUTOFF}\s*(?:is|of|=|:|at)?\s*"
                           rf"(?P<t>{_NUM})", re.I)
_MODEL_SCORE = re.compile(rf"\b{_MODEL}(?:'s)?\s*(?:(?:cosine\s+)?(?:similarity|score)\s*)?"
                          rf"(?:is|of|=|:|at|gives|reads|scores?)?\s*"
                          rf"(?P<po>\()?(?P<v>{_NUM}){_NOT_UNIT}(?(po)\))"
                          rf"(?:\s*\({_CUTOFF}\s*(?:of\s*)?(?P<t>{_NUM})\))?", re.I)
_MARGIN = re.compile(
    rf"(?P<v>{_NUM})\s+(?P<dir>above|below|over|under|higher than|lower than|short of)\s+"
    rf"(?:the\s+|a\s+)?(?:(?P<t>{_NUM})\s+)?(?:fused\s+|decision\s+)?{_CUTOFF}"
    rf"(?:\s+(?:of\s+)?(?P<t2>{_NUM}))?"
    rf"|(?P<dir2>above|below|exceeds|falls short of)\s+the\s+{_CUTOFF}(?:\s+of\s+(?P<t3>{_NUM}))?"
    rf"\s+by\s+(?P<v2>{_NUM})"
    rf"|\b(?:right|exactly)\s+at\s+the\s+(?:(?P<t4>{_NUM})\s+)?{_CUTOFF}"
    rf"(?:\s+of\s+(?P<t5>{_NUM}))?",
    re.I)
# Only the side: "the score of 0.85 is above the threshold" (the number is the score's).
_SIDE = re.compile(rf"\b(?:is|falls|lies|sits|stays|remains)\s+(?:well\s+|just\s+|slightly\s+|"
                   rf"clearly\s+)?(?P<dir>above|below|under|over)\s+the\s+(?:decision\s+|fused\s+)?"
                   rf"{_CUTOFF}(?:\s+of\s+(?P<t>{_NUM}))?", re.I)
_CUTOFF_VALUE = re.compile(rf"\b{_CUTOFF}\s*(?:is|was|of|=|:|at)?\s*(?P<v>{_NUM})"
                           rf"|(?P<v2>{_NUM})\s+(?:decision\s+)?{_CUTOFF}", re.I)
_SCORE = re.compile(rf"\b(?P<pre>\w+\s+)?(?:similarity(?:\s+score)?|score)\b"
                    rf"(?:\s+(?:is|was|of|=|:|at|sits at|stands at|reaches))*\s*(?P<v>{_NUM})"
                    rf"{_NOT_UNIT}", re.I)
# "score" is read as the identity score only in identity context, and never after these words.
_IDENTITY_CONTEXT = re.compile(r"similar|match|identit|fused|threshold|cut-?off|embedding|verif|"
                               r"same|different", re.I)
_NOT_IDENTITY = {"quality", "sharpness", "brightness", "blur", "focus", "contrast", "expression",
                 "confidence", "age", "aesthetic", "landmark", "geometry", "pose"}


def _number(s: str) -> tuple[float, float]:
    """(value, unit of its last digit) of a stated decimal number."""
    s = s.replace("−", "-")
    return float(s), 10.0 ** -len(s.split(".")[1])


def _claim(kind: str, num: str, words: str, sign: float = 1.0) -> Claim:
    v, unit = _number(num)
    return Claim(kind, sign * v, words, precision=unit)


def _fresh(taken: list[tuple[int, int]]) -> Callable[[re.Match], bool]:
    """A filter that passes a match only if no earlier one read its words, and records it."""
    def fresh(m: re.Match) -> bool:
        if any(a < m.end() and m.start() < b for a, b in taken):
            return False
        taken.append(m.span())
        return True
    return fresh


def _fused_score(m: re.Match, clause: str) -> bool:
    pre = (m["pre"] or "").strip().lower()
    generic = "similarity" not in m[0].lower()
    return pre not in _NOT_IDENTITY and not (generic and not _IDENTITY_CONTEXT.search(clause))


def _numbers(s: str) -> list[Claim]:
    out: list[Claim] = []
    fresh = _fresh([])
    for m in filter(fresh, _MODEL_CUTOFF.finditer(s)):
        out.append(_claim(f"{m['model'].lower()}_threshold", m["t"], m[0]))
    for m in filter(fresh, _MODEL_SCORE.finditer(s)):
        model = m["model"].lower()
        out.append(_claim(f"{model}_score", m["v"], m[0]))
        if m["t"]:
            out.append(_claim(f"{model}_threshold", m["t"], m[0]))
    # Before the margin: in "a similarity of 0.85 above the threshold" 0.85 is the score.
    for m in _SCORE.finditer(s):
        if _fused_score(m, s) and fresh(m):
            out.append(_claim("score", m["v"], m[0]))
    for m in filter(fresh, _MARGIN.finditer(s)):
        direction = (m["dir"] or m["dir2"] or "at").lower()
        below = direction in ("below", "under", "lower than", "short of", "falls short of")
        v = m["v"] or m["v2"] or "0.00"          # "right at the threshold": a zero margin
        out.append(_claim("margin", v, m[0], -1.0 if below else 1.0))
        t = m["t"] or m["t2"] or m["t3"] or m["t4"] or m["t5"]
        if t:
            out.append(_claim("threshold", t, m[0]))
    for m in filter(fresh, _SIDE.finditer(s) if re.search(r"score|similarity", s, re.I) else ()):
        below = m["dir"].lower() in ("below", "under")
        out.append(Claim("margin", (-2.0, 0.0) if below else (0.0, 2.0), m[0], precision=0.01))
        if m["t"]:
            out.append(_claim("threshold", m["t"], m[0]))
    for m in filter(fresh, _CUTOFF_VALUE.finditer(s)):
        out.append(_claim("threshold", m["v"] or m["v2"], m[0]))
    return out


# A percentage in a sentence about an attribute is that classifier's ("Asian (87% confidence)").
_NOT_VERDICT = re.compile(r"\b(?:gender|male|female|expression|emotion|classifier|age model|race|"
                          r"racial|ethnic\w*)\b", re.I)
_CONFIDENCE = re.compile(rf"{_PCT}\s+(?:calibrated\s+)?(?:confidence|certainty|confident|certain|"
                         rf"sure)\b", re.I)
_CONFIDENCE_OF = re.compile(rf"\b(?:confidence|certainty)\s*(?:is|of|level|:|=|at)?\s*{_PCT}", re.I)
_OTHER_OUTCOME = re.compile(rf"other outcome'?s?\s+(?:calibrated\s+)?probability\s*(?::|is|of)?\s*"
                            rf"{_PCT}", re.I)
_PROBABILITY = re.compile(
    r"(?:probability\s+(?:of\s+(?:a\s+match|the\s+same\s+person|being\s+the\s+same\s+person)|"
    r"that\s+(?:they|these|the\s+(?:two\s+)?photos)\s+(?:are|show)\s+the\s+same\s+person)|"
    r"(?:match|same-person)\s+probability)"
    rf"\s*(?:is|of|:|=|at)?\s*{_PCT}", re.I)
_QUALIFIED = {"over": "lo", "above": "lo", "more than": "lo", "under": "hi", "below": "hi",
              "less than": "hi"}


def _share(m: re.Match, complement: bool = False) -> tuple[tuple[float, float], float]:
    """((lo, hi), unit) of a stated percentage: "over 99%" is (0.99, 1.0)."""
    p = m["p"]
    v, unit = float(p) / 100, 10.0 ** -(len(p.split(".")[1]) + 2 if "." in p else 2)
    side = _QUALIFIED.get((m["q"] or "").lower())
    lo, hi = (v, 1.0) if side == "lo" else (0.0, v) if side == "hi" else (v, v)
    return ((round(1 - hi, 6), round(1 - lo, 6)) if complement else (lo, hi)), unit


def _probabilities(s: str) -> list[Claim]:
    if _NOT_VERDICT.search(s):
        return []   # "Gender: both male (confidence 97%)": the classifier's, not the verdict's
    out, fresh = [], _fresh([])
    for kind, pat, complement in (("confidence", _OTHER_OUTCOME, True),
                                  ("confidence", _CONFIDENCE, False),
                                  ("confidence", _CONFIDENCE_OF, False),
                                  ("probability", _PROBABILITY, False)):
        for m in filter(fresh, pat.finditer(s)):
            value, unit = _share(m, complement)
            out.append(Claim(kind, value, m[0], precision=unit))
    m = re.search(r"probability favou?rs the other outcome", s, re.I)
    if m:
        out.append(Claim("confidence", (0.0, 0.5), m[0], precision=0.01))
    return out


_BOTH = re.compile(rf"\bboth\b(?:\s+(?:identity|embedding|face))?(?:\s+(?:models|embeddings))?\s+"
                   rf"(?:call|consider|rate|judge|treat)\s+it\s+(?:as\s+)?an?\s+{_WORD}"
                   rf"|\bneither\b(?:\s+\w+){{0,2}}\s+(?:calls|considers)\s+it\s+an?\s+"
                   rf"(?P<n>match)",
                   re.I)
_ONE = re.compile(rf"\b{_MODEL}\b(?:\s*\(?{_NUM}\)?)?(?:\s+(?:also|alone|itself))?\s+"
                  rf"(?:calls?|considers?|rates?|judges?)\s+it\s+(?:as\s+)?an?\s+{_WORD}"
                  rf"|\b{_MODEL.replace('model', 'model2')}\s*\(?{_NUM}\)?\s+an?\s+"
                  rf"{_WORD.replace('w>', 'w2>')}\b", re.I)
_AGREE = re.compile(r"\b(?:identity\s+|two\s+|both\s+)?models\s+(?P<w>disagree|agree)\b"
                    r"|\b(?P<w2>disagreement|agreement)\s+between\s+the\s+(?:identity\s+)?models",
                    re.I)


def _is_match(word: str) -> bool:
    return word.lower() == "match"


def _model_verdicts(s: str) -> list[Claim]:
    out = []
    for m in _BOTH.finditer(s):
        if not _negated(s, m.start()):
            same = False if m["n"] else _is_match(m["w"])
            out += [Claim("sface_verdict", same, m[0]), Claim("dlib_verdict", same, m[0])]
    for m in _ONE.finditer(s):
        if not _negated(s, m.start()):
            model = (m["model"] or m["model2"]).lower()
            out.append(Claim(f"{model}_verdict", _is_match(m["w"] or m["w2"]), m[0]))
    for m in _AGREE.finditer(s):
        if not _negated(s, m.start()):
            out.append(Claim("models_agree", (m["w"] or m["w2"]).lower() in ("agree", "agreement"),
                             m[0]))
    return out


# Plain registry: every pair-text clause goes through each of these (see claims.extract_claims).
SCORE_EXTRACTORS: dict[str, Callable[[str], list[Claim]]] = {
    "numbers": _numbers, "probabilities": _probabilities, "model_verdicts": _model_verdicts,
}
SCORE_KINDS = ("score", "sface_score", "dlib_score", "threshold", "sface_threshold",
               "dlib_threshold", "margin", "confidence", "probability", "sface_verdict",
               "dlib_verdict", "models_agree")
