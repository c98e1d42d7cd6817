"""The training record every facelm dataset is made of, and the student-facing questions.

One JSON object per line of `records.jsonl`. The teacher data jobs write them; the VerLM and VLM
trainers, the exporters and the evaluators read them. The question stored here is what the *student*
sees: it never carries a label (the teacher's prompt, which does, is not stored).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import InputFormatError

# Student-facing questions. QA: one per aspect (facelm.explain.ASPECTS); pairs: one per tier.
QA_QUESTIONS: dict[str, str] = {
    "demographics": "Describe the demographic attributes of the person in this image based on the "
                    "visual information.",
    "facial_structure": "Describe the facial structure of the person in this image based on the visual "
                 "information.",
    "skin_texture": "Describe the skin texture of the person in this image based on the visual information.",
    "expression": "Describe the expression and emotion of the person in this image based on the "
                  "visual information.",
    "lighting_quality": "Describe the lighting and image quality of this image based on the visual "
                "information.",
    "pose": "Describe the face pose of the person in this image based on the visual information.",
    "forensic": "Describe the forensic considerations for this face image based on the visual "
                "information.",
    "general": "Describe this image.",
}
PAIR_QUESTIONS: dict[str, str] = {
    "concise": "Do these two face images show the same person? Answer and explain in a few words.",
    "detailed": "Do these two face images show the same person? Answer and describe the "
                "differences between the two faces in detail.",
}
KINDS = ("qa", "pair")


@dataclass(frozen=True)
class Record:
    """One question/answer about one face (kind "qa") or a pair of faces (kind "pair")."""

    id: str
    kind: str                       # "qa" | "pair"
    images: tuple[str, ...]         # 1 (qa) or 2 (pair) paths, as given to the job
    question: str                   # what the student sees; never holds a label
    answer: str
    aspect: str | None = None       # qa: one of facelm.explain.ASPECTS
    tier: str | None = None         # pair: "concise" | "detailed"
    same: bool | None = None        # pair: the ground-truth label
    identities: tuple[str, ...] = ()  # person ids (used to split by identity)
    labels: dict[str, Any] = field(default_factory=dict)  # labels the teacher was told
    teacher: str = ""
    prompt_version: str = ""
    created: str = ""               # ISO-8601 UTC
    usage: dict[str, Any] = field(default_factory=dict)   # tokens, cost, latency

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"record {self.id}: kind must be one of {KINDS}, got {self.kind!r}")
        want = 1 if self.kind == "qa" else 2
        if len(self.images) != want:
            raise ValueError(f"record {self.id}: a {self.kind} record has {want} image(s), "
                             f"got {len(self.images)}")

    def to_dict(self) -> dict[str, Any]:
        # Field by field, not dataclasses.asdict: its deep copy was a third of a data job's CPU
        # time at 64 requests in flight. The dicts (labels, usage) are shared, not copied.
        d = {name: getattr(self, name) for name in self.__dataclass_fields__}
        d["images"], d["identities"] = list(self.images), list(self.identities)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Record":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        known["images"] = tuple(known.get("images", ()))
        known["identities"] = tuple(known.get("identities", ()))
        return cls(**known)


def read_records(path: str | Path) -> Iterator[Record]:
    """Records from a JSONL file (or a dataset folder holding `records.jsonl`), with errors that
    name the file and line."""
    path = Path(path)
    if path.is_dir():
        path = path / "records.jsonl"
    if not path.is_file():
        raise InputFormatError("no records here", item=str(path),
                               hint="run `facelm data qa|pairs --out DIR` first")
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield Record.from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError, ValueError) as exc:
                raise InputFormatError(f"not a facelm record ({exc})", item=f"{path}:{n}",
                                       hint="fix or remove the line") from exc
