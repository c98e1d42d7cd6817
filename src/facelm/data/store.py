"""A dataset folder that survives kill -9: `records.jsonl`, `failures.jsonl`, `manifest.json`.

Each line is written with a single `write` on an O_APPEND descriptor and the files are fsync'd in
batches (every FSYNC_EVERY lines or FSYNC_SECONDS), so a killed job loses at most the lines since
the last sync and can leave at most one partial last line per file. Opening the store again cuts
such a partial line off, and the ids on the complete lines are the work already done: a restarted
job does only the rest, without losing or duplicating a record.

The files are checked before anything is written (facelm.jsonl): every line a JSON object with the
file's key, no id twice in records.jsonl, a manifest that is facelm's; anything else is refused and
left unchanged. The ids are read in one pass, keys only. The data jobs hold the folder's lock
(facelm.outlock) while they run, so two jobs never append to one folder.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from ..errors import InputFormatError
from ..jsonl import JsonlScan, dumps_line, read_repaired
from ..schema_version import stamp

RECORDS, FAILURES, MANIFEST = "records.jsonl", "failures.jsonl", "manifest.json"
FSYNC_EVERY = 64
FSYNC_SECONDS = 2.0


def repair(path: Path, key: str, what: str = "JSONL") -> list[dict[str, Any]]:
    """The records of `path` (each a JSON object with `key`), after cutting off a partial last
    line; a file that is not facelm's is refused unchanged (facelm.jsonl.read_repaired)."""
    return read_repaired(Path(path), key, what)


def scan_ids(path: Path, what: str, unique: bool) -> set[str]:
    """The ids in `path`, in one pass keeping keys only; then a partial last line is cut.
    unique=True refuses an id written twice."""
    scan = JsonlScan(path, "id", what)
    ids: set[str] = set()
    for n, item_id, _ in scan.keys():
        if unique and item_id in ids:
            raise InputFormatError(f"line {n} repeats id {item_id!r}; the file was left "
                                   "unchanged", item=str(path),
                                   hint="keep one line per id, or use a new --out folder")
        ids.add(item_id)
    scan.cut_tail()
    return ids


def scan_failures(path: Path) -> tuple[set[str], Counter]:
    """(the ids in failures.jsonl, a Counter of their reasons); it may name an id twice (a set)."""
    scan = JsonlScan(path, "id", "failure log")
    ids: set[str] = set()
    reasons: Counter = Counter()
    for _, rec in scan:
        ids.add(rec["id"])
        reasons[rec.get("reason", "error")] += 1
    scan.cut_tail()
    return ids, reasons


class JsonlAppender:
    """Appends one JSON object per line; fsyncs in batches and on close.

    Batch fsyncs run on a background thread: an fsync takes 5-10 ms, and on the job's event loop
    it would stall every request in flight. Lines are in the page cache as soon as written, so a
    killed process loses none; the fsync is what guards them against a power cut.
    """

    def __init__(self, path: Path):
        from concurrent.futures import ThreadPoolExecutor
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._pending = 0
        self._last_sync = time.monotonic()
        self._syncer = ThreadPoolExecutor(1, thread_name_prefix="fsync")
        self._inflight: Any = None

    def append(self, obj: dict[str, Any]) -> None:
        # Stamped after the record's fields: resuming reads the key from each line's first bytes.
        data = dumps_line(stamp(obj)).encode("utf-8")  # U+2028 & co. escaped: one line each
        os.write(self._fd, data)   # one write per line: no interleaving, at most one torn line
        self._pending += 1
        if self._pending >= FSYNC_EVERY or time.monotonic() - self._last_sync > FSYNC_SECONDS:
            self.sync(wait=False)

    def sync(self, wait: bool = True) -> None:
        if self._pending and (self._inflight is None or self._inflight.done()):
            self._inflight = self._syncer.submit(os.fsync, self._fd)
            self._pending, self._last_sync = 0, time.monotonic()
        if wait and self._inflight is not None:
            self._inflight.result()
            if self._pending:   # lines written while that fsync ran
                os.fsync(self._fd)
                self._pending = 0

    def close(self) -> None:
        self.sync()
        self._syncer.shutdown()
        os.close(self._fd)


class DatasetStore:
    """The three files of a dataset folder, opened for resuming."""

    def __init__(self, out: str | Path, retry_failed: bool = False):
        self.dir = Path(out)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.done_ids = scan_ids(self.dir / RECORDS, "dataset record", unique=True)
        self.failed_ids, self.earlier_reasons = scan_failures(self.dir / FAILURES)
        if retry_failed and self.failed_ids:
            # Rewritten atomically: a kill during the rewrite leaves the old file in place.
            self.failed_ids, self.earlier_reasons = set(), Counter()
            write_atomic(self.dir / FAILURES, "")
        self.records = JsonlAppender(self.dir / RECORDS)
        self.failures = JsonlAppender(self.dir / FAILURES)

    def finished(self, item_id: str) -> bool:
        return item_id in self.done_ids or item_id in self.failed_ids

    def add_record(self, rec: Any) -> None:
        """Append a schema Record (or its dict)."""
        d = rec if isinstance(rec, dict) else rec.to_dict()
        self.records.append(d)
        self.done_ids.add(d["id"])

    def add_failure(self, item_id: str, reason: str, message: str, **extra: Any) -> None:
        self.failures.append({"id": item_id, "reason": reason, "error": message, **extra,
                              "created": now_iso()})
        self.failed_ids.add(item_id)

    def sync(self, wait: bool = True) -> None:
        self.records.sync(wait)
        self.failures.sync(wait)

    def close(self) -> None:
        self.records.close()
        self.failures.close()

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_atomic(self.dir / MANIFEST, json.dumps(stamp(manifest), indent=2, ensure_ascii=False))


def read_manifest(out: str | Path) -> dict[str, Any]:
    """The manifest in a dataset folder ({} when there is none yet). A manifest is rewritten
    whole, so an unreadable one is rebuilt from the files; but a JSON file that is not a facelm
    manifest is someone else's, and refused rather than overwritten."""
    path = Path(out) / MANIFEST
    try:
        found = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (ValueError, UnicodeDecodeError):
        found = None
    if found is None and any((Path(out) / f).is_file() for f in (RECORDS, FAILURES)):
        return {}
    if found is None or (found and not (isinstance(found, dict) and "kind" in found)):
        raise InputFormatError("is not a facelm dataset manifest; it was left unchanged",
                               item=str(path), hint="use a new --out folder")
    return found


def jsonable(obj: Any) -> Any:
    """A config (frozen dataclasses, paths, tuples) as plain JSON values, for manifests and the
    config files saved next to datasets and checkpoints; anything else becomes its str()."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj if isinstance(obj, (str, int, float, bool, type(None))) else str(obj)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
