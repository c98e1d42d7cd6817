"""Checkable claims in free explanation text: what an explanation asserts about the face(s).

`extract_claims(text, pair=False)` returns `Claim`s of these kinds (values normalised):

| kind | value | from phrases such as |
|---|---|---|
| verdict | True (same) / False | "very likely show the same person", "Verdict: different people" |
| age | (lo, hi) years | "about 30 years", "in his 40s", "25-30 years old", "middle-aged" |
| age_gap | years | "a 3-year gap", "gap 12 years" |
| gender | "male" / "female" | "Predicted gender: male", "a young woman", "he" / "she" |
| gender_match | False | "the estimated genders differ" |
| expression | one of faces.types.EXPRESSIONS | "reads the face as happy", "smiling", "Expression: sad" |
| yaw | signed degrees (+ = image's right), "turned" or "profile" | "turned 10° towards the
  image's left", "yaw -10°", "in profile" |
| yaw_abs, pitch_abs | unsigned degrees | "yaw 10°", "(40° of yaw)" |
| frontal | True | "near-frontal", "facing the camera" |
| pitch | degrees (signed) or "up"/"down" | "looking 18° up", "pitch +18°" |
| roll | degrees (signed, + clockwise) | "tilted 5° counter-clockwise" |
| yaw/pitch/roll_gap | degrees | "yaw gap 30°", "differ by 30°", "pitch by 16°" |
| brightness | 0..1 share or "dark"/"bright"/"even" | "brightness 54%", "underexposed", "evenly exposed" |
| brightness_gap | 0..1 | "brightness gap 18%" |
| sharpness | number or "blurred"/"soft"/"sharp" | "sharpness 2.57", "out of focus", "moderately sharp" |
| glasses, occlusion | True | "wears glasses", "partly covered by hair", "a face mask" |
| race, race_confidence | one of UTKFace's five groups; (group, lo, hi) | "reads Asian at 87%",
  "of East Asian descent", "ethnicity: white" (explain/claims_demographics.py) |
| race_identity | True (races alike) / False | pair texts only: "same ethnicity, supporting a match" |
| score, sface/dlib_score, threshold, margin, confidence, ... | see explain/score_claims.py | pair
  texts only: "fused similarity 0.85", "0.07 above the threshold", "SFace calls it a match" |

Claims carry `subject` ("a"/"b" in pair texts when the wording says which photo, else None) and
`source` ("label" when the text attributes the value to the data set's labels); race claims also
`hedged` (the wording marks the group as uncertain: "possibly", "only 45%"). An unqualified
"left"/"right" is ambiguous (the viewer's or the subject's?), so such a turn only claims "turned".
Negated phrases ("not blurred", "no glasses") are not claims. Extraction is rule-based: it finds the
claims in facelm's own phrasing and common free-text wordings (e.g. GPT-4o's); claims worded in
other ways are missed (counted as nothing, never as supported).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Callable



@dataclass(frozen=True)
class Claim:
    kind: str
    value: Any
    text: str                      # the words the claim was read from
    subject: str | None = None     # "a" | "b" | None (the only face, or not attributable)
    source: str = "text"           # "text" | "label" (stated as the data set's label)
    # The unit of the last stated digit (0.01 for "0.85" or "97%") where the check compares at
    # the stated precision (identity scores); None where the check has its own tolerance.
    precision: float | None = None
    # The wording marks the value as uncertain: the audit lets an unsure estimate back only a
    # hedged claim (race; see eval/faithfulness.py).
    hedged: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "text": self.text,
                "subject": self.subject, "source": self.source, "precision": self.precision,
                "hedged": self.hedged}


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
# "n't" is glued to its verb ("doesn't", "aren't"): no word boundary before it.
_NEG = re.compile(r"(?:\b(?:no|not|never|without|nor|neither|cannot)\b|n't\b)(?:\W+\w+){0,3}\W*$",
                  re.I)
_DEG = r"(?P<deg>[-+−]?\d+(?:\.\d+)?)\s*(?:°|degrees?|deg\b)"

# ---- verdict -----------------------------------------------------------------------------------
_VERBS = r"show|shows|depict|depicts|indicate|indicates|are|is|of|be|as|verdict:?|count as"
_SAME = re.compile(rf"\b(?:(?:{_VERBS})\s+"
                   # the words between verb and "same" may not negate it ("are not the same")
                   r"(?:(?!not\b|never\b)\w+\s+){0,2}?(?:the\s+)?same\s+"
                   r"(?:person|individual|man|woman|identity)"
                   r"|(?:is|are)\s+a\s+match\b)", re.I)
_DIFF = re.compile(rf"\b(?:(?:{_VERBS})\s+"
                   r"(?:\w+\s+){0,2}?(?:two\s+)?(?:different|distinct|separate)\s+"
                   r"(?:people|persons|individuals|men|women|identities)"
                   r"|(?:not|n't)\s+(?:\w+\s+){0,3}?the\s+same\s+(?:person|individual)"
                   r"|different\s+people\b|two\s+different\s+(?:people|individuals|persons))"
                   # "doesn't show the same person": n't is glued to its verb, no \b before it
                   r"|n't\s+(?:\w+\s+){0,3}?the\s+same\s+(?:person|individual)", re.I)


def _verdict(text: str) -> list[Claim]:
    """The first verdict phrase in the text (later mentions repeat or hedge it)."""
    found = [(m.start(), False, m.group(0)) for m in _DIFF.finditer(text)]
    found += [(m.start(), True, m.group(0)) for m in _SAME.finditer(text)
              if not _negated(text, m.start())]
    if not found:
        return []
    _, same, words = min(found)
    return [Claim("verdict", same, words)]


# ---- per-sentence extractors -------------------------------------------------------------------
_DECADE = re.compile(r"\b(?:in\s+(?:his|her|their)\s+)?(early\s+|mid[- ]|late\s+)?(\d)0s\b", re.I)
_AGE_SPAN = re.compile(r"\b(\d{1,2})\s*(?:-|–|to)\s*(\d{1,2})(?:\s*years?(?:\s+old)?|\))", re.I)
_AGE_BETWEEN = re.compile(r"\bbetween\s+(\d{1,2})\s+and\s+(\d{1,2})\s+years", re.I)
_AGE_ONE = re.compile(r"\b(?:about|around|approximately|roughly|aged?|estimated(?: age)?:?)\s+"
                      r"(?:about\s+)?(\d{1,2})(?![.\d%°×]|\s*(?:px|%|°|×))(?:\s+years?)?\b"
                      r"|\b(\d{1,2})[- ]years?[- ]old\b", re.I)
_AGE_TWO = re.compile(r"\b(?:estimated|ages are|ages?:?)\s+(?:estimated\s+)?(\d{1,2})\s+(?:and|vs)"
                      r"\s+(\d{1,2})\b", re.I)
_AGE_WORDS = {"infant": (0, 2), "baby": (0, 2), "toddler": (1, 4), "child": (3, 12),
              "teenager": (13, 19), "teen": (13, 19), "young adult": (18, 30),
              "middle-aged": (40, 60), "middle aged": (40, 60), "elderly": (65, 100),
              "senior": (65, 100)}
_AGE_GAP = re.compile(r"\b(\d{1,2})[- ]year gap|\bgap\s+(\d{1,2})\s+years?\b"
                      r"|\((\d{1,2}) years? apart", re.I)


def _age(s: str) -> list[Claim]:
    out: list[Claim] = []
    if re.search(r"percentile|likely range", s, re.I):
        m = re.search(r"(\d{1,2})\s*[–-]\s*(\d{1,2})", s)
        if m:
            out.append(Claim("age", (float(m[1]), float(m[2])), m[0]))
    for m in _AGE_TWO.finditer(s):
        out += [Claim("age", (float(m[1]),) * 2, m[0], "a"),
                Claim("age", (float(m[2]),) * 2, m[0], "b")]
    if out:
        return out
    for m in list(_AGE_BETWEEN.finditer(s)) + list(_AGE_SPAN.finditer(s)):
        out.append(Claim("age", (float(m[1]), float(m[2])), m[0]))
    for m in _DECADE.finditer(s):
        lo = int(m[2]) * 10
        part = (m[1] or "").strip().lower()
        span = {"early": (lo, lo + 4), "late": (lo + 6, lo + 9)}.get(part, (lo + 3, lo + 7)
                                                                       if part else (lo, lo + 9))
        out.append(Claim("age", tuple(float(v) for v in span), m[0]))
    for m in re.finditer(r"\b(over|more than|older than|under|younger than)\s+(\d{1,2})\s+years?\b", s,
                         re.I):
        n = float(m[2])
        out.append(Claim("age", (n, 100.0) if m[1].lower() in ("over", "more than", "older than")
                         else (0.0, n), m[0]))
    if not out:
        for m in _AGE_ONE.finditer(s):
            out.append(Claim("age", (float(m[1] or m[2]),) * 2, m[0]))
    if not out:  # a life-stage word only when no number was given
        word = next((w for w in _AGE_WORDS if re.search(rf"\b{w}\b", s, re.I)), None)
        if word:
            out.append(Claim("age", tuple(float(v) for v in _AGE_WORDS[word]), word))
    return out


def _age_gap(s: str) -> list[Claim]:
    return [Claim("age_gap", float(next(g for g in m.groups() if g)), m[0])
            for m in _AGE_GAP.finditer(s)]


_MALE = r"male|man|boy|gentleman|guy"
_FEMALE = r"female|woman|girl|lady"
_GENDER_PAIR = re.compile(rf"\b({_MALE}|{_FEMALE})\b\s*(?:\([^)]*\))?\s+vs\.?\s+"
                          rf"\b({_MALE}|{_FEMALE})\b", re.I)


def _gender_word(w: str) -> str:
    return "female" if re.fullmatch(_FEMALE, w, re.I) else "male"


def _gender(s: str) -> list[Claim]:
    if re.search(r"uncertain gender|gender (?:is )?uncertain", s, re.I):
        return []
    m = _GENDER_PAIR.search(s)
    if m:
        return [Claim("gender", _gender_word(m[1]), m[0], "a"),
                Claim("gender", _gender_word(m[2]), m[0], "b")]
    if re.search(r"\bgenders differ\b|\bdifferent genders?\b", s, re.I):
        return [Claim("gender_match", False, "genders differ")]
    m = re.search(rf"\bboth\s+({_MALE}|{_FEMALE})\b", s, re.I)
    if m:
        return [Claim("gender", _gender_word(m[1]), m[0], "a"),
                Claim("gender", _gender_word(m[1]), m[0], "b")]
    words = re.findall(rf"\b({_MALE}|{_FEMALE}|men|women)\b", s, re.I)
    if not words:
        words = re.findall(r"\b(he|his|him|she|her|hers)\b", s, re.I)
        words = ["man" if w.lower() in ("he", "his", "him") else "woman" for w in words]
    if not words:
        return []
    w = "woman" if words[0].lower() == "women" else "man" if words[0].lower() == "men" else words[0]
    return [Claim("gender", _gender_word(w), words[0])]


_EXPR_WORDS = {
    "happy": r"happy|happiness|smiling|smiles?|joyful|cheerful|laughing",
    "sad": r"sad|sadness|unhappy|sorrowful|downcast",
    "angry": r"angry|anger|frowning|scowling|annoyed",
    "surprise": r"surprised?|astonished|amazed",
    "fear": r"fear|fearful|afraid|scared|frightened",
    "disgust": r"disgust|disgusted",
    "neutral": r"neutral|expressionless|blank expression|calm expression|serious expression",
}
_EXPR = re.compile(r"\b(" + "|".join(_EXPR_WORDS.values()) + r")\b", re.I)
_EXPR_PAIR = re.compile(r"\b(?:expression:?\s*\(?)(\w+)\s+vs\.?\s+(\w+)", re.I)


def _expr_name(word: str) -> str | None:
    return next((k for k, pat in _EXPR_WORDS.items() if re.fullmatch(pat, word, re.I)), None)


def _expression(s: str) -> list[Claim]:
    m = _EXPR_PAIR.search(s)
    if m and _expr_name(m[1]) and _expr_name(m[2]):
        return [Claim("expression", _expr_name(m[1]), m[0], "a"),
                Claim("expression", _expr_name(m[2]), m[0], "b")]
    m = re.search(r"\bexpression:?\s+both\s+(\w+)", s, re.I)
    if m and _expr_name(m[1]):
        return [Claim("expression", _expr_name(m[1]), m[0], "a"),
                Claim("expression", _expr_name(m[1]), m[0], "b")]
    if not re.search(r"expression|emotion|smil|looks|appears|seems|face (?:is|as)|reads|class",
                     s, re.I):
        return []
    # only the first expression word: later ones are runners-up ("with sad at 28%")
    m = _EXPR.search(s)
    if not m or _negated(s, m.start()):
        return []
    return [Claim("expression", _expr_name(m[1]), m[0])]


def _negated(s: str, at: int) -> bool:
    return bool(_NEG.search(s[max(0, at - 40):at]))


_YAW_IMG = re.compile(rf"turned\s+{_DEG}\s+towards the image's (left|right)", re.I)
_SIGNED = re.compile(r"\b(yaw|pitch|roll)s?\s+(?:of\s+)?([-+−]?\d+)°(?:\s+and\s+([-+−]?\d+)°)?",
                     re.I)


def _deg(x: str) -> float:
    return float(x.replace("−", "-"))


def _pose(s: str) -> list[Claim]:
    out: list[Claim] = []
    for m in _YAW_IMG.finditer(s):
        out.append(Claim("yaw", abs(_deg(m["deg"])) * (1 if m[2].lower() == "right" else -1), m[0]))
    for m in _SIGNED.finditer(s):
        if re.match(r"\s*gap", s[m.end(1):m.end(1) + 5], re.I):
            continue
        kind = m[1].lower()
        values = [(v, who) for v, who in ((m[2], "a"), (m[3], "b")) if v is not None]
        for v, who in values:
            # "yaw 10°" without a sign states only the size of the turn
            signed = v[0] in "+-−"
            out.append(Claim(kind if signed else f"{kind}_abs", abs(_deg(v)) if not signed
                             else _deg(v), m[0], who if len(values) == 2 else None))
    for m in re.finditer(r"(?:turned\s+|one face turned\s+|\()(\d+)°(?:\s+from frontal|\)| of yaw\))",
                         s, re.I):
        if m[0].startswith("(") == m[0].endswith("of yaw)") or "frontal" in m[0] or "one face" in m[0]:
            out.append(Claim("yaw_abs", float(m[1]), m[0]))
    for m in re.finditer(r"\((\d+)° of pitch\)", s, re.I):
        out.append(Claim("pitch_abs", float(m[1]), m[0]))
    for m in re.finditer(rf"(?:looking|tilted)\s+{_DEG}\s+(up|down)", s, re.I):
        out.append(Claim("pitch", abs(_deg(m["deg"])) * (1 if m[2].lower() == "up" else -1), m[0]))
    for m in re.finditer(rf"tilted\s+{_DEG}\s+(clockwise|counter-clockwise)", s, re.I):
        out.append(Claim("roll", abs(_deg(m["deg"])) * (-1 if m[2].lower().startswith("counter")
                                                        else 1), m[0]))
    if out:
        return out
    return _pose_words(s)


def _pose_words(s: str) -> list[Claim]:
    """Qualitative pose in free text."""
    out: list[Claim] = []
    m = re.search(r"\b(?:near[- ]frontal|frontal (?:view|pose)|facing (?:the camera|forward|"
                  r"straight)|looking (?:straight|directly) (?:at|into) the camera)\b", s, re.I)
    if m and not _negated(s, m.start()):
        out.append(Claim("frontal", True, m[0]))
    m = re.search(r"\b(?:profile|three-quarter|turned|turning|angled|facing)\b(?:\s+\w+){0,3}?"
                  r"\s+(?:to(?:wards)? the )?(left|right)\b|\bin profile\b|\bside view\b", s, re.I)
    if m and not _negated(s, m.start()) and not re.search(r"subject's|image's", m[0], re.I):
        profile = re.search(r"profile|side view", m[0], re.I)
        out.append(Claim("yaw", "profile" if profile else "turned", m[0]))
    m = re.search(r"\b(?:looking|tilted|facing|head)\s+(?:slightly\s+)?(up|upward|down|downward)s?\b",
                  s, re.I)
    if m and not _negated(s, m.start()):
        out.append(Claim("pitch", "up" if m[1].lower().startswith("up") else "down", m[0]))
    return out


_GAP_PATTERNS = {
    "yaw_gap": r"\byaw gap (\d+)°|\byaws? of [-+−]?\d+° and [-+−]?\d+° differ by (\d+)°"
               r"|\byaw [-+−]?\d+° and [-+−]?\d+° \(gap (\d+)°\)",
    "pitch_gap": r"\bpitch (?:gap|by) (\d+)°", "roll_gap": r"\broll (?:gap|by) (\d+)°",
    "brightness_gap": r"\bbrightness gap (\d+)%",
}


def _gaps(s: str) -> list[Claim]:
    out = []
    for kind, pat in _GAP_PATTERNS.items():
        for m in re.finditer(pat, s, re.I):
            v = float(next(g for g in m.groups() if g))
            out.append(Claim(kind, v / 100 if kind == "brightness_gap" else v, m[0]))
    return out


_BRIGHT_WORDS = [("dark", r"underexposed|too dark|dark(?![- ](?:hair|eye|skin|complexion|brown|"
                          r"beard|background|cloth|shirt|suit))|dimly lit|poorly lit|somewhat dim|dim|"
                          r"shadows lose detail"),
                 ("bright", r"overexposed|very bright|blown out|washed out|"
                            r"bright(?!\s+(?:smile|eyes?|colou?rs?|red|blue|green|yellow))"),
                 ("even", r"evenly (?:exposed|lit)|well[- ]lit|well[- ]exposed|good lighting|"
                          r"even lighting|balanced lighting|properly exposed")]
_SHARP_WORDS = [("blurred", r"blurred|blurry|out of focus|blur softens|motion-blurred"),
                ("soft", r"soft(?!\s+(?:shading|light|and even))"),
                ("sharp", r"moderately sharp|sharp|in focus|crisp|high resolution|clear image")]


_LIGHT_CONTEXT = re.compile(r"light|expos|illumin|bright|shadow|highlight|\b(?:face|image|photo)"
                            r"\s+(?:is|looks|appears)", re.I)
_FOCUS_CONTEXT = re.compile(r"focus|sharp|blur|crisp|resolution|clear image|detail|"
                            r"\b(?:face|image|photo|it)\s+(?:is|looks|appears)", re.I)


def _quality(s: str) -> list[Claim]:
    out: list[Claim] = []
    for m in re.finditer(r"\b(?:mean )?brightness (\d+)%(?: vs (\d+)%)?", s, re.I):
        out += [Claim("brightness", float(v) / 100, m[0]) for v in (m[1], m[2]) if v]
    for m in re.finditer(r"\bsharpness (\d+\.\d+)", s, re.I):
        out.append(Claim("sharpness", float(m[1]), m[0]))
    for kind, table, context in (("brightness", _BRIGHT_WORDS, _LIGHT_CONTEXT),
                                 ("sharpness", _SHARP_WORDS, _FOCUS_CONTEXT)):
        if not context.search(s):
            continue  # "dark hair", "a bright smile": level words count only in context
        taken: list[tuple[int, int]] = []
        for value, pat in table:
            for m in re.finditer(rf"\b(?:{pat})\b", s, re.I):
                if any(a <= m.start() < b for a, b in taken) or _negated(s, m.start()):
                    continue
                taken.append(m.span())
                out.append(Claim(kind, value, m[0]))
    return out


_GLASSES = re.compile(r"\b(?:eye)?glasses\b|\bspectacles\b|\bsunglasses\b|\beyewear\b", re.I)
_OCCLUSION = re.compile(r"\b(?:face mask|occlu\w+|covered by|covering|obscured|hidden by|"
                        r"partially hidden|hat|cap)\b", re.I)


def _accessories(s: str) -> list[Claim]:
    out = []
    for kind, pat in (("glasses", _GLASSES), ("occlusion", _OCCLUSION)):
        m = pat.search(s)
        if m and not _negated(s, m.start()):
            out.append(Claim(kind, True, m[0]))
    return out


# Plain registry: every extractor sees each sentence.
EXTRACTORS: dict[str, Callable[[str], list[Claim]]] = {
    "age": _age, "age_gap": _age_gap, "gender": _gender, "expression": _expression,
    "pose": _pose, "gaps": _gaps, "quality": _quality, "accessories": _accessories,
}
_LABEL_SENT = re.compile(r"\blabel(?:s|led|ed)?\b|according to the data ?set", re.I)
# Which photo a stretch of a pair text is about: "photo A", "the first image", "the second one"...
_SUBJECT = re.compile(r"\b(?:photo|image|picture) (?P<a>a|1|one)\b|\b(?:photo|image|picture) "
                      r"(?P<b>b|2|two)\b|\bthe (?:(?P<a2>first|left)|(?P<b2>second|right))\b"
                      r"(?:\s+(?:photo|image|picture|face|person|one))?", re.I)


def _by_subject(clause: str) -> list[tuple[str, str | None]]:
    """Split a clause where it turns to the other photo: [(text, "a"|"b"|None), ...]."""
    marks = [(m.start(), "a" if (m["a"] or m["a2"]) else "b") for m in _SUBJECT.finditer(clause)]
    if not marks:
        return [(clause, None)]
    if len({who for _, who in marks}) == 1:
        return [(clause, marks[0][1])]
    parts = [(clause[:marks[0][0]], None)] if marks[0][0] else []
    for (at, who), (nxt, _) in zip(marks, marks[1:] + [(len(clause), None)]):
        parts.append((clause[at:nxt], who))
    return parts


# Our own texts name the measuring model ("the age model", "SFace ...") in sentences that are not
# about the face itself; these are skipped by the per-sentence extractors.
_SKIP = re.compile(r"\bnot (?:estimated|measured|detected)\b|nothing is (?:claimed|said)|"
                   r"\bnone (?:is|are) (?:stated|claimed)|\bno model\b", re.I)


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


def extract_claims(text: str, *, pair: bool = False) -> list[Claim]:
    """All checkable claims in an explanation (pair=True: a text about two photos)."""
    # Imported here: score_claims and claims_demographics build on Claim and _negated from here.
    from .claims_demographics import RACE_EXTRACTORS, RACE_PAIR_EXTRACTORS, drop_race_shares
    from .score_claims import SCORE_EXTRACTORS
    extractors = [*EXTRACTORS.values(), *RACE_EXTRACTORS.values(),
                  *((*SCORE_EXTRACTORS.values(), *RACE_PAIR_EXTRACTORS.values()) if pair else ())]
    claims = _verdict(text) if pair else []
    for clause in (c for s in split_sentences(text) for c in s.split(";")):
        if _SKIP.search(clause):
            continue
        source = "label" if _LABEL_SENT.search(clause) else "text"
        for part, subject in (_by_subject(clause) if pair else [(clause, None)]):
            found = drop_race_shares([c for extract in extractors for c in extract(part)])
            claims += [replace(c, subject=c.subject or subject, source=source) for c in found]
    return claims
