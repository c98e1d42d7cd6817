"""Photos with several faces: the best-matching pair of faces of two photos (`verify --face all`).

Every face of A is compared with every face of B by the fused identity score, and the pair with the
highest score is compared in full (verdict, differences, explanation), so that a group photo and a
portrait of one of its people are judged on that person's face, not on whoever stands centrally.
"""
from __future__ import annotations

import dataclasses
import math

from .faces.identity import cosine
from .faces.types import FaceAnalysis, FaceSet
from .verify import Comparison, compare_analyses, fused_score


def pair_scores(set_a: FaceSet, set_b: FaceSet) -> list[list[float]]:
    """Fused score of every face of A (rows) against every face of B (columns)."""
    return [[fused_score(cosine(fa.embeddings["sface"], fb.embeddings["sface"]),
                         cosine(fa.embeddings["dlib"], fb.embeddings["dlib"]))
             for fb in set_b.faces] for fa in set_a.faces]


def best_pair(set_a: FaceSet, set_b: FaceSet, *, threshold: float | None = None) -> Comparison:
    """The Comparison of the best-matching pair, with `face_pair` saying which faces they are."""
    scores = pair_scores(set_a, set_b)

    def rank(ij: tuple[int, int]) -> float:  # NaN never wins; compare_analyses reports it if chosen
        s = scores[ij[0]][ij[1]]
        return s if math.isfinite(s) else -math.inf

    i, j = max(((i, j) for i in range(len(set_a.faces)) for j in range(len(set_b.faces))), key=rank)
    a, b = set_a.faces[i], set_b.faces[j]
    pair = {"a": _which(a, i), "b": _which(b, j),
            "pairs_compared": len(set_a.faces) * len(set_b.faces), "scores": scores}
    return dataclasses.replace(compare_analyses(a, b, threshold=threshold), face_pair=pair)


def _which(fa: FaceAnalysis, index: int) -> dict[str, object]:
    # an analysis given on its own keeps its number in its photo (--face N), not 0 in a set of one
    number = index if fa.face_index is None else fa.face_index
    return {"face_index": number, "box": list(fa.detection.box), "faces_found": fa.faces_found}


def as_face_set(fa: FaceAnalysis) -> FaceSet:
    """One analysed face as a set of one (compare(..., face="all") accepts either)."""
    return FaceSet(source=fa.source, image_size=fa.image_size,
                   faces=(dataclasses.replace(fa, warnings=()),))


def describe_pair(face_pair: dict[str, object]) -> str:
    """One line for the text output: which faces were compared."""
    a, b = face_pair["a"], face_pair["b"]  # type: ignore[index]

    def one(name: str, w: dict) -> str:
        box = ", ".join(str(round(v)) for v in w["box"])
        return f"{name} face {w['face_index']} of {w['faces_found']} (box [{box}])"
    return (f"best-matching pair: {one('A', a)} and {one('B', b)}, highest fused score of "
            f"{face_pair['pairs_compared']} pairs")
