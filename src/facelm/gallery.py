"""A search gallery: a FAISS index of the fused identity space, with its metadata, in one folder.

The fused score is W_SFACE * cos_sface + W_DLIB * cos_dlib of unit embeddings. The inner product of
two vectors [sqrt(W_SFACE) * sface, sqrt(W_DLIB) * dlib] (256-d) is exactly that sum, so a FAISS
inner-product index over them returns the fused score itself, on the scale of THRESHOLD.

    GALLERY/index.faiss       the FAISS index (ids are the metadata's entry ids)
    GALLERY/gallery.json      paths, identities, model versions, fusion weights, index kind
    GALLERY/analyses.parquet  the photos' analyses (facelm.table), so a rebuild or add resumes

Small galleries use an exact index (IndexFlatIP in IndexIDMap2: entries are added and removed
without a rebuild); large ones an IVF index, tuned at build time to recall@10 >= 0.99 against
exact, measured and stated in gallery.json.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import calibration as cal
from .atomic import write_atomic
from .errors import GalleryError

GALLERY_SCHEMA = 1
INDEX_FILE = "index.faiss"
META_FILE = "gallery.json"
ANALYSES_FILE = "analyses.parquet"
DIM = 256
# Exact search scans every vector: one query on one thread of this project's 2-core machine took
# 0.3 ms p50 at 10 k, 7 ms at 100 k and 64 ms at 1 M entries (benchmarks/bench_search.py), so
# exact stays within ~20 ms up to about this size; above it IVF scans part of the gallery.
EXACT_MAX = 200_000
RECALL_TARGET = 0.99
NPROBES = (8, 16, 32, 64, 128, 256, 512, 1024)
# Query batches up to this size run on one thread: waking FAISS's OpenMP threads for one query cost
# 23 ms p50 at 10 k entries on the loaded 2-core machine, against 0.24 ms on one thread.
SMALL_BATCH = 16


def fused_vectors(sface: np.ndarray, dlib: np.ndarray) -> np.ndarray:
    """(N, 256) float32 rows whose inner products are the fused scores of unit embeddings."""
    s = np.asarray(sface, dtype=np.float32).reshape(-1, 128)
    d = np.asarray(dlib, dtype=np.float32).reshape(-1, 128)
    return np.ascontiguousarray(np.hstack([math.sqrt(cal.W_SFACE) * s, math.sqrt(cal.W_DLIB) * d]),
                                dtype=np.float32)


def current_models() -> dict[str, str]:
    from .faces.models import model_label
    return {"sface": model_label("sface"), "dlib": model_label("dlib_resnet")}


def current_weights() -> dict[str, float]:
    return {"sface": cal.W_SFACE, "dlib": cal.W_DLIB}


@dataclass
class Gallery:
    folder: Path
    index: Any                     # faiss.Index: IndexIDMap2(IndexFlatIP) or IndexIVFFlat
    entries: dict[int, dict[str, str]] = field(default_factory=dict)   # id -> path, identity
    info: dict[str, Any] = field(default_factory=dict)                 # kind, nlist, nprobe, recall
    next_id: int = 0

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, paths: Sequence[str], identities: Sequence[str], vectors: np.ndarray) -> list[int]:
        """Add entries (no rebuild); returns their ids."""
        ids = np.arange(self.next_id, self.next_id + len(paths), dtype=np.int64)
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        for i, p, ident in zip(ids.tolist(), paths, identities):
            self.entries[i] = {"path": str(p), "identity": str(ident)}
        self.next_id += len(ids)
        return ids.tolist()

    def remove(self, ids: Sequence[int]) -> int:
        """Remove entries by id (no rebuild); returns how many were there."""
        import faiss
        known = [i for i in ids if i in self.entries]
        if known:
            self.index.remove_ids(faiss.IDSelectorBatch(np.asarray(known, dtype=np.int64)))
            for i in known:
                del self.entries[i]
        return len(known)

    def ids_of_paths(self, paths: Sequence[str]) -> list[int]:
        wanted = {_key(p) for p in paths}
        return [i for i, e in self.entries.items() if _key(e["path"]) in wanted]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (M, k), best first; id -1 where the gallery has fewer than k."""
        import faiss
        q = np.ascontiguousarray(np.asarray(queries, dtype=np.float32).reshape(-1, DIM))
        k = max(1, min(int(k), max(len(self), 1)))
        if len(q) > SMALL_BATCH:
            return self.index.search(q, k)
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return self.index.search(q, k)
        finally:
            faiss.omp_set_num_threads(threads)

    def save(self) -> None:
        import faiss
        from . import __version__
        from .schema_version import SCHEMA_VERSION
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.folder / INDEX_FILE, faiss.serialize_index(self.index).tobytes())
        meta = {"gallery_schema": GALLERY_SCHEMA, "schema_version": SCHEMA_VERSION,
                "facelm_version": __version__, "models": current_models(),
                "weights": current_weights(), "threshold": cal.THRESHOLD, "dim": DIM,
                "index": {**self.info, "size": len(self)}, "next_id": self.next_id,
                "entries": [{"id": i, **e} for i, e in sorted(self.entries.items())]}
        write_atomic(self.folder / META_FILE, json.dumps(meta, indent=1))


def _key(path: str | Path) -> str:
    return os.path.abspath(path)  # as facelm.table names photos (symlinks kept)


def new_index(vectors: np.ndarray, kind: str = "auto") -> tuple[Any, dict[str, Any]]:
    """An empty-or-trained index for these vectors and what was chosen, with why."""
    import faiss
    n = len(vectors)
    if kind == "auto":
        kind = "exact" if n <= EXACT_MAX else "ivf"
    if kind == "exact":
        return (faiss.IndexIDMap2(faiss.IndexFlatIP(DIM)),
                {"kind": "exact", "faiss": "IDMap2,Flat (inner product)",
                 "why": f"{n} entries <= {EXACT_MAX}: exact search is fast enough"})
    if kind != "ivf":
        raise GalleryError(f"unknown index kind {kind!r}", hint="use auto, exact or ivf")
    if n < 1000:
        raise GalleryError(f"an IVF index needs at least 1000 entries, not {n}", hint="use exact")
    nlist = int(min(max(16, round(math.sqrt(n))), 4096))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    sample = vectors[np.sort(rng.choice(n, size=min(n, 50 * nlist), replace=False))]
    index.train(np.ascontiguousarray(sample))
    return index, {"kind": "ivf", "faiss": f"IVF{nlist},Flat (inner product)", "nlist": nlist,
                   "why": f"{n} entries > {EXACT_MAX}: exact search would exceed ~20 ms per query"}


def tune_nprobe(index: Any, vectors: np.ndarray, info: dict[str, Any], queries: int = 200) -> None:
    """Pick the smallest nprobe whose recall@10 against exact search reaches RECALL_TARGET, on
    `queries` entries of the gallery perturbed with noise (probes are never exact copies)."""
    import faiss
    rng = np.random.default_rng(1)
    q = vectors[rng.choice(len(vectors), size=min(queries, len(vectors)), replace=False)]
    q = q + rng.normal(0, 0.02, q.shape).astype(np.float32)
    flat = faiss.IndexFlatIP(DIM)
    flat.add(np.ascontiguousarray(vectors))
    _, truth = flat.search(q, 10)  # positions, which are the ids of a freshly built gallery
    for nprobe in (p for p in NPROBES if p <= index.nlist):
        index.nprobe = nprobe
        _, got = index.search(q, 10)
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)]))
        if recall >= RECALL_TARGET:
            break
    # when no nprobe tried reaches the target, the largest is kept and its recall stated
    info.update(nprobe=int(index.nprobe), recall_at_10=round(recall, 4),
                recall_measured_on=f"{len(q)} gallery vectors plus noise, against exact search")


def build_index(vectors: np.ndarray, paths: Sequence[str], identities: Sequence[str],
                folder: Path, kind: str = "auto") -> Gallery:
    index, info = new_index(vectors, kind)
    gallery = Gallery(folder=Path(folder), index=index, info=info)
    gallery.add(paths, identities, vectors)
    if info["kind"] == "ivf":
        tune_nprobe(index, vectors, info)
    return gallery


def load(folder: str | Path) -> Gallery:
    """Read a gallery; refuses (GalleryError, one line) other models or fusion weights."""
    import faiss
    folder = Path(folder)
    meta_path, index_path = folder / META_FILE, folder / INDEX_FILE
    if not meta_path.is_file() or not index_path.is_file():
        raise GalleryError("not a search gallery (no gallery.json and index.faiss)", item=str(folder),
                           hint="build one with: facelm index build --images DIR --out GALLERY")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GalleryError(f"gallery.json cannot be read ({exc})", item=str(folder)) from None
    check_compatible(meta, str(folder))
    try:
        index = faiss.read_index(str(index_path))
    except RuntimeError as exc:
        raise GalleryError(f"index.faiss cannot be read ({str(exc).splitlines()[0]})",
                           item=str(folder), hint="rebuild it with facelm index build") from None
    if "nprobe" in meta["index"]:
        index.nprobe = int(meta["index"]["nprobe"])
    entries = {int(e["id"]): {"path": e["path"], "identity": e["identity"]} for e in meta["entries"]}
    info = {k: v for k, v in meta["index"].items() if k != "size"}
    return Gallery(folder=folder, index=index, entries=entries, info=info, next_id=int(meta["next_id"]))


def check_compatible(meta: dict[str, Any], item: str) -> None:
    """Scores from other embedding models or weights are not comparable with the threshold."""
    if meta.get("gallery_schema") != GALLERY_SCHEMA:
        raise GalleryError(f"gallery layout {meta.get('gallery_schema')} is not {GALLERY_SCHEMA}",
                           item=item, hint="rebuild it with facelm index build")
    for name, now in current_models().items():
        then = meta.get("models", {}).get(name)
        if then != now:
            raise GalleryError(f"built with {name} model {then!r}, but this facelm uses {now!r}",
                               item=item, hint="build it again: facelm index build --out NEW_FOLDER")
    for name, now in current_weights().items():
        then = meta.get("weights", {}).get(name)
        if then is None or abs(float(then) - now) > 1e-9:
            raise GalleryError(f"built with fusion weight {name}={then}, but this facelm uses {now}",
                               item=item, hint="build it again: facelm index build --out GALLERY")
