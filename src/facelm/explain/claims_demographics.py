"""Race claims in free explanation text, and race used as identity evidence in pair texts.

| kind | value | from phrases such as |
|---|---|---|
| race | one of UTKFace's five groups (faces.attr_heads.RACES) | "reads Asian at 87%", "Estimated
  race group: White (91%)", "appears to be of East Asian descent", "ethnicity: white", "a Black
  woman", "Hispanic" (-> Others), "of an ethnicity outside the White, Black, Asian and Indian
  groups" (-> Others) |
| race_confidence | (group, lo, hi): the stated probability of that group | "Asian at 87%", "White
  (over 99%)" |
| race_identity | True (races stated alike) / False (stated different), pair texts only | "same
  ethnicity, supporting a match", "different races, so different people" |

Words map onto the race head's groups through the label vocabulary the MCQ answers and fairness
report already use (models.evidence_mcq.RACE_WORDS: FairFace's seven groups), plus a few free-text
synonyms. "White", "Black" and "Other(s)" count only beside a race word or a person noun ("a white
shirt", "black hair" and "other people" are not race claims). A race claim is `hedged` when its
clause marks it as uncertain ("possibly", "may", "only 45%") or states a confidence below the
explainer's own LOW_RACE_CONFIDENCE. Not claims: negated groups ("not Asian"), texts that say no
group is clear ("No race group is clear", "ethnicity is uncertain", like "uncertain gender"),
lists of three or more groups, and disclaimers ("ethnicity says nothing about identity").
"""
from __future__ import annotations

import re
from typing import Callable

from ..models.evidence_mcq import RACE_WORDS
from .claims import Claim, _negated
from .evidence import LOW_RACE_CONFIDENCE
from .score_claims import _PCT, _share

# Free-text words beyond the label vocabulary (which has "caucasian", "east asian", "latino" ...).
_FREE_TEXT = {"african": "Black", "african american": "Black", "afro american": "Black",
              "south asian": "Indian", "latina": "Others", "latinx": "Others",
              "arab": "Others", "mixed race": "Others", "biracial": "Others",
              "multiracial": "Others"}
_GROUPS = {k.replace("_", " "): v for k, v in {**RACE_WORDS, **_FREE_TEXT}.items()}
# Everyday words too: only race claims beside a race word or a person noun.
_AMBIGUOUS = ("white", "black", "other", "others")
_GROUP = re.compile(r"\b(" + "|".join(re.escape(k).replace(r"\ ", r"[\s_-]+")
                                      for k in sorted(_GROUPS, key=len, reverse=True)) + r")\b",
                    re.I)
_RACE_WORD = r"race|races|racial|ethnicit(?:y|ies)|ethnic|descent|origin|heritage|ancestry"
# The words just before an ambiguous group word that make it a race: "ethnicity: white",
# "race group: Others", "reads White at 91%", "of Black descent" (with AFTER).
_BEFORE = re.compile(rf"\b(?:{_RACE_WORD}|group|reads|classified as|labell?ed)\s*"
                     r"(?::|=|-|is|as|of|reads|would be|appears(?: to be)?)?\s*(?:an?\s+|the\s+)?"
                     r"(?:(?:possibly|probably|likely|perhaps|maybe)\s+)?['\"(]?$", re.I)
# ... or a person as the subject: "she appears to be white" (not "the wall is white").
_PERSON_IS = re.compile(r"\b(?:he|she|they|person|man|woman|individual|subject|child|boy|girl)\s+"
                        r"(?:is|are|appears?(?:\s+to\s+be)?|looks?|seems?(?:\s+to\s+be)?)\s+"
                        r"(?:likely\s+|probably\s+|possibly\s+)?$", re.I)
_AFTER = re.compile(rf"^['\"]?\s*(?:{_RACE_WORD}|person|people|man|men|woman|women|individual|male|"
                    r"female|boy|girl|child|gentleman|lady|guy|adult|teen\w*|group(?!\s+photo))\b",
                    re.I)
# After the group: its stated probability ("at 87%", "(87%)", "with 87% confidence").
_CONF = re.compile(rf"(?:\s+(?:{_RACE_WORD}|group))?\s*(?:\(|at\s+|,\s*|:\s*)?"
                   rf"(?:with\s+(?:a\s+)?(?:confidence\s+(?:of\s+)?)?)?(?:only\s+|just\s+)?{_PCT}",
                   re.I)
_OUTSIDE = re.compile(r"\boutside\s+the\s+(?:\w+,?\s+){2,6}groups?\b", re.I)
_UNCLEAR = re.compile(rf"\bno\s+(?:{_RACE_WORD})?\s*group\s+is\s+clear\b|\b(?:{_RACE_WORD})"
                      r"(?:\s+group)?\s+(?:is\s+|are\s+)?(?:unclear|uncertain|ambiguous|"
                      r"indeterminate|undetermined|cannot be (?:determined|told))\b"
                      rf"|\b(?:unclear|uncertain|ambiguous)\s+(?:{_RACE_WORD})\b", re.I)
_HEDGE = re.compile(r"\b(?:possibly|perhaps|maybe|might|may|could|uncertain|unsure|not (?:certain|"
                    r"sure)|tentative(?:ly)?|hard to (?:tell|say)|difficult to (?:tell|say|"
                    r"determine)|low confidence)\b|\b(?:only|just)\s+\d+(?:\.\d+)?\s*%", re.I)
_LIST_GLUE = re.compile(r"\s*[,/]?\s*(?:(?:and|or)\s+)?")
_VS = re.compile(rf"{_GROUP.pattern}\s*(?:\([^)]*\))?\s+vs\.?\s+{_GROUP.pattern}", re.I)
_BOTH = re.compile(r"\bboth\b(?:\s+\w+){0,4}?\s+(?:of\s+)?$", re.I)


def race_group(word: str) -> str | None:
    """One of the five groups for a free-text or label word ("East Asian" -> "Asian")."""
    return _GROUPS.get(re.sub(r"[\s_-]+", " ", word.strip().lower()))


def _is_race(s: str, m: re.Match) -> bool:
    word = m[1].lower()
    if word not in _AMBIGUOUS:
        return True
    head = s[max(0, m.start() - 60):m.start()]
    before = _BEFORE.search(head) or _PERSON_IS.search(head)
    after = _AFTER.match(s[m.end():])
    if word.startswith("other"):   # "other people": only a race word before names the group
        return bool(before) or bool(re.match(r"\s*group\b", s[m.end():], re.I))
    return bool(before or after)


def _stated(s: str, m: re.Match) -> tuple[float, float, float] | None:
    """(lo, hi, unit) of a probability stated right after the group, else None."""
    c = _CONF.match(s, m.end())
    if not c:
        return None
    (lo, hi), unit = _share(c)
    return lo, hi, unit


def _listed(s: str) -> set[int]:
    """Starts of group words in a list of three or more ("White, Black, Asian, Indian or
    Others"): naming the groups is not reading a face."""
    runs: list[list[re.Match]] = []
    for m in _GROUP.finditer(s):
        if runs and _LIST_GLUE.fullmatch(s[runs[-1][-1].end():m.start()]):
            runs[-1].append(m)
        else:
            runs.append([m])
    return {m.start() for run in runs if len(run) >= 3 for m in run}


def _race(s: str) -> list[Claim]:
    if _UNCLEAR.search(s):
        return []
    m = _OUTSIDE.search(s)
    if m and re.search(rf"{_RACE_WORD}", s, re.I):   # "of an ethnicity outside the White, ..."
        return [Claim("race", "Others", m[0])]
    m = _VS.search(s)   # "White vs Asian": photo A's, then photo B's
    if m and any(_is_race(s, g) for g in _GROUP.finditer(s, m.start(), m.end())):
        return [Claim("race", race_group(m[1]), m[0], "a"),
                Claim("race", race_group(m[2]), m[0], "b")]
    listed = _listed(s)
    found = [m for m in _GROUP.finditer(s)
             if m.start() not in listed and _is_race(s, m) and not _negated(s, m.start())]
    if len({race_group(m[1]) for m in found}) >= 3:
        return []   # many groups in one clause: no reading of one face
    # A probability below the explainer's own bar hedges its group ("Asian, only 45%").
    low = {race_group(m[1]) for m in found if (st := _stated(s, m)) and st[1] < LOW_RACE_CONFIDENCE}
    out: list[Claim] = []
    for m in found:   # a group named twice is one claim, its probability wherever it is stated
        group, stated = race_group(m[1]), _stated(s, m)
        hedged = bool(_HEDGE.search(s)) or group in low
        who = ("a", "b") if _BOTH.search(s[:m.start()]) else (None,)
        if not any(c.kind == "race" and c.value == group for c in out):
            out += [Claim("race", group, m[0], w, hedged=hedged) for w in who]
        if stated is not None and not any(c.kind == "race_confidence" and c.value[0] == group
                                          for c in out):
            out += [Claim("race_confidence", (group, stated[0], stated[1]), m[0], w,
                          precision=stated[2]) for w in who]
    return out


def drop_race_shares(claims: list[Claim]) -> list[Claim]:
    """Claims of one clause without the verdict confidences that are a race group's stated
    probability ("Photo A reads Asian (87% confidence)" states the race head's 87%)."""
    shares = {(c.value[1], c.value[2]) for c in claims if c.kind == "race_confidence"}
    return [c for c in claims
            if not (c.kind in ("confidence", "probability") and c.value in shares)]


# ---- race as identity evidence (pair texts) ----------------------------------------------------
_RACES = r"(?:race|races|racial\s+\w+|ethnicit(?:y|ies)|ethnic\s+(?:background|group|origin|" \
         r"appearance|features)s?)"
_SAME_WORDS = r"same|similar|shared?|matching|common|identical|consistent"
_COMPARE = re.compile(
    rf"\b(?:the\s+)?(?P<w>{_SAME_WORDS}|different|differing|distinct|dissimilar|mismatched)\s+"
    rf"(?:apparent\s+|perceived\s+)?{_RACES}\b"
    rf"|\b{_RACES}\s+(?:also\s+)?(?P<w2>match(?:es)?|differs?|(?:is|are)\s+(?:the\s+same|"
    r"different|similar|consistent|identical))\b", re.I)
# Only a comparison used for the identity call counts: "... supporting a match", "so different
# people", a list of similarities; a plain description of both faces does not.
_IDENTITY_USE = re.compile(r"support|suggest|indicat|consistent with|point(?:s|ing)? to|evidence|"
                           r"rul(?:e|es|ing) out|\bso\b|therefore|thus|hence|match|"
                           r"same (?:person|individual|identity)|different (?:people|persons|"
                           r"individuals|identities)|identit|similarit|differences?\b|in common|"
                           r"strengthen|weaken|favou?r", re.I)
# Texts that say race is *not* evidence are following the rule.
_DISCLAIM = re.compile(
    rf"(?:{_RACES}|\brace\b)[^.;]{{0,40}}?(?:\b(?:is|are|was|were)\s+(?:not|never|no)\s+"
    r"(?:\w+\s+){0,2}?(?:evidence|indicat\w*|relevant|used|considered|a\s+(?:cue|sign|basis|"
    r"factor))|\b(?:does|do|did)(?:\s+not\b|n't)\s+(?:\w+\s+){0,2}?(?:indicate|suggest|imply|"
    r"prove|support|count|bear|matter|say|tell|determine|establish|affect)|\bsays?\s+nothing|"
    r"\btells?\s+(?:us\s+)?nothing|\b(?:should|must|can)(?:\s+not|n't)\s+be\s+used|"
    r"\b(?:irrelevant|ignored|excluded))"
    rf"|\b(?:regardless|irrespective)\s+of\s+(?:\w+\s+){{0,2}}?{_RACES}"
    rf"|\bwithout\s+(?:regard\s+to|using|relying\s+on)\s+(?:\w+\s+){{0,2}}?{_RACES}", re.I)


# "Both are of East Asian descent, which supports a match": a shared group right before its use.
_BOTH_GROUP = re.compile(rf"\bboth\b(?:\s+\w+){{0,4}}?\s+(?:of\s+)?{_GROUP.pattern}(?:\s+\w+)?"
                         r"\s*,?\s*(?:which\s+|and\s+this\s+|this\s+)?(?:supports?|suggests?|"
                         r"indicates?|is\s+consistent\s+with|points?\s+to|so\b|therefore|making)",
                         re.I)


def _race_identity(s: str) -> list[Claim]:
    if _DISCLAIM.search(s):
        return []
    both = _BOTH_GROUP.search(s)
    group = _GROUP.search(s, both.start()) if both else None
    if group and _is_race(s, group):   # not "both have black hair, which suggests ..."
        return [Claim("race_identity", True, both[0])]
    m = _COMPARE.search(s)
    if not m or not _IDENTITY_USE.search(s):
        return []
    word = (m["w"] or m["w2"]).lower()
    alike = bool(re.match(rf"(?:{_SAME_WORDS})\b|match|(?:is|are)\s+(?!different)", word))
    return [Claim("race_identity", alike, m[0])]


# Plain registries, run by claims.extract_claims: every clause / pair-text clauses only.
RACE_EXTRACTORS: dict[str, Callable[[str], list[Claim]]] = {"race": _race}
RACE_PAIR_EXTRACTORS: dict[str, Callable[[str], list[Claim]]] = {"race_identity": _race_identity}
