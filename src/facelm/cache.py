"""Where facelm keeps derived files (converted weights, feature caches): $FACELM_CACHE, else
~/.cache/facelm. Nothing in it is needed to be correct; deleting it only costs a rebuild.

Converted model files carry a sidecar (`<file>.sha256.json`) with their own SHA-256 and the
source's size, mtime and SHA-256, so a truncated or bit-flipped file is noticed on load and rebuilt
instead of crashing onnxruntime or producing NaN embeddings. Hashing costs ~0.8 ms per MB here
(about 50 ms for SFace's and dlib's converted files together, once per process)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .atomic import write_atomic

SIDECAR_SUFFIX = ".sha256.json"


def cache_dir(*parts: str) -> Path:
    """The cache folder (or a sub-folder of it), not created."""
    return Path(os.environ.get("FACELM_CACHE") or Path.home() / ".cache" / "facelm").joinpath(*parts)


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def write_checked(path: Path, data: bytes, source: Path) -> None:
    """`data` to `path`, then its sidecar; both atomic. A reader that sees the new file before its
    sidecar finds a mismatch and rebuilds: wasted work, never a wrong model."""
    st = source.stat()
    record = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
              "source": str(source), "source_size": st.st_size, "source_mtime_ns": st.st_mtime_ns,
              "source_sha256": sha256_file(source)}
    write_atomic(path, data, fsync=False)  # a cache: a lost file only costs a rebuild
    write_atomic(sidecar(path), json.dumps(record, indent=1), fsync=False)


def is_intact(path: Path, source: Path) -> bool:
    """True when `path` exists and matches its sidecar, which names `source` as it is now (size
    and mtime: hashing the source on every load would double the cost for no practical gain)."""
    try:
        record = json.loads(sidecar(path).read_text(encoding="utf-8"))
        st = source.stat()
        if (record["source_size"], record["source_mtime_ns"]) != (st.st_size, st.st_mtime_ns):
            return False
        return path.stat().st_size == record["size"] and sha256_file(path) == record["sha256"]
    except (OSError, ValueError, KeyError, TypeError):  # missing, unreadable or garbled sidecar
        return False


# A converted model folder (SmolLM2: 540 MB of safetensors) lists its files here. Hashing it all
# takes ~0.9 s here, as long as loading it, so a load checks sizes and mtimes (any write to a file
# changes its mtime) and hashes only files whose mtime moved (a copied cache).
FOLDER_RECORD = "facelm-files.json"


def write_folder_record(folder: Path) -> None:
    files = {p.name: _file_entry(p) for p in sorted(folder.iterdir())
             if p.is_file() and p.name != FOLDER_RECORD}
    write_atomic(folder / FOLDER_RECORD, json.dumps(files, indent=1), fsync=False)


def folder_intact(folder: Path) -> bool:
    """True when every file the folder's record lists is there, unchanged."""
    try:
        record = json.loads((folder / FOLDER_RECORD).read_text(encoding="utf-8"))
        moved = False
        for name, want in record.items():
            st = (folder / name).stat()
            if st.st_size != want["size"]:
                return False
            if st.st_mtime_ns != want["mtime_ns"]:
                if sha256_file(folder / name) != want["sha256"]:
                    return False
                moved = True
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    if moved:  # remember the new mtimes, so the next load does not hash again
        try:
            write_folder_record(folder)
        except OSError:
            pass
    return True


def _file_entry(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256_file(path)}
