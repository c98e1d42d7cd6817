"""Which option did a model choose? `extract_choice(text, options)` -> "A".."D" or None.

FaceXBench's reference scorer takes the first standalone capital letter anywhere in the answer, so
"A man with glasses" scores as option A. This extractor only accepts a letter where it is used as
an option label, and otherwise the option's own text; when it cannot tell, it returns None
("unparsed") instead of guessing. The rules, in order (the first that decides wins):

1. the whole answer is a label: "B", "(b)", "C.", "[D]", "**A**", "<answer>C</answer>", "\\boxed{B}";
2. an explicit statement: "the answer is C", "Answer: (b)", "final answer - D", "I choose B",
   "I'd go with option C" (negated ones like "not A" are ignored; different letters -> None);
3. a label at the start: "B) Female", "C. Image 2", "(D) 3", "A: Male", "B - Female", or the letter
   followed by that option's text ("A Male"); "A man with ..." is NOT a label;
4. labels elsewhere: "option C", "choice D", "(B)"; one letter only;
5. the option's text: the answer equals one option, or mentions exactly one (whole words, longest
   match first so "Female" never counts as "Male", negated mentions like "not male" dropped);
6. a lone capital letter used as a label in a sentence ("I think it's B."): "A" only where it cannot
   be the article (followed by punctuation or the end).
"""
from __future__ import annotations

import re
import unicodedata
from typing import Sequence

_NEG = r"(?:\b(?:not|never|no|except|rather than|instead of|exclude|excluding)|n't)"
_CONNECT = {"because", "since", "as", "is", "seems", "appears", "would", "fits", "matches",
            "best", "looks", "here", "again", "then", "and", "or"}


_CONNECT_RE = re.compile(r"[ \t]+(?:%s)\b" % "|".join(sorted(_CONNECT)))


def _letters(options: Sequence[str]) -> str:
    return "".join(chr(ord("A") + i) for i in range(max(len(options), 1)))


def _clean(text: str) -> str:
    t = unicodedata.normalize("NFKC", text)             # full-width "Ｂ" -> "B"
    t = re.sub(r"\\boxed\{([^}]*)\}", r" \1 ", t)
    t = re.sub(r"</?(answer|final|choice)>", " ", t, flags=re.I)
    t = re.sub(r"[*`#]+", "", t)                           # markdown emphasis and code
    t = re.sub(r"(?<!\w)_+|_+(?!\w)", "", t)               # _emphasis_, keeping api_7-like names
    return re.sub(r"\s+", " ", t).strip()


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.lower()).strip().strip(" .!;:'\"")


def _whole(text: str, valid: str) -> str | None:
    m = re.fullmatch(r"[(\[{'\"]?\s*(?:option|choice|answer)?\s*[(\[]?([A-Za-z])[)\]}'\"]?[.:!]?", text.strip(),
                     flags=re.I)
    if m and m.group(1).upper() in valid:
        return m.group(1).upper()
    return None


def _negated(text: str, start: int) -> bool:
    before = text[max(0, start - 16):start].lower()
    return re.search(_NEG + r"\s*(?:option|choice)?\s*\(?$", before) is not None


def _label_ok(text: str, end: int, letter: str) -> bool:
    """A letter followed by a lowercase word is prose ("A man"), unless the word continues a label
    ("A because ...", "B seems right"); only "A" doubles as an English word."""
    m = re.match(r"[ \t]+([a-z][a-z']*)", text[end:])
    return m is None or letter.upper() != "A" or m.group(1) in _CONNECT


def _unique(found: list[str]) -> str | None | bool:
    """One distinct letter -> it; none -> False (rule does not decide); several -> None."""
    distinct = set(found)
    if not distinct:
        return False
    return found[0] if len(distinct) == 1 else None


_STATEMENT = re.compile(
    r"(?:\banswer\b(?:\s+(?:is|would be|should be|will be|=))?|\bchoose\b|\bchoice is\b|\bpick\b|"
    r"\bselect\b|\bgo with\b|\bcorrect (?:option|choice|letter) is\b|\boption is\b)"
    r"\s*[:\-=]?\s*(?:option|choice|letter)?\s*[(\[]?\s*([A-Za-z])\b\)?", re.I)


def _statements(text: str, valid: str) -> str | None | bool:
    found = []
    for m in _STATEMENT.finditer(text):
        letter = m.group(1)
        if letter.upper() in valid and not _negated(text, m.start()) and _label_ok(text, m.end(1), letter):
            found.append(letter.upper())
    return _unique(found)


def _leading(text: str, valid: str, options: Sequence[str]) -> str | None:
    m = re.match(r"[(\[]?([A-Za-z])\s*(?:[)\]:.]|-\s|$)", text)
    if m and m.group(1).upper() in valid:
        if m.group(1).islower() and not re.match(r"[(\[]?[a-z]\s*[)\]]", text):
            return None  # "a." or "a:" lowercase without brackets is too often prose
        return m.group(1).upper()
    m = re.match(r"([A-Z])\s+(.+)", text)
    if m and m.group(1) in valid:
        opt = _norm(options[ord(m.group(1)) - ord("A")])
        if opt and _norm(m.group(2)).startswith(opt):
            return m.group(1)
    return None


def _labels_anywhere(text: str, valid: str) -> str | None | bool:
    found = []
    for m in re.finditer(r"\b(?:option|choice)\s*[(\[]?([A-Za-z])\b|\(([A-Za-z])\)", text, re.I):
        letter = m.group(1) or m.group(2)
        if letter.upper() in valid and not _negated(text, m.start()):
            found.append(letter.upper())
    return _unique(found)


def _option_text(text: str, options: Sequence[str]) -> str | None | bool:
    t = _norm(text)
    norms = [_norm(_clean(str(o))) for o in options]  # cleaned like the answer
    for i, o in enumerate(norms):
        if o and t == o:
            return chr(ord("A") + i)
    # longest options first, each match blanks its span so "female" cannot also match "male"
    order = sorted(range(len(norms)), key=lambda i: -len(norms[i]))
    hits: list[int] = []
    work = t
    for i in order:
        o = norms[i]
        if not o:
            continue
        pat = re.compile(r"(?<![\w-])" + re.escape(o) + r"(?![\w-])")
        spans = [m for m in pat.finditer(work)]
        kept = [m for m in spans if not _negated(work, m.start())]
        if spans:
            work = pat.sub(lambda m: " " * len(m.group(0)), work)
        if kept:
            hits.append(i)
    if not hits:
        return False
    return chr(ord("A") + hits[0]) if len(hits) == 1 else None


def _lone_letter(text: str, valid: str) -> str | None | bool:
    found = []
    for m in re.finditer(r"(?<![\w'’-])([A-Z])(?![\w'’-])", text):
        letter = m.group(1)
        if letter not in valid or _negated(text, m.start()):
            continue
        after = text[m.end():]
        punct = re.match(r"\s*(?:[.,;:!?)\]]|$)", after)
        if letter == "A" and not (punct or _CONNECT_RE.match(after)):
            continue  # "A man", "A clear ...": the article, the reference scorer's flaw
        found.append(letter)
    return _unique(found)


def extract_choice(text: str, options: Sequence[str]) -> str | None:
    """The option letter ("A".."D" for four options) that `text` chooses, or None if it cannot be
    told (no label, several different labels, or text matching no single option)."""
    if not isinstance(text, str):
        return None
    t = _clean(text)
    if not t:
        return None
    valid = _letters(options)
    whole = _whole(t, valid)
    if whole:
        return whole
    for rule in (lambda: _statements(t, valid), lambda: _leading(t, valid, options) or False,
                 lambda: _labels_anywhere(t, valid), lambda: _option_text(t, options),
                 lambda: _lone_letter(t, valid)):
        got = rule()
        if got is not False:
            return got  # a letter, or None when the rule found conflicting answers
    return None
