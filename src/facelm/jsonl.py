"""facelm's one JSONL format: writing lines, and reading (and resuming) files others may have touched.

Writing: one JSON object per line. `json.dumps(..., ensure_ascii=False)` leaves U+0085, U+2028 and
U+2029 raw; str.splitlines() and many editors break lines there, so they are written escaped.

Reading: lines end at b"\\n" only (never str.splitlines()). A resumable output is read in one
streaming pass (`JsonlScan`), keys only, and checked before anything is written to it: every complete
line must be a JSON object with the file's key, so a user's CSV or JPEG given as --out is refused
untouched. What a killed writer leaves (a partial last line that starts like a facelm record) is
cut off only after the whole file has passed the check.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

from .errors import InputFormatError

# Line breaks that JSON leaves raw; the ASCII ones (\n, \r, \v, \f, \x1c-\x1e) json always escapes.
_ESCAPES = {ord("\u0085"): "\\u0085", ord("\u2028"): "\\u2028", ord("\u2029"): "\\u2029"}


def dumps_line(obj: Any) -> str:
    """`obj` as one JSONL line, the final "\\n" included."""
    text = json.dumps(obj, ensure_ascii=False)
    return text.translate(_ESCAPES) + "\n"


class JsonlScan:
    """One pass over a JSONL file: iterate for (line number, record) of each complete line.

    `key` is the field every record of this file starts with (facelm writes it first); `what`
    names the file's kind in errors. After the loop, `tail` is the size in bytes of a partial last
    line (0 when the file ends with "\\n"); `cut_tail()` removes it.
    """

    def __init__(self, path: Path, key: str, what: str):
        self.path, self.key, self.what = Path(path), key, what
        self.tail = 0
        self.records = 0

    def _fail(self, n: int, problem: str) -> InputFormatError:
        if self.records == 0:  # the first line already is not ours: someone else's file
            return InputFormatError(
                f"is not a facelm {self.what} file (line {n}: {problem}); it was left unchanged",
                item=str(self.path), hint="choose a new output name: facelm only resumes its own "
                "output")
        return InputFormatError(f"line {n} {problem}; the file was left unchanged",
                                item=str(self.path), hint="fix or remove that line, or use a new "
                                "output name")

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        """(line number, bytes) of each complete, non-blank line; sets `tail`."""
        self.tail = self.records = 0
        if not self.path.exists():
            return
        with open(self.path, "rb", buffering=1 << 20) as f:   # binary: lines end at b"\n" only
            for n, raw in enumerate(f, 1):
                if not raw.endswith(b"\n"):
                    self._check_tail(n, raw)
                    return
                if raw.strip():
                    yield n, raw
                    self.records += 1

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for n, raw in self._lines():
            yield n, self._parse(n, raw)

    def keys(self, flag: str | None = None) -> Iterator[tuple[int, Any, bool]]:
        """(line number, key, whether the record has `flag`) of each complete line, without
        parsing whole records where it can: a line in facelm's own layout (key first, then
        `flag` if present, one object per line) is read from its first bytes, after a UTF-8
        check; the first line, and any line in another layout, is parsed in full."""
        value = rb'("(?:[^"\\]|\\.)*"|-?\d+)'   # a JSON string or integer
        then = rb'(, "' + re.escape(flag.encode()) + rb'": )?' if flag else rb"()"
        head = re.compile(rb'\{"' + re.escape(self.key.encode()) + rb'": ' + value + then)
        for n, raw in self._lines():
            m = head.match(raw) if self.records else None   # records: lines before this one
            if m is None or not raw.endswith(b"}\n"):
                rec = self._parse(n, raw)
                yield n, rec[self.key], flag is not None and flag in rec
                continue
            if not raw.isascii():
                self._decode(n, raw)
            yield n, _scalar(m.group(1)), m.group(2) is not None

    def _decode(self, n: int, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._fail(n, f"is not UTF-8 text (byte {exc.start + 1})") from None

    def _parse(self, n: int, raw: bytes) -> dict[str, Any]:
        text = self._decode(n, raw)
        try:
            rec = json.loads(text)
        except ValueError as exc:
            raise self._fail(n, f"is not JSON ({exc})") from None
        if not isinstance(rec, dict) or self.key not in rec:
            raise self._fail(n, f"is not a record with {self.key!r}")
        return rec

    def _check_tail(self, n: int, raw: bytes) -> None:
        """A partial last line is a killed facelm writer's only if it starts like a record."""
        start = b'{"' + self.key.encode() + b'":'
        if raw[: len(start)] != start[: len(raw)]:
            raise self._fail(n, "is not JSON and has no line end")
        self.tail = len(raw)

    def cut_tail(self) -> None:
        """Remove the partial last line found by the last full iteration (fsync'd)."""
        if self.tail:
            with open(self.path, "r+b") as f:
                f.truncate(os.fstat(f.fileno()).st_size - self.tail)
                os.fsync(f.fileno())
            self.tail = 0


def _scalar(value: bytes) -> Any:
    """A JSON integer or string from its bytes; plain ones without json (100k calls add up)."""
    if not value.startswith(b'"'):
        return int(value)
    return value[1:-1].decode("utf-8") if b"\\" not in value else json.loads(value)


def read_repaired(path: Path, key: str, what: str) -> list[dict[str, Any]]:
    """Every record of `path` (checked as above), after cutting a killed writer's partial line.
    Keeps the records: for readers that need them all; resumes that need keys only iterate a
    JsonlScan themselves."""
    scan = JsonlScan(path, key, what)
    records = [rec for _, rec in scan]
    scan.cut_tail()
    return records


def check_writable_file(path: Path, what: str = "--out") -> None:
    """A clear error, before any work, when `path` cannot be a file we append to."""
    path = Path(path)
    if path.is_dir():
        raise InputFormatError("is a folder", item=str(path),
                               hint=f"{what} takes a file name, e.g. results.jsonl")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as exc:
        why = ("a part of its folder path is a file"
               if isinstance(exc, (FileExistsError, NotADirectoryError)) else exc.strerror or exc)
        raise InputFormatError(f"cannot write here ({why})", item=str(path),
                               hint=f"choose a {what} in a folder you can write to") from None


def rewrite_without(path: Path, drop: set[int]) -> None:
    """Rewrite `path` without the lines numbered in `drop` (1-based), streaming, through a
    temporary file renamed over it: a kill leaves the old file or the new one, never a mix."""
    if not drop:
        return
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        for n, raw in enumerate(src, 1):
            if n not in drop:
                dst.write(raw)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, path)
