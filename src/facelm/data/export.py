"""Exports of a facelm dataset for other trainers, split by identity, one folder per dataset.

Everything an export of dataset NAME writes is in DEST/NAME/ (see export_files.py: the layout, the
ownership marker `facelm_export.json`, and `--images absolute|relative|copy`):

* `llamafactory`: ShareGPT JSON (`conversations` of `from`/`value`, `images`) per split,
  NAME/train.json and NAME/test.json, and a `dataset_info.json` entry per split (NAME_train,
  NAME_test) in DEST, merged into an existing file;
* `swift`: ms-swift JSONL (`messages` of `role`/`content`, `images`) per split, NAME/train.jsonl;
* `hf`: a Hugging Face `datasets` dataset as Parquet shards with an `Image` feature (the photo bytes
  are embedded, so the export is self-contained) and each record's `labels` as a JSON string:
  `datasets.load_dataset(DEST/NAME)`, or `load_dataset("parquet", data_dir=DEST/NAME/data)`.

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
from ..outlock import output_lock
from .export_files import (ImagePlacer, check_info_entries, check_name, claim, remove_previous,
                           write_marker)
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
    images: str = "absolute"        # absolute | relative | copy (export_files.IMAGE_MODES)
    # llamafactory only: also write NAME/facelm_lora_sft.yaml with FaceLLM's released settings
    # for this student size (a key of llamafactory_yaml.STUDENTS)
    llamafactory_yaml: str | None = None


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


def _info_entries(name: str, splits: dict[str, list[Record]]) -> dict[str, str]:
    """LLaMA-Factory entry name -> file_name (relative to DEST, its dataset_dir)."""
    return {f"{name}_{split}": f"{name}/{split}.json" for split in splits}


def _write_llamafactory(dest: Path, name: str, splits: dict[str, list[Record]]) -> list[str]:
    info_path = dest / "dataset_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
    entries = _info_entries(name, splits)
    for old in [k for k, v in info.items() if k not in entries and isinstance(v, dict)
                and str(v.get("file_name", "")).startswith(f"{name}/")]:
        del info[old]   # a split this export no longer has (its file was removed)
    files = []
    for (entry, file_name), recs in zip(entries.items(), splits.values()):
        write_atomic(dest / file_name, json.dumps([to_sharegpt(r) for r in recs],
                                                  ensure_ascii=False, indent=1))
        files.append(file_name)
        info[entry] = {
            "file_name": file_name, "formatting": "sharegpt",
            "columns": {"messages": "conversations", "images": "images"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                     "assistant_tag": "gpt"}}
    write_atomic(info_path, json.dumps(info, indent=2, ensure_ascii=False))
    return files


def _write_swift(dest: Path, name: str, splits: dict[str, list[Record]]) -> list[str]:
    files = []
    for split, recs in splits.items():
        files.append(f"{name}/{split}.jsonl")
        write_atomic(dest / files[-1], "".join(
            dumps_line(to_swift(r)) for r in recs))  # U+2028 & co. escaped: one line each
    return files


def hf_features() -> Any:
    from datasets import Features, Image, List, Value  # List: datasets >= 4
    return Features({
        "id": Value("string"), "kind": Value("string"), "images": List(Image()),
        "question": Value("string"), "answer": Value("string"), "aspect": Value("string"),
        "tier": Value("string"), "same": Value("bool"), "identities": List(Value("string")),
        "labels": Value("string"), "teacher": Value("string"), "prompt_version": Value("string"),
    })


def _hf_row(r: Record) -> dict[str, Any]:
    images = []
    for p in r.images:
        try:
            images.append({"bytes": Path(p).read_bytes(), "path": Path(p).name})
        except OSError as exc:
            raise InputFormatError(f"cannot read the photo {p} ({exc})", item=r.id,
                                   hint="export where the dataset's photos are readable") from exc
    # labels as a JSON object string: their keys differ between datasets (and between a qa and a
    # pair dataset), and a Parquet column needs one type in every shard.
    return {"id": r.id, "kind": r.kind, "images": images, "question": r.question,
            "answer": r.answer, "aspect": r.aspect, "tier": r.tier, "same": r.same,
            "identities": list(r.identities), "labels": json.dumps(r.labels, ensure_ascii=False),
            "teacher": r.teacher, "prompt_version": r.prompt_version}


def _write_hf(dest: Path, name: str, splits: dict[str, list[Record]]) -> list[str]:
    from datasets import Dataset
    features = hf_features()
    (dest / name / "data").mkdir(parents=True, exist_ok=True)
    files = []
    for split, recs in splits.items():
        n = max(1, -(-len(recs) // HF_SHARD_RECORDS))
        for k in range(n):
            chunk = recs[k * HF_SHARD_RECORDS:(k + 1) * HF_SHARD_RECORDS]
            rows = [_hf_row(r) for r in chunk]
            ds = Dataset.from_list(rows, features=features) if rows else \
                Dataset.from_dict({c: [] for c in features}, features=features)
            files.append(f"{name}/data/{split}-{k:05d}-of-{n:05d}.parquet")
            ds.to_parquet(str(dest / files[-1]))
    return files


WRITERS: dict[str, Callable[[Path, str, dict[str, list[Record]]], list[str]]] = {
    "llamafactory": _write_llamafactory, "swift": _write_swift, "hf": _write_hf}


def _absolute(r: Record, root: Path) -> Record:
    """Relative image paths (from older or hand-made files) are resolved against the images
    folder the manifest records, so the export works from any directory."""
    return replace(r, images=tuple(
        p if Path(p).is_absolute() else str(root / p) for p in r.images))


def _placed(splits: dict[str, list[Record]], placer: ImagePlacer) -> dict[str, list[Record]]:
    return {s: [replace(r, images=tuple(placer.place(p) for p in r.images)) for r in recs]
            for s, recs in splits.items()}


def _write_yaml(dest: Path, name: str, size: str) -> str:
    from .llamafactory_yaml import YAML_NAME, released_yaml
    text = released_yaml(f"{name}_train", str(dest.resolve()), size,
                         output_dir=f"saves/{name}-{size}/lora/sft")
    write_atomic(dest / name / YAML_NAME, text)
    return f"{name}/{YAML_NAME}"


def export(cfg: ExportConfig) -> dict[str, int]:
    """Write cfg.dataset in cfg.format to cfg.to/NAME; returns the split sizes and pairs dropped.
    Refuses (FaceLMError, before writing anything) a folder or entry another dataset owns."""
    if cfg.format not in WRITERS:
        raise InputFormatError(f"unknown format {cfg.format!r}", item="--format",
                               hint=f"choose one of {', '.join(FORMATS)}")
    if cfg.llamafactory_yaml and cfg.format != "llamafactory":
        raise InputFormatError("a LLaMA-Factory YAML goes with --format llamafactory",
                               item="--llamafactory-yaml", hint="drop it or use that format")
    src = Path(cfg.dataset).resolve()
    name = check_name(cfg.name or src.name)
    manifest = read_manifest(src)
    root = Path(manifest.get("images_root", "."))
    records = [_absolute(r, root) for r in read_records(src)]
    if not records:
        raise InputFormatError("the dataset has no records", item=str(src),
                               hint="run `facelm data qa|pairs` into it first")
    train, test, dropped = split_by_identity(records, cfg.test_fraction, cfg.seed)
    splits = {"train": train, "test": test} if test else {"train": train}
    dest, folder = Path(cfg.to), Path(cfg.to) / name
    placer = ImagePlacer(cfg.images, dest, folder)   # checks the mode before anything is written
    with output_lock(dest, folder=True):   # two exports into one DEST: one at a time
        owned = claim(folder, src)
        if cfg.format == "llamafactory":
            info = dest / "dataset_info.json"
            check_info_entries(json.loads(info.read_text(encoding="utf-8"))
                               if info.exists() else {}, _info_entries(name, splits), info)
        remove_previous(dest, owned, cfg.format)
        folder.mkdir(exist_ok=True)
        if cfg.format != "hf":   # the Hugging Face export embeds the photos' bytes instead
            splits = _placed(splits, placer)
        files = WRITERS[cfg.format](dest, name, splits)
        if cfg.llamafactory_yaml:
            files.append(_write_yaml(dest, name, cfg.llamafactory_yaml))
        summary = {"train": len(train), "test": len(test), "dropped": dropped}
        write_marker(folder, src, owned, cfg.format, {
            "files": files, "config": asdict(cfg), "summary": summary,
            "copied_images": len(placer.copied), "source_manifest": manifest})
    return summary
