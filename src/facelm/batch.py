"""Batch verification of a pairs CSV: parallel, each photo analysed once, resumable, ordered output.

Output is JSONL, one record per input row in input order, each with `index` (the 0-based data row).
Records are appended and fsync'd in small batches; a killed run leaves at most one partial last line,
which the next run with the same --out removes before it continues after the last finished pair.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .csvio import read_csv
from .errors import FaceLMError, InputFormatError

REQUIRED = ("file_a", "file_b")
# Keys of a result record; carried-through CSV columns with these names become input_<name>, in
# every record alike (a ground-truth `same` column must not be confused with the verdict).
RESULT_KEYS = frozenset({"index", "error", "same", "score", "threshold", "probability", "confidence",
                         "scores", "model_verdicts", "differences", "explanation", "a", "b"})
FSYNC_EVERY = 32


@dataclass(frozen=True)
class BatchConfig:
    pairs: Path
    out: Path
    root: Path | None = None
    workers: int = 2
    fast: bool = False
    seed: int = 0
    threshold: float | None = None  # None: the calibrated one


@dataclass(frozen=True)
class BatchSummary:
    total: int
    skipped: int      # already in --out from an earlier run
    done: int         # written by this run
    failed: int       # of those, records with `error`


def read_pairs_csv(path: Path) -> list[dict[str, str]]:
    return read_csv(path, REQUIRED, hint="the CSV needs a header with file_a,file_b "
                    "(other columns are kept)")[1]


def finished_indices(out: Path) -> set[int]:
    """Indices already written; drops a partial last line left by a killed run."""
    from .data.store import repair
    done = set()
    for n, rec in enumerate(repair(out), 1):
        try:
            done.add(int(rec["index"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputFormatError(f"line {n} is not a facelm result ({exc})", item=str(out),
                                   hint="use a new --out file, or remove that line") from exc
    return done


def _resolve(value: str, root: Path | None) -> str:
    p = Path(value)
    return str(p if p.is_absolute() or root is None else root / p)


def _pair_paths(row: dict[str, str], root: Path | None) -> tuple[str | None, ...]:
    """The row's photo paths, resolved once; None for an empty cell."""
    return tuple(_resolve(row[c], root) if row.get(c) else None for c in REQUIRED)


def _analyse_one(args: tuple[str, bool]) -> tuple[str, Any]:
    from .faces.analysis import analyse_or_error
    return args[0], analyse_or_error(*args)


def _record(i: int, row: dict[str, str], paths: tuple[str | None, ...], results: dict[str, Any],
            cfg: BatchConfig) -> dict:
    from .api import compare
    rec: dict[str, Any] = {"index": i}
    if None in paths:
        rec["error"] = f"row {i + 2}: empty file_a or file_b"
    elif errors := [str(results[p]) for p in paths if isinstance(results[p], Exception)]:
        rec["error"] = "; ".join(errors)
    else:
        rec.update(compare(results[paths[0]], results[paths[1]], seed=cfg.seed,
                           threshold=cfg.threshold).to_dict())
    for k, v in row.items():
        rec["input_" + k if k in RESULT_KEYS else k] = v
    return rec


def run(cfg: BatchConfig, progress: bool = True) -> BatchSummary:
    rows = read_pairs_csv(cfg.pairs)
    done = finished_indices(cfg.out)
    todo = [i for i in range(len(rows)) if i not in done]
    written = failed = 0
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    with open(cfg.out, "a", encoding="utf-8") as out, _progress(len(todo), progress) as bar:
        for rec in _ordered_records(rows, todo, cfg):
            out.write(json.dumps(rec) + "\n")
            written += 1
            failed += "error" in rec
            bar.update(1)
            if written % FSYNC_EVERY == 0:
                out.flush()
                os.fsync(out.fileno())
        out.flush()
        os.fsync(out.fileno())
    return BatchSummary(total=len(rows), skipped=len(done), done=written, failed=failed)


def _ordered_records(rows: list[dict], todo: list[int], cfg: BatchConfig) -> Iterator[dict]:
    """Analyse each photo once (in order of first use) and yield pair records in input order."""
    paths = {i: _pair_paths(rows[i], cfg.root) for i in todo}
    uses = Counter(p for i in todo for p in paths[i] if p)  # keys in order of first use
    results: dict[str, Any] = {}
    nxt = 0
    jobs = [(p, cfg.fast) for p in uses]
    with ProcessPoolExecutor(cfg.workers) if cfg.workers > 1 else nullcontext() as pool:
        mapper = pool.map(_analyse_one, jobs, chunksize=4) if pool else map(_analyse_one, jobs)
        for path, res in mapper:
            results[path] = res
            while nxt < len(todo) and all(p is None or p in results for p in paths[todo[nxt]]):
                i = todo[nxt]
                yield _record(i, rows[i], paths[i], results, cfg)
                for p in filter(None, paths[i]):  # free analyses no later pair needs
                    uses[p] -= 1
                    if uses[p] == 0:
                        del results[p]
                nxt += 1
    while nxt < len(todo):  # rows with empty paths only
        yield _record(todo[nxt], rows[todo[nxt]], paths[todo[nxt]], results, cfg)
        nxt += 1


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm
    return tqdm(total=total, unit="pair", desc="verifying", disable=not enabled)
