"""Training records for the VLM trainer: reading, checking, and the deterministic batch order that
makes a resumed run continue exactly where it stopped (and shards over processes without a sampler).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..data.schema import Record, read_records
from ..errors import InputFormatError
from .common import resolve_image


@dataclass(frozen=True)
class Example:
    id: str
    images: tuple[str, ...]     # resolved paths
    question: str
    answer: str


def load_examples(data: str | Path, limit: int = 0) -> list[Example]:
    """Examples from a facelm dataset folder (or JSONL file); image paths may be absolute or
    relative to the dataset folder. Errors name the record and say what to do."""
    out = []
    for rec in read_records(data):
        if not rec.answer.strip():
            raise InputFormatError("empty answer", item=f"{data}: record {rec.id}",
                                   hint="remove the record or regenerate it")
        out.append(Example(rec.id, tuple(_resolve(p, data, rec) for p in rec.images),
                           rec.question, rec.answer))
        if limit and len(out) >= limit:
            break
    if not out:
        raise InputFormatError("the dataset has no records", item=str(data),
                               hint="generate some with `facelm data qa|pairs`")
    return out


def _resolve(path: str, data: str | Path, rec: Record) -> str:
    found = resolve_image(path, data)
    if Path(found).is_file():
        return found
    raise InputFormatError(f"image not found: {path}", item=f"record {rec.id}",
                           hint="image paths must be absolute or relative to the dataset folder")


@dataclass(frozen=True)
class Schedule:
    """How many optimizer steps a run has, given the data and the batch geometry."""

    n_examples: int
    batch_size: int     # per process
    grad_accum: int
    world: int          # processes

    @property
    def per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.world

    def steps_per_epoch(self) -> int:
        if self.n_examples < self.per_step:
            raise InputFormatError(f"{self.n_examples} records, but one optimizer step takes "
                                   f"{self.per_step} ({self.batch_size} per batch x "
                                   f"{self.grad_accum} accumulated x {self.world} processes)",
                                   item="--data", hint="lower --batch-size or --grad-accum")
        return self.n_examples // self.per_step  # drop the ragged tail: every step is full

    def total_steps(self, epochs: float, max_steps: int = 0) -> int:
        total = max(1, math.ceil(self.steps_per_epoch() * epochs))
        return min(total, max_steps) if max_steps > 0 else total


def micro_batches(sched: Schedule, step: int, rank: int, seed: int) -> Iterator[list[int]]:
    """The example indices this process uses for optimizer step `step` (0-based): grad_accum micro
    batches of batch_size. Epoch e shuffles with seed + e, so any step can be recomputed on resume."""
    import numpy as np
    epoch, within = divmod(step, sched.steps_per_epoch())
    order = np.random.default_rng(seed + epoch).permutation(sched.n_examples)
    start = within * sched.per_step
    for micro in range(sched.grad_accum):
        offset = start + (micro * sched.world + rank) * sched.batch_size
        yield order[offset: offset + sched.batch_size].tolist()


def load_images(example: Example) -> list[Any]:
    from ..models.hf_vlm import to_pil
    return [to_pil(p) for p in example.images]


def collate(processor: Any, examples: Sequence[Example], cutoff: int,
            system: str | None = None) -> dict[str, Any]:
    from ..models.hf_inputs import encode_examples
    items = [(load_images(e), e.question, e.answer) for e in examples]
    return encode_examples(processor, items, cutoff=cutoff, ids=[e.id for e in examples],
                           system=system)
