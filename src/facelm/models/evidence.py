"""The offline evidence model: facelm's measurements behind the `FaceVLM` interface.

* Free questions: one photo -> the per-aspect description the question asks for (facelm.explain);
  two photos -> the verification verdict with its concise or detailed explanation.
* Multiple choice (a prompt listing "(A) ..." options, as FaceXBench writes them): each option is
  scored against the measured analysis (age bins, gender, race, expression, same person via
  compare); `generate` answers with the best option's letter and the measurement behind it.
* Honest where nothing was measured: tool use, race without the race head (FACELM_ATTRIBUTES=
  dlib-v1) and any unrecognised question get a plain "cannot answer" with no option letter, and `score_choices`
  raises NotImplementedError so a benchmark runner falls back to generation and counts it unparsed.

    from facelm.models import load_model
    m = load_model("evidence")
    m.generate(["face.jpg"], "Describe the pose of the face.")
"""
from __future__ import annotations

import math
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

from ..faces.types import FaceAnalysis
from .base import FaceVLM, ImageInput
from .evidence_mcq import Unanswerable, option_probabilities

CACHE_SIZE = 256  # analyses kept, by path: FaceXBench-style questions reuse photos across questions

_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])[\).:]\s+(.*\S)\s*$")
_INSTRUCTION = re.compile(r"^\s*(please answer|answer with|provide only)", re.I)

# Words in a free question -> facelm.explain aspect (checked in this order; first hit wins).
_ASPECT_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("demographics", ("demographic", "age", "gender", "ethnic", "how old")),
    ("facial_structure", ("structure", "features", "jaw", "nose", "eyes")),
    ("skin_texture", ("skin", "texture", "wrinkle")),
    ("expression", ("expression", "emotion", "smil", "mood")),
    ("lighting_quality", ("lighting", "quality", "bright", "blur", "sharp")),
    ("pose", ("pose", "orientation", "head", "turned", "profile")),
    ("forensic", ("forensic", "occlu")),
)


def parse_mcq(prompt: str) -> tuple[str, list[str]] | None:
    """(question, options) from a prompt listing options one per line as "(A) text"; else None."""
    lines = [ln for ln in prompt.splitlines() if ln.strip()]
    opts: list[str] = []
    rest: list[str] = []
    for ln in lines:
        m = _OPTION_LINE.match(ln)
        if m and m.group(1) == chr(ord("A") + len(opts)):
            opts.append(m.group(2))
        elif not _INSTRUCTION.match(ln):
            rest.append(ln.strip())
    if len(opts) < 2 or not rest:
        return None
    # FaceXBench puts the task description (and tool context) first, the question last.
    return rest[-1], opts


class EvidenceVLM(FaceVLM):
    """Answers from measurements only; never states what it did not measure."""

    name = "evidence"

    def __init__(self, fast: bool = False, seed: int = 0) -> None:
        self.fast = fast
        self.seed = seed
        self._cache: OrderedDict[str, FaceAnalysis] = OrderedDict()

    # -- analyses ---------------------------------------------------------------------------------
    def analyse(self, image: ImageInput | FaceAnalysis) -> FaceAnalysis:
        if isinstance(image, FaceAnalysis):
            return image
        key = str(Path(image).resolve()) if isinstance(image, (str, Path)) else None
        if key is not None and key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        from ..api import analyze
        a = analyze(image, fast=self.fast)
        if key is not None:
            self._cache[key] = a
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return a

    def _pair_probability(self, faces: Sequence[FaceAnalysis]) -> Any:
        from ..verify import compare_analyses
        memo: dict[tuple[int, int], float] = {}

        def pair(i: int, j: int) -> float:
            if (i, j) not in memo:
                memo[(i, j)] = compare_analyses(faces[i], faces[j]).probability
            return memo[(i, j)]
        return pair

    # -- FaceVLM ----------------------------------------------------------------------------------
    def score_choices(self, images: Sequence[ImageInput], prompt: str,
                      choices: Sequence[str]) -> list[float]:
        """Log-probability of each option under the measurements; NotImplementedError where
        nothing measured answers the question (tools, unrecognised kinds)."""
        parsed = parse_mcq(prompt)
        question = parsed[0] if parsed else prompt.strip().splitlines()[-1]
        faces = [self.analyse(im) for im in images]
        try:
            _, probs = option_probabilities(faces, question, list(choices),
                                            self._pair_probability(faces))
        except Unanswerable as exc:
            raise NotImplementedError(f"evidence model: {exc}") from exc
        return [math.log(max(p, 1e-12)) for p in probs]

    def generate_batch(self, items: Sequence[tuple[Sequence[ImageInput], str]],
                       **gen: Any) -> list[str]:
        """Each distinct image analysed once for the whole batch: `ask` (the server, the CLI) puts
        the same decoded arrays behind every question, and the path cache cannot key arrays."""
        seen: dict[int, FaceAnalysis] = {}

        def once(image: ImageInput | FaceAnalysis) -> FaceAnalysis:
            if id(image) not in seen:  # the items hold every image, so ids stay unique here
                seen[id(image)] = self.analyse(image)
            return seen[id(image)]
        return [self.generate([once(im) for im in images], prompt, **gen) for images, prompt in items]

    def generate(self, images: Sequence[ImageInput], prompt: str, *, max_new_tokens: int = 256,
                 do_sample: bool = False, temperature: float = 1.0, seed: int = 0) -> str:
        parsed = parse_mcq(prompt)
        if parsed is not None:
            return self._answer_mcq(images, *parsed)
        faces = [self.analyse(im) for im in images]
        if len(faces) == 2:
            return self._explain_pair(faces, prompt, seed)
        if len(faces) == 1:
            from ..explain import describe_face
            return describe_face(faces[0], _aspect_for(prompt), seed=seed)
        return ("I can only answer free questions about one photo (a description) or two photos "
                f"(same person or not); {len(faces)} were given.")

    def _answer_mcq(self, images: Sequence[ImageInput], question: str, options: list[str]) -> str:
        faces = [self.analyse(im) for im in images]
        try:
            kind, probs = option_probabilities(faces, question, options,
                                               self._pair_probability(faces))
        except Unanswerable as exc:
            return f"I cannot choose an option: {exc}. I would only be guessing."
        best = max(range(len(probs)), key=probs.__getitem__)
        if sum(p == probs[best] for p in probs) > 1:
            return "I cannot choose an option: the measurements support two options equally."
        share = probs[best] / max(sum(probs), 1e-12)
        return f"({chr(ord('A') + best)}) {options[best]} [{kind}: {share:.0%} of the measured evidence]"

    def _explain_pair(self, faces: Sequence[FaceAnalysis], prompt: str, seed: int) -> str:
        from ..api import compare
        cmp = compare(faces[0], faces[1], seed=seed)
        detailed = re.search(r"\b(detail|comprehensive|thorough|in depth)", prompt, re.I)
        return cmp.explanation.detailed if detailed else cmp.explanation.concise


def _aspect_for(prompt: str) -> str:
    from ..data.schema import QA_QUESTIONS
    for aspect, question in QA_QUESTIONS.items():  # the questions facelm's own data asks
        if prompt.strip() == question:
            return aspect
    p = prompt.lower()
    for aspect, words in _ASPECT_WORDS:
        # word starts only: "age" must not fire inside "image"
        if any(re.search(r"\b" + re.escape(w), p) for w in (aspect.replace("_", " "), *words)):
            return aspect
    return "general"


def load(**kwargs: Any) -> EvidenceVLM:
    """Registry entry point (`load_model("evidence")`); kwargs: fast, seed."""
    return EvidenceVLM(**kwargs)
