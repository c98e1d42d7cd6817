"""One writer per output: an exclusive lock on every resumable output (a JSONL file or a folder).

The lock is a POSIX record lock (fcntl.lockf) on a small sidecar file, `OUT.lock` beside an output
file or `.facelm.lock` inside an output folder, holding the PID and command line of the holder.
The kernel drops the lock when the holder dies, kill -9 included, so a stale lock file never
blocks anyone. lockf rather than flock: forked worker processes do not inherit a POSIX lock, so a
worker left behind by a killed run cannot keep the output locked. POSIX locks do not exclude the
same process, so this process's own locks are also kept in `_HELD`.
"""
from __future__ import annotations

import fcntl
import os
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import FaceLMError

LOCK_NAME = ".facelm.lock"
_HELD: set[str] = set()


def lock_path(out: Path, folder: bool) -> Path:
    out = Path(out)
    return out / LOCK_NAME if folder else out.with_name(out.name + ".lock")


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    pid, _, cmd = text.partition(" ")
    return f"PID {pid}: {cmd}" if pid else "a process that has not written its PID yet"


def _refuse(out: Path, path: Path) -> FaceLMError:
    return FaceLMError(f"is being written by another facelm run ({_holder(path)})", item=str(out),
                       hint="wait for it to finish, or use another output")


def _acquire(out: Path, path: Path) -> int:
    """An fd holding the lock on `path`, whose content then names this process."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise FaceLMError(f"cannot create the lock file {path.name} ({exc.strerror or exc})",
                              item=str(out), hint="choose an output in a folder you can "
                              "write to") from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise _refuse(out, path) from None
        try:  # the holder may have removed the file between our open and our lock: retry
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {shlex.join(sys.argv)}\n".encode("utf-8", "replace"))
            return fd
        os.close(fd)


@contextmanager
def output_lock(out: str | Path, *, folder: bool = False) -> Iterator[Path]:
    """Hold the exclusive lock on `out` (a file, or with folder=True a folder, created if need be)
    for the block; FaceLMError naming the holder when another run (or this process) has it."""
    out = Path(out)
    if folder:
        if out.exists() and not out.is_dir():
            raise FaceLMError("is a file, not a folder", item=str(out),
                              hint="give a folder name (it is created if missing)")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FaceLMError(f"cannot create the folder ({exc.strerror or exc})",
                              item=str(out), hint="choose a folder you can write to") from None
    path = lock_path(out, folder)
    key = str(path.resolve())
    if key in _HELD:
        raise _refuse(out, path)
    fd = _acquire(out, path)
    _HELD.add(key)
    try:
        yield path
    finally:
        _HELD.discard(key)
        try:  # removed while still locked, so a waiting opener sees another inode and retries
            os.unlink(path)
        except OSError:
            pass
        os.close(fd)
