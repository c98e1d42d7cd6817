"""The answer extractor on a table of tricky answers, including where FaceXBench's reference scorer
(first standalone capital letter) is wrong."""
from __future__ import annotations

import re

import pytest

from facelm.eval import extract_choice

GENDER = ["Female", "Male", "Both", "None of the above"]
AGE = ["20-29", "30-39", "more than 70", "3-9"]
IMAGES = ["Images 1 and 4", "Images 3 and 4", "Images 2 and 5", "Images 1 and 5"]
COUNT = ["2", "3", "0", "1"]
EXPR = ["Sad", "Surprise", "Disgust", "Happy"]
WHICH = ["Image 1", "Image 2", "None of the above", "Image 3"]
TOOLS = ["api_4-detect_spoofing, api_7-identify_high_res_face", "api_7-identify_high_res_face, api_4-detect_spoofing",
         "api_1-predict_age", "api_2-classify_gender"]

CASES = [
    # --- bare labels in their many forms
    ("A", GENDER, "A"), ("b", GENDER, "B"), ("(C)", GENDER, "C"), ("(d)", GENDER, "D"),
    ("B.", GENDER, "B"), ("C)", GENDER, "C"), ("[D]", GENDER, "D"), ("**A**", GENDER, "A"),
    ("  B  \n", GENDER, "B"), ("Ｃ", GENDER, "C"), ("\\boxed{D}", GENDER, "D"),
    ("<answer>B</answer>", GENDER, "B"), ("'C'", GENDER, "C"), ("Option B", GENDER, "B"),
    ("option (c)", GENDER, "C"), ("Answer: D", GENDER, "D"), ("`A`", GENDER, "A"),
    # --- explicit statements
    ("The answer is C.", GENDER, "C"), ("answer: (b)", GENDER, "B"), ("Final answer - D", GENDER, "D"),
    ("I choose B.", GENDER, "B"), ("I'd go with option C", GENDER, "C"),
    ("The correct option is d", GENDER, "D"), ("Correct answer: (A) Female", GENDER, "A"),
    ("Looking at the jawline and hair, the answer is B because the face looks masculine.", GENDER, "B"),
    ("The answer is not A, it is B.", GENDER, "B"),
    ("Option A seems plausible, but the answer is C.", GENDER, "C"),
    # --- leading labels with the option's text
    ("B) Male", GENDER, "B"), ("C. Both", GENDER, "C"), ("(D) None of the above", GENDER, "D"),
    ("A: Female", GENDER, "A"), ("B - Male", GENDER, "B"), ("A Female", GENDER, "A"),
    ("A. The person appears female.", GENDER, "A"), ("D) 1", COUNT, "D"),
    # --- the reference scorer's flaw: an article is not option A
    ("A man with short hair and a beard.", GENDER, None),
    ("A man with short hair; clearly male.", GENDER, "B"),
    ("A woman, so female.", GENDER, "A"),
    ("A clear, well-lit photo of a male face.", GENDER, "B"),
    ("A young adult, around 25 years old, so 20-29.", AGE, "A"),
    ("A smiling person: happy.", EXPR, "D"),
    ("A face that shows surprise", EXPR, "B"),
    # --- the option's text
    ("Female", GENDER, "A"), ("male", GENDER, "B"), ("The person is male.", GENDER, "B"),
    ("This is a female.", GENDER, "A"), ("The person is female, not male.", GENDER, "A"),
    ("Not female: male.", GENDER, "B"), ("more than 70", AGE, "C"),
    ("The person looks to be in the 30-39 range.", AGE, "B"), ("Images 3 and 4", IMAGES, "B"),
    ("images 2 and 5 show the same person", IMAGES, "C"), ("1", COUNT, "D"),
    ("There are 3 pairs.", COUNT, "B"), ("Image 2", WHICH, "B"), ("None of the above.", WHICH, "C"),
    ("The expression is one of surprise.", EXPR, "B"),
    # --- a lone label in a sentence
    ("I think it's B.", GENDER, "B"), ("Probably D", GENDER, "D"), ("I would say A.", GENDER, "A"),
    ("A is correct", GENDER, "A"), ("It has to be C, given the hair.", GENDER, "C"),
    ("__B__", GENDER, "B"), ("Not B. The answer is D.", GENDER, "D"), ("The piano B", GENDER, "B"),
    ("api_7-identify_high_res_face, api_4-detect_spoofing", TOOLS, "B"),
    # --- unparsed: say so rather than guess
    ("", GENDER, None), ("   ", GENDER, None), ("I cannot determine this from the image.", GENDER, None),
    ("A or B", GENDER, None), ("Either B or C.", GENDER, None), ("E", GENDER, None),
    ("The answer is E.", GENDER, None), ("Female or male, hard to say.", GENDER, None),
    ("I'm not sure.", WHICH, None), ("The answer is a man.", GENDER, None),
    ("Images 1 and 4 or Images 3 and 4", IMAGES, None),
    ("I cannot choose an option: race: no race classifier ships offline.", ["White", "Black", "Asian", "Indian"], None),
]


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("text,options,expected", CASES, ids=[repr(c[0])[:40] for c in CASES])
def test_extract_choice(text: str, options: list[str], expected: str | None) -> None:
    assert extract_choice(text, options) == expected


def _reference_first_capital(text: str, letters: str = "ABCD") -> str | None:
    """FaceXBench's first rule: the first standalone letter (reference scorer, simplified)."""
    m = re.match(r"\b\(?([A-Za-z])\)?\b", text.strip())
    return m.group(1) if m and m.group(1) in letters else None


def test_reference_flaw_is_not_reproduced() -> None:
    text = "A man with short hair and a beard."
    assert _reference_first_capital(text) == "A"          # the reference counts this as option A
    assert extract_choice(text, GENDER) is None             # we report it unparsed


def test_more_options_than_four() -> None:
    opts = ["w", "x", "y", "z", "v"]
    assert extract_choice("(E)", opts) == "E"
    assert extract_choice("(E)", opts[:4]) is None


def test_non_string_is_unparsed() -> None:
    assert extract_choice(None, GENDER) is None  # type: ignore[arg-type]
