"""facelm's top-level verbs: analyze, compare, describe.

    import facelm
    cmp = facelm.compare("a.jpg", "b.jpg")
    print(cmp.same, cmp.score, cmp.explanation.concise)
    print(facelm.describe("a.jpg", aspect="pose").answers["pose"])
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .faces.analysis import analyze as _analyze
from .faces.types import FaceAnalysis
from .imageio import DEFAULT_MAX_PIXELS, ImageInput
from .verify import Comparison, compare_analyses


def analyze(image: ImageInput, *, fast: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
            name: str | None = None) -> FaceAnalysis:
    """Analyse the main face of an image (path, bytes, numpy RGB array or PIL image).

    fast=True skips age, gender and expression (identity-only). Raises ImageLoadError,
    ImageTooLargeError or NoFaceError with a message naming the image and what to do.
    """
    return _analyze(image, fast=fast, max_pixels=max_pixels, name=name)


def compare(image_a: ImageInput | FaceAnalysis, image_b: ImageInput | FaceAnalysis, *,
            fast: bool = False, threshold: float | None = None, explain: bool = True,
            seed: int = 0) -> Comparison:
    """Decide whether two photos show the same person, with the evidence and an explanation.

    Inputs may be images or FaceAnalysis results (so a face analysed once can be reused).
    threshold defaults to the operating point calibrated on LFW View 1 (see facelm.calibration).
    """
    a = image_a if isinstance(image_a, FaceAnalysis) else analyze(image_a, fast=fast)
    b = image_b if isinstance(image_b, FaceAnalysis) else analyze(image_b, fast=fast)
    cmp = compare_analyses(a, b, threshold=threshold)
    if explain:
        from .explain import explain_pair
        cmp = dataclasses.replace(cmp, explanation=explain_pair(cmp, seed=seed))
    return cmp


@dataclass(frozen=True)
class Description:
    analysis: FaceAnalysis
    answers: dict[str, str]   # aspect name -> answer

    def to_dict(self, *, embeddings: bool = False) -> dict[str, Any]:
        return {"answers": dict(self.answers),
                "analysis": self.analysis.to_dict(embeddings=embeddings)}  # rounded already


def describe(image: ImageInput | FaceAnalysis, aspect: str | None = None, *, seed: int = 0) -> Description:
    """Answer questions about one face: one aspect, or all eight when aspect is None."""
    from .explain import describe_all, describe_face
    a = image if isinstance(image, FaceAnalysis) else analyze(image)
    answers = describe_all(a, seed=seed) if aspect is None else {aspect: describe_face(a, aspect, seed=seed)}
    return Description(analysis=a, answers=answers)
