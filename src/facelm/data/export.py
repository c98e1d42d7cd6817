"""Exports of a facelm dataset for other trainers, split by identity.

* `llamafactory`: ShareGPT JSON (`conversations` of `from`/`value`, `images`) per split, and a
  `dataset_info.json` entry per split (merged into an existing file in DEST);
* `swift`: ms-swift JSONL (`messages` of `role`/`content`, `images`) per split;
* `hf`: a Hugging Face `datasets` dataset as Parquet shards with an `Image` feature (the photo bytes
  are embedded, so the export is self-contained): `datasets.load_dataset("parquet",
  data_dir=DEST/data)` or `load_dataset(DEST)`.

Splits are by identity: each person is in train or in test, never both. A pair of two people on
different sides of the split is dropped (counted), since either side would leak a test person.
"""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..atomic import write_atomic
from ..errors import InputFormatError
from ..jsonl import dumps_line
from .schema import Record, read_records
from .store import read_manifest

FORMATS = ("llamafactory", "swift", "hf")
HF_SHARD_RECORDS = 1000   # records per Parquet file: bounds memory, as photo bytes are embedded


@dataclass(frozen=True)
class ExportConfig:
    dataset: str
    format: str
    to: str
    test_fraction: float = 0.1
    seed: int = 0
    name: str | None = None


def split_by_identity(records: Sequence[Record], test_fraction: float,
                      seed: int) -> tuple[list[Record], list[Record], int]:
    """(train, test, dropped): a seeded share of identities is held out for test."""
    if not 0 <= test_fraction < 1:
        raise InputFormatError(f"test fraction must be in [0, 1), got {test_fraction}",
                               item="--test-fraction")
    people = sorted({i for r in records for i in (r.identities or r.images)})
    random.Random(seed).shuffle(people)
    n_test = round(len(people) * test_fraction)
    if test_fraction > 0 and len(people) > 1:
        n_test = min(max(n_test, 1), len(people) - 1)
    test_people = set(people[:n_test])
    train, test, dropped = [], [], 0
    for r in records:
        ids = set(r.identities or r.images)
        if ids <= test_people:
            test.append(r)
        elif not ids & test_people:
            train.append(r)
        else:
            dropped += 1
    return train, test, dropped


def _user_text(r: Record) -> str:
    return "<image>" * len(r.images) + r.question


def to_sharegpt(r: Record) -> dict[str, Any]:
    return {"conversations": [{"from": "human", "value": _user_text(r)},
                              {"from": "gpt", "value": r.answer}],
            "images": list(r.images)}


def to_swift(r: Record) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": _user_text(r)},
                         {"role": "assistant", "content": r.answer}],
            "images": list(r.images)}


def _write_llamafactory(dest: Path, name: str, splits: dict[str, list[Record]]) -> None:
    info_path = dest / "dataset_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
    for split, recs in splits.items():
        file_name = f"{name}_{split}.json"
        write_atomic(dest / file_name, json.dumps([to_sharegpt(r) for r in recs],
                                                  ensure_ascii=False, indent=1))
        info[f"{name}_{split}"] = {
            "file_name": file_name, "formatting": "sharegpt",
            "columns": {"messages": "conversations", "images": "images"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                     "assistant_tag": "gpt"}}
    write_atomic(info_path, json.dumps(info, indent=2, ensure_ascii=False))


def _write_swift(dest: Path, name: str, splits: dict[str, list[Record]]) -> None:
    for split, recs in splits.items():
        write_atomic(dest / f"{split}.jsonl", "".join(
            dumps_line(to_swift(r)) for r in recs))  # U+2028 & co. escaped: one line each


def hf_features() -> Any:
    from datasets import Features, Image, List, Value
    return Features({
        "id": Value("string"), "kind": Value("string"), "images": List(Image()),
        "question": Value("string"), "answer": Value("string"), "aspect": Value("string"),
        "tier": Value("string"), "same": Value("bool"), "identities": List(Value("string")),
        "teacher": Value("string"), "prompt_version": Value("string"),
    })


def _hf_row(r: Record) -> dict[str, Any]:
    images = []
    for p in r.images:
        try:
            images.append({"bytes": Path(p).read_bytes(), "path": Path(p).name})
        except OSError as exc:
            raise InputFormatError(f"cannot read the photo {p} ({exc})", item=r.id,
                                   hint="export where the dataset's photos are readable") from exc
    return {"id": r.id, "kind": r.kind, "images": images, "question": r.question,
            "answer": r.answer, "aspect": r.aspect, "tier": r.tier, "same": r.same,
            "identities": list(r.identities), "teacher": r.teacher,
            "prompt_version": r.prompt_version}


def _write_hf(dest: Path, name: str, splits: dict[str, list[Record]]) -> None:
    from datasets import Dataset
    features = hf_features()
    (dest / "data").mkdir(parents=True, exist_ok=True)
    for split, recs in splits.items():
        n = max(1, -(-len(recs) // HF_SHARD_RECORDS))
        for k in range(n):
            chunk = recs[k * HF_SHARD_RECORDS:(k + 1) * HF_SHARD_RECORDS]
            rows = [_hf_row(r) for r in chunk]
            ds = Dataset.from_list(rows, features=features) if rows else \
                Dataset.from_dict({c: [] for c in features}, features=features)
            ds.to_parquet(str(dest / "data" / f"{split}-{k:05d}-of-{n:05d}.parquet"))


WRITERS: dict[str, Callable[[Path, str, dict[str, list[Record]]], None]] = {
    "llamafactory": _write_llamafactory, "swift": _write_swift, "hf": _write_hf}


def _absolute(r: Record, root: Path) -> Record:
    """Relative image paths (from older or hand-made files) are resolved against the images
    folder the manifest records, so the export works from any directory."""
    return replace(r, images=tuple(
        p if Path(p).is_absolute() else str(root / p) for p in r.images))


def export(cfg: ExportConfig) -> dict[str, int]:
    """Write cfg.dataset in cfg.format to cfg.to; returns the split sizes and pairs dropped."""
    if cfg.format not in WRITERS:
        raise InputFormatError(f"unknown format {cfg.format!r}", item="--format",
                               hint=f"choose one of {', '.join(FORMATS)}")
    src = Path(cfg.dataset)
    manifest = read_manifest(src)
    root = Path(manifest.get("images_root", "."))
    records = [_absolute(r, root) for r in read_records(src)]
    if not records:
        raise InputFormatError("the dataset has no records", item=str(src),
                               hint="run `facelm data qa|pairs` into it first")
    train, test, dropped = split_by_identity(records, cfg.test_fraction, cfg.seed)
    dest = Path(cfg.to)
    dest.mkdir(parents=True, exist_ok=True)
    name = cfg.name or src.resolve().name
    splits = {"train": train, "test": test} if test else {"train": train}
    WRITERS[cfg.format](dest, name, splits)
    summary = {"train": len(train), "test": len(test), "dropped": dropped}
    write_atomic(dest / f"{name}_export.json", json.dumps(
        {"config": asdict(cfg), "summary": summary, "source_manifest": manifest}, indent=2))
    return summary
