"""Batch verification of a pairs CSV: parallel, each photo analysed once, resumable, ordered output.

Photos are analysed by facelm.engines (a local process pool, or Ray Data with --engine ray), or
their embeddings are read from an analysis table (--embeddings; facelm.table): then the records
are identity-only (scores and verdicts, no differences or explanations).

Output is JSONL, one record per input row in input order, each with `index` (the 0-based data row).
Records are appended and fsync'd in small batches; a killed run leaves at most one partial last line,
which the next run with the same --out removes before it continues after the last finished pair.

An existing --out is read first, in one pass and keys only (facelm.jsonl): it must be a facelm result
file, one record per index, each index a row of the CSV; anything else is refused and left unchanged.
The run holds the output's lock (facelm.outlock) from that check to the last write, so a second run
on the same --out is refused instead of writing every pair again. --retry-failed first removes the
error records (the file is rewritten through a renamed temporary file), then computes those rows
again; they are appended at the end, so a resumed or retried file may not be in index order.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .csvio import read_csv_lines
from .errors import InputFormatError
from .jsonl import JsonlScan, check_writable_file, dumps_line, rewrite_without
from .outlock import output_lock
from .schema_version import STAMP_KEYS, stamp

REQUIRED = ("file_a", "file_b")
# Keys of a result record; carried-through CSV columns with these names become input_<name>, in
# every record alike (a ground-truth `same` column must not be confused with the verdict).
RESULT_KEYS = frozenset({"index", "error", "same", "score", "threshold", "probability", "confidence",
                         "scores", "model_verdicts", "differences", "explanation", "a", "b",
                         *STAMP_KEYS})
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
    retry_failed: bool = False      # recompute rows whose earlier record has `error`
    engine: str = "local"           # or "ray" (facelm.engines): who analyses the photos
    address: str | None = None      # the Ray cluster to join (engine "ray")
    embeddings: Path | None = None  # an analysis table (facelm.table): no analysis, identity-only


@dataclass(frozen=True)
class BatchSummary:
    total: int
    skipped: int      # already in --out from an earlier run
    done: int         # written by this run
    failed: int       # of those, records with `error`


class _Row(dict):
    """A CSV row (its columns) that also knows the line it starts on, for error messages."""
    line: int = 0


def read_pairs_csv(path: Path) -> list[dict[str, str]]:
    _, rows, lines = read_csv_lines(path, REQUIRED, hint="the CSV needs a header with "
                                    "file_a,file_b (other columns are kept)")
    out = []
    for row, line in zip(rows, lines):
        out.append(_Row(row))
        out[-1].line = line
    return out


def scan_output(out: Path, n_rows: int) -> tuple[set[int], dict[int, int]]:
    """(indices already in `out`, index -> line of each error record), in one pass that keeps
    keys only; then a killed run's partial last line is cut. Raises InputFormatError, leaving the
    file unchanged, unless every line is a facelm result with a distinct index < n_rows."""
    scan = JsonlScan(out, "index", "verify --pairs result")
    done: set[int] = set()
    errors: dict[int, int] = {}
    for n, i, failed in scan.keys("error"):
        if type(i) is not int or not 0 <= i < n_rows:
            raise InputFormatError(
                f"line {n}: index {i!r} is not a data row of the pairs CSV (0 to {n_rows - 1}); "
                "the file was left unchanged", item=str(out),
                hint="this output was made from another CSV: use a new --out")
        if i in done:  # never written twice by facelm: --retry-failed removes the old line first
            raise InputFormatError(f"line {n} repeats index {i}; the file was left unchanged",
                                   item=str(out), hint="keep one line per index, or use a new --out")
        done.add(i)
        if failed:
            errors[i] = n
    scan.cut_tail()
    return done, errors


def _resolve(value: str, root: Path | None) -> str:
    p = Path(value)
    return str(p if p.is_absolute() or root is None else root / p)


def _pair_paths(row: dict[str, str], root: Path | None) -> tuple[str | None, ...]:
    """The row's photo paths, resolved once; None for an empty cell."""
    return tuple(_resolve(row[c], root) if row.get(c) else None for c in REQUIRED)


def _analyse_one(args: tuple[str, bool]) -> tuple[str, Any]:
    from .faces.analysis import analyse_or_error
    return args[0], analyse_or_error(*args)


def analyse_paths(paths: list[str], fast: bool) -> list[tuple[str, Any]]:
    """The per-batch function the engines run (facelm.engines): (path, analysis or error)."""
    return [_analyse_one((p, fast)) for p in paths]


def _record(i: int, row: dict[str, str], paths: tuple[str | None, ...], results: dict[str, Any],
            cfg: BatchConfig) -> dict:
    from .api import compare
    rec: dict[str, Any] = {"index": i}
    if None in paths:
        rec["error"] = f"line {getattr(row, 'line', i + 2)} of the CSV: empty file_a or file_b"
    elif errors := [str(results[p]) for p in paths if isinstance(results[p], Exception)]:
        rec["error"] = "; ".join(errors)
    elif cfg.embeddings is not None:
        from .verify import identity_verdict
        rec.update(identity_verdict(results[paths[0]], results[paths[1]], threshold=cfg.threshold))
    else:
        rec.update(compare(results[paths[0]], results[paths[1]], seed=cfg.seed,
                           threshold=cfg.threshold).to_dict())
    for k, v in row.items():
        rec["input_" + k if k in RESULT_KEYS else k] = v
    # Stamped last: resuming reads `{"index": N, "error": ...` from each line's first bytes.
    return stamp(rec)


def run(cfg: BatchConfig, progress: bool = True) -> BatchSummary:
    from .engines import check_engine
    rows = read_pairs_csv(cfg.pairs)
    check_engine(cfg.engine, cfg.address)   # a Ray cluster that is not there: nothing written
    check_writable_file(cfg.out)
    with output_lock(cfg.out):
        done, errors = scan_output(cfg.out, len(rows))
        if cfg.retry_failed and errors:
            rewrite_without(cfg.out, set(errors.values()))
            done -= errors.keys()
        todo = [i for i in range(len(rows)) if i not in done]
        written, failed = _append(cfg, rows, todo, progress)
    return BatchSummary(total=len(rows), skipped=len(done), done=written, failed=failed)


def _append(cfg: BatchConfig, rows: list[dict], todo: list[int], progress: bool) -> tuple[int, int]:
    """Compute and append the `todo` rows' records; (written, failed)."""
    written = failed = 0
    if not todo:
        return written, failed
    with open(cfg.out, "a", encoding="utf-8") as out, _progress(len(todo), progress) as bar:
        for rec in _ordered_records(rows, todo, cfg):
            out.write(dumps_line(rec))
            written += 1
            failed += "error" in rec
            bar.update(1)
            if written % FSYNC_EVERY == 0:
                out.flush()
                os.fsync(out.fileno())
        out.flush()
        os.fsync(out.fileno())
    return written, failed


def _ordered_records(rows: list[dict], todo: list[int], cfg: BatchConfig) -> Iterator[dict]:
    """Analyse each photo once (in order of first use) and yield pair records in input order."""
    paths = {i: _pair_paths(rows[i], cfg.root) for i in todo}
    uses = Counter(p for i in todo for p in paths[i] if p)  # keys in order of first use
    results: dict[str, Any] = {}
    nxt = 0
    for batch in _results(list(uses), cfg):
        for path, res in batch:
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


def _results(photos: list[str], cfg: BatchConfig) -> Iterator[list[tuple[str, Any]]]:
    """Batches of (path, analysis or error): read from --embeddings, or analysed by the engine."""
    if cfg.embeddings is not None:
        from .table import lookup_embeddings
        yield lookup_embeddings(cfg.embeddings, photos)
        return
    from .engines import iter_batches
    yield from iter_batches(analyse_paths, photos, engine=cfg.engine, address=cfg.address,
                            workers=cfg.workers, fast=cfg.fast)


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm
    return tqdm(total=total, unit="pair", desc="verifying", disable=not enabled)
