"""facelm's top-level verbs: analyze, compare, describe, search.

    import facelm
    cmp = facelm.compare("a.jpg", "b.jpg")
    print(cmp.same, cmp.score, cmp.explanation.concise)
    print(facelm.describe("a.jpg", aspect="pose").answers["pose"])
    group = facelm.analyze("group.jpg", face="all")      # every face, numbered left to right
    cmp = facelm.compare("group.jpg", "b.jpg", face="all")  # the best-matching pair of faces
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, overload

from .errors import InputFormatError
from .faces.analysis import analyze as _analyze
from .faces.analysis import analyze_faces as _analyze_faces
from .faces.select import DEFAULT_FACE, FaceChoice, parse_face
from .faces.types import FaceAnalysis, FaceSet
from .imageio import DEFAULT_MAX_PIXELS, ImageInput
from .verify import Comparison, compare_analyses


@overload
def analyze(image: ImageInput, *, fast: bool = ..., max_pixels: int = ..., name: str | None = ...,
            face: Literal["all"]) -> FaceSet: ...
@overload
def analyze(image: ImageInput, *, fast: bool = ..., max_pixels: int = ..., name: str | None = ...,
            face: FaceChoice = ...) -> FaceAnalysis: ...


def analyze(image: ImageInput, *, fast: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
            name: str | None = None, face: FaceChoice = DEFAULT_FACE) -> FaceAnalysis | FaceSet:
    """Analyse a face of an image (path, bytes, numpy RGB array or PIL image).

    face: "central" (default: large and near the centre), "largest" (biggest box), a face number N
    (0-based, left to right by box centre), or "all" (a FaceSet of every face). When several faces
    are found and one is chosen, the analysis' `warnings` says so.
    fast=True skips age, gender and expression (identity-only). Raises ImageLoadError,
    ImageTooLargeError or NoFaceError with a message naming the image and what to do.
    """
    choice = parse_face(face, item="face")
    if choice == "all":
        return _analyze_faces(image, fast=fast, max_pixels=max_pixels, name=name)
    return _analyze(image, fast=fast, max_pixels=max_pixels, name=name, face=choice)


def compare(image_a: ImageInput | FaceAnalysis | FaceSet, image_b: ImageInput | FaceAnalysis | FaceSet,
            *, fast: bool = False, threshold: float | None = None, explain: bool = True,
            seed: int = 0, face: FaceChoice = DEFAULT_FACE) -> Comparison:
    """Decide whether two photos show the same person, with the evidence and an explanation.

    Inputs may be images or FaceAnalysis results (so a face analysed once can be reused).
    face chooses the face of each image as in analyze; with face="all" every face of A is compared
    with every face of B (inputs may then be FaceSets too) and the best-matching pair is judged,
    named in the result's `face_pair`.
    threshold defaults to the operating point calibrated on LFW View 1 (see facelm.calibration;
    with FACELM_SCORE_NORM=fsn-v1 the score is FSN-normalised and the default is FSN's, see
    facelm.score_norm).
    """
    choice = parse_face(face, item="face")
    if choice == "all":
        from .multiface import as_face_set, best_pair
        sets = [x if isinstance(x, FaceSet) else as_face_set(x) if isinstance(x, FaceAnalysis)
                else analyze(x, fast=fast, face="all") for x in (image_a, image_b)]
        cmp = best_pair(sets[0], sets[1], threshold=threshold)
    else:
        a, b = (_one_face(x, fast, choice) for x in (image_a, image_b))
        cmp = compare_analyses(a, b, threshold=threshold)
    if explain:
        from .explain import explain_pair
        cmp = dataclasses.replace(cmp, explanation=explain_pair(cmp, seed=seed))
    return cmp


def _one_face(x: ImageInput | FaceAnalysis | FaceSet, fast: bool, choice: FaceChoice) -> FaceAnalysis:
    if isinstance(x, FaceAnalysis):
        return x
    if isinstance(x, FaceSet):
        raise InputFormatError("a FaceSet holds every face of a photo", item=x.source,
                               hint='compare it with face="all", or pass one of its .faces')
    return analyze(x, fast=fast, face=choice)


@dataclass(frozen=True)
class Description:
    analysis: FaceAnalysis
    answers: dict[str, str]   # aspect name -> answer

    def to_dict(self, *, embeddings: bool = False) -> dict[str, Any]:
        return {"answers": dict(self.answers),
                "analysis": self.analysis.to_dict(embeddings=embeddings),  # rounded already
                "warnings": list(self.analysis.warnings)}


@dataclass(frozen=True)
class FaceSetDescription:
    """describe(..., face="all"): one Description per face, numbered from 0 left to right."""
    faces: FaceSet
    descriptions: tuple[Description, ...]

    def to_dict(self, *, embeddings: bool = False) -> dict[str, Any]:
        return {**self.faces.to_dict(), "faces": [d.to_dict(embeddings=embeddings)
                                                  for d in self.descriptions]}


def describe(image: ImageInput | FaceAnalysis | FaceSet, aspect: str | None = None, *, seed: int = 0,
             face: FaceChoice = DEFAULT_FACE) -> Description | FaceSetDescription:
    """Answer questions about one face (one aspect, or all eight when aspect is None); face chooses
    it as in analyze, and face="all" (or a FaceSet) describes every face (a FaceSetDescription)."""
    choice = parse_face(face, item="face")
    if isinstance(image, FaceSet) or (choice == "all" and not isinstance(image, FaceAnalysis)):
        faces = image if isinstance(image, FaceSet) else analyze(image, face="all")
        return FaceSetDescription(faces, tuple(_describe(a, aspect, seed) for a in faces.faces))
    a = image if isinstance(image, FaceAnalysis) else analyze(image, face=choice)
    return _describe(a, aspect, seed)


def _describe(a: FaceAnalysis, aspect: str | None, seed: int) -> Description:
    from .explain import describe_all, describe_face
    answers = describe_all(a, seed=seed) if aspect is None else {aspect: describe_face(a, aspect, seed=seed)}
    return Description(analysis=a, answers=answers)


def search(image: ImageInput | FaceAnalysis, index: Any, k: int = 5, *, fast: bool = False,
           explain: bool = True, seed: int = 0, min_score: float | None = None) -> Any:
    """Who in the gallery is this? The top k photos of `index` (a gallery folder from `facelm index
    build`, or a loaded facelm.gallery.Gallery), best first, each with its fused score and the
    calibrated verdict, and the query compared with the best match (explanation); with
    `min_score`, matches below it are left out (an open-set threshold, docs/search.md). Returns a
    facelm.identify.SearchResult; needs faiss (see docs/search.md)."""
    from .identify import search as _search
    return _search(image, index, k=k, fast=fast, explain=explain, seed=seed, min_score=min_score)
