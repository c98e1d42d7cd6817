"""Whole-file writes that readers (and other processes writing the same file) never see half done."""
from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data: str | bytes, *, fsync: bool = True) -> None:
    """Write `data` to a temporary file named for this process, then rename it over `path`:
    readers see the old or the new file, and concurrent writers each rename a whole file (the
    last one wins). fsync=False for caches, where a lost file only costs recomputing it."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
