"""Known labels in natural words for the teacher prompt, and the leakage check for student questions.

Every label set a face data set uses is mapped, not assumed: FairFace's nine age bins ("0-2" …
"more than 70") and seven groups (White, Black, Indian, East Asian, Southeast Asian, Middle Eastern,
Latino_Hispanic), UTKFace's exact ages and five groups (White, Black, Asian, Indian, Others), and
free-text values from any other CSV (stated verbatim rather than dropped).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

# Canonical gender words; data sets spell them many ways.
_GENDER = {"male": "male", "m": "male", "man": "male", "men": "male",
           "female": "female", "f": "female", "woman": "female", "women": "female"}
_GENDER_NOUN = {"male": "man", "female": "woman"}
_CHILD_NOUN = {"male": "boy", "female": "girl"}
CHILD_AGE = 13  # below this (exact age, or a bin that ends below it) "boy"/"girl", not "man"/"woman"
# Ethnic group phrases. Keys are lower-cased with spaces/underscores/hyphens folded to "_".
_RACE = {
    "white": "White", "black": "Black", "indian": "Indian", "asian": "Asian",
    "east_asian": "East Asian", "southeast_asian": "Southeast Asian",
    "middle_eastern": "Middle Eastern", "latino_hispanic": "Latino or Hispanic",
    "latino": "Latino or Hispanic", "hispanic": "Latino or Hispanic",
}
# UTKFace's "Others" is a residual class (Hispanic, Latino, Middle Eastern, ...): say exactly that.
_RACE_OTHER = ("others", "other")
_OTHER_PHRASE = "of an ethnicity outside the White, Black, Asian and Indian groups"
# Words that, in a student question, would give a label away (besides the label values themselves).
_GENDER_TELLS = {"male": ("male", "man", "men", "boy", "boys", "gentleman", "he", "his", "him"),
                 "female": ("female", "woman", "women", "girl", "girls", "lady", "she", "her",
                            "hers")}
_AGE_TELLS = ("infant", "baby", "toddler", "child", "teen", "teenager", "elderly", "senior",
              "years old", "year-old", "aged", "twenties", "thirties", "forties", "fifties",
              "sixties", "seventies")
_BIN = re.compile(r"^\s*(\d+)\s*[-–]\s*(\d+)\s*$")
_OVER = re.compile(r"^\s*(?:more than|over|>|above)\s*(\d+)\s*\+?\s*$|^\s*(\d+)\s*\+\s*$", re.I)


@dataclass(frozen=True)
class LabelPhrases:
    """One image's labels as prompt phrases (None where the label is absent)."""
    age: str | None
    gender: str | None
    ethnicity: str | None

    def sentence(self) -> str:
        """'The person is a woman, Black, between 20 and 29 years old.' (only known parts)."""
        parts = []
        if self.gender:
            parts.append(f"a {self.gender}")
        if self.ethnicity:
            parts.append(self.ethnicity)
        if self.age:
            parts.append(self.age)
        if not parts:
            return "No labels are known for this person."
        return "According to the data set's labels, the person is " + ", ".join(parts) + "."


def _key(value: Any) -> str:
    return re.sub(r"[\s\-_/]+", "_", str(value).strip().lower())


def canonical_gender(value: Any) -> str | None:
    """'male' / 'female' for the usual spellings ("M", "Woman", "female"...); None otherwise."""
    return None if value is None else _GENDER.get(_key(value))


def age_phrase(value: Any) -> str | None:
    """'about 34 years old' (exact age), 'between 20 and 29 years old' (bin), 'over 70 years old'."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    try:
        years = float(text)
    except ValueError:
        years = None
    if years is not None:
        if years < 1:
            return "a baby under one year old"
        return f"about {int(round(years))} year{'s' if round(years) != 1 else ''} old"
    m = _BIN.match(text)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        return f"between {lo} and {hi} years old" + (" (an infant or toddler)" if hi <= 2 else "")
    m = _OVER.match(text)
    if m:
        return f"over {m.group(1) or m.group(2)} years old"
    return f"in the age group '{text}'"


# Older than anyone on record: an age label above this is a typo or the wrong column.
MAX_AGE = 120


# The upper end given to an open bin ("more than 70" -> 70..OPEN_BIN_END).
OPEN_BIN_END = 200.0


def age_bin_bounds(value: Any) -> tuple[float, float] | None:
    """(lo, hi) years of a bin label "20-29", or of an open bin "more than 70" / "70+" (hi =
    OPEN_BIN_END); None for anything else (an exact age included)."""
    text = str(value if value is not None else "").strip()
    m = _BIN.match(text) or _OVER.match(text)
    if not m:
        return None
    nums = [float(n) for n in m.groups() if n is not None]
    return (nums[0], nums[1]) if len(nums) == 2 else (nums[0], OPEN_BIN_END)


def age_label_problem(value: Any) -> str | None:
    """Why an age label cannot be right, or None: labels are exact ages 0..MAX_AGE, bins
    ("20-29") or open bins ("more than 70", "70+"), the forms age_phrase reads."""
    text = str(value).strip()
    bounds = age_bin_bounds(text)
    if bounds:
        nums = [bounds[0]] if bounds[1] == OPEN_BIN_END else list(bounds)
    else:
        try:
            nums = [float(text)]
        except ValueError:
            return f"age={text!r} is not a number, a bin such as 20-29, or 'more than 70'"
    if not all(0 <= n <= MAX_AGE for n in nums):  # also refuses nan (every comparison fails)
        return f"age={text!r} is outside 0..{MAX_AGE} years"
    if len(nums) == 2 and nums[0] > nums[1]:
        return f"age={text!r} is a bin that ends before it starts"
    return None


def _is_child(age: Any) -> bool:
    nums = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", str(age or ""))]
    return bool(nums) and max(nums) < CHILD_AGE and not _OVER.match(str(age))


def gender_word(value: Any, age: Any = None) -> str | None:
    """'man' / 'woman' ('boy' / 'girl' under CHILD_AGE) for the usual spellings; other values are
    kept as given."""
    if value is None or str(value).strip() == "":
        return None
    g = canonical_gender(value)
    if g is None:
        return f"person of gender '{str(value).strip()}'"
    return (_CHILD_NOUN if _is_child(age) else _GENDER_NOUN)[g]


def ethnicity_phrase(value: Any) -> str | None:
    if value is None or str(value).strip() == "":
        return None
    k = _key(value)
    if k in _RACE_OTHER:
        return _OTHER_PHRASE
    group = _RACE.get(k)
    return f"of {group} ethnicity" if group else f"of the ethnic group labelled '{str(value).strip()}'"


def phrases(labels: Mapping[str, Any]) -> LabelPhrases:
    """Prompt phrases for labels with keys 'age', 'gender', 'race' (any may be missing)."""
    return LabelPhrases(age=age_phrase(labels.get("age")), gender=gender_word(labels.get("gender"), labels.get("age")),
                        ethnicity=ethnicity_phrase(labels.get("race")))


def _tells(labels: Mapping[str, Any]) -> list[str]:
    """Words and values that, found in a question, reveal one of these labels."""
    out: list[str] = []
    g = labels.get("gender")
    if g not in (None, ""):
        out += [str(g).strip()] + list(_GENDER_TELLS.get(canonical_gender(g) or "", ()))
    r = labels.get("race")
    if r not in (None, ""):
        out.append(str(r).strip())
        k = _key(r)
        if k in _RACE:
            out += [_RACE[k]] + _RACE[k].split(" or ")
        out += k.split("_")
    a = labels.get("age")
    if a not in (None, ""):
        out += [str(a).strip()] + re.findall(r"\d+", str(a)) + list(_AGE_TELLS)
    generic = {"others", "other", "of", "and", "or", "east", "south", "middle"}
    unique = {t.lower(): t for t in out if t and t.lower() not in generic}
    return sorted(unique.values(), key=len, reverse=True)


def leaked_labels(question: str, labels: Mapping[str, Any]) -> list[str]:
    """The label words a student question reveals (empty when it reveals none).

    Matching is on whole words, case-insensitive, so 'Describe the human face' does not trip on
    'man' but 'Describe the woman' trips on a female label.
    """
    found: list[str] = []
    for m in _tells_pattern(tuple(sorted((k, str(v)) for k, v in labels.items()))).finditer(question):
        if m.group(0) not in found:
            found.append(m.group(0))   # as written in the question
    return found


@lru_cache(maxsize=4096)
def _tells_pattern(labels: tuple[tuple[str, str], ...]) -> re.Pattern:
    # One alternation per label set (longest first), compiled once: the check runs on every item.
    tells = _tells(dict(labels)) or ["\x00never\x00"]
    return re.compile(r"(?<![\w])(?:" + "|".join(re.escape(t) for t in tells) + r")(?![\w])", re.I)
