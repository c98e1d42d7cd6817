"""Training examples for VerLM from `facelm data` record folders: filter, featurise (cached per
image), tokenise. Records whose photos have no detectable face are skipped and counted."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from ..data.schema import Record, read_records
from ..errors import FaceLMError, InputFormatError
from .common import resolve_image


def select_records(data: str | Path, *, kinds: Sequence[str] = ("pair", "qa"),
                   tiers: Sequence[str] = ("concise", "detailed"), aspects: Sequence[str] = (),
                   limit: int = 0) -> list[Record]:
    """Records of the wanted kinds, tiers (pairs) and aspects (qa; empty = all), in file order."""
    out = []
    for r in read_records(data):
        if r.kind not in kinds:
            continue
        if r.kind == "pair" and r.tier not in tiers:
            continue
        if r.kind == "qa" and aspects and r.aspect not in aspects:
            continue
        out.append(r)
        if limit and len(out) >= limit:
            break
    if not out:
        raise InputFormatError(f"no {'/'.join(kinds)} records match (tiers {list(tiers)}, "
                               f"aspects {list(aspects) or 'all'})", item=str(data),
                               hint="check --kinds/--tiers/--aspects against the dataset")
    return out


def build_items(records: Sequence[Record], data: str | Path, tok: Any, cfg: Any, extractor: Any,
                max_answer_tokens: int, show: bool = True) -> list[Any]:
    """FaceItems for training; photos without a face are skipped with a count on stderr."""
    from tqdm import tqdm
    from ..models.verlm.inputs import make_item
    items, skipped, first_error, folder = [], 0, "", Path(data)
    for r in tqdm(records, desc="features", disable=not show, file=sys.stderr):
        images = [resolve_image(p, folder) for p in r.images]
        try:
            items.append(make_item(images, r.question, tok, cfg, extractor, r.answer, max_answer_tokens))
        except FaceLMError as exc:  # NoFaceError / ImageLoadError: the record cannot be used
            skipped += 1
            first_error = first_error or str(exc)
    if skipped:
        print(f"facelm train verlm: skipped {skipped} of {len(records)} records "
              f"(first: {first_error})", file=sys.stderr)
    if not items:
        raise InputFormatError("no usable records: every photo failed to load or had no face",
                               item=str(data), hint="check the image paths in records.jsonl")
    return items
