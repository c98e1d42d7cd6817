"""A search gallery: a FAISS index of the fused identity space, with its metadata, in one folder.

The fused score is W_SFACE * cos_sface + W_DLIB * cos_dlib of unit embeddings. The inner product of
two vectors [sqrt(W_SFACE) * sface, sqrt(W_DLIB) * dlib] (256-d) is exactly that sum, so a FAISS
inner-product index over them returns the fused score itself, on the scale of THRESHOLD.

    GALLERY/index.faiss       the FAISS index (ids are the metadata's entry ids)
    GALLERY/gallery.json      paths, identities, model versions, fusion weights, index kind
    GALLERY/analyses.parquet  the photos' analyses (facelm.table), so a rebuild or add resumes

Small galleries use an exact index (IndexFlatIP in IndexIDMap2: entries are added and removed
without a rebuild); large ones a compressed full scan with exact re-ranking ("pq": 4-bit product
quantisation, FAISS fast-scan, in IndexRefineFlat), its re-ranking depth tuned at build time to
recall@10 >= 0.99 against exact, measured and stated in gallery.json. IVF ("ivf") is still built on
request and galleries built with it still load.
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
# 0.3 ms p50 at 10 k, 7 ms at 100 k and 64 ms at 1 M entries (benchmarks/bench_search.py). The
# compressed scan ("pq") reads 64 bytes a vector instead of 1 KB: 0.07 ms at 5 k (exact 0.13),
# 0.12 at 10 k, 5 ms at 1 M. At 2 k both took 0.07-0.09 ms, and exact needs no training or tuning.
EXACT_MAX = 5_000
RECALL_TARGET = 0.99
# The build tunes to this, above the target: 200 build-time probes estimate recall to about
# +-0.003, and at 1 M a k_factor tuned to 0.9915 gave 0.989 on real LFW probes.
TUNE_TARGET = 0.995
NPROBES = (8, 16, 32, 64, 128, 256, 512, 1024)
# 128 sub-quantisers of 4 bits over 2 dims each: 64 bytes a vector. 64x4 (32 bytes) was 2x faster
# to scan but needed 2,048 re-ranked candidates a result for recall@10 0.98 at 1 M; 128x4 reached
# 0.993 with 128 (face-like vectors spread information over all 256 dims, so coarse codes lose it).
PQ_SPEC = "PQ128x4fs"
K_FACTORS = (4, 8, 16, 32, 64, 128, 256, 512)
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
    index: Any    # faiss.Index: IndexIDMap2(IndexFlatIP), IndexIVFFlat or IndexIDMap2(IndexRefineFlat)
    entries: dict[int, dict[str, str]] = field(default_factory=dict)   # id -> path, identity
    info: dict[str, Any] = field(default_factory=dict)     # kind, nlist, nprobe, k_factor, recall
    next_id: int = 0
    _refine: Any = field(default=None, repr=False)   # the IndexRefineFlat of a pq gallery, cached

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
        if not known:
            return 0
        if self.info.get("kind") == "pq":
            _remove_refined(self.index, np.asarray(known, dtype=np.int64))
        else:
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
        if "k_factor" in self.info:  # re-rank as many candidates as were tuned for k=10, or more
            refine = self._refine if self._refine is not None else faiss.downcast_index(self.index.index)
            self._refine = refine
            refine.k_factor = float(max(self.info["k_factor"], math.ceil(10 * self.info["k_factor"] / k)))
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
    requested = kind != "auto"
    if not requested:
        kind = "exact" if n <= EXACT_MAX else "pq"
    if kind == "exact":
        why = (f"{n} entries <= {EXACT_MAX}: exact search is as fast" if not requested
               else "requested (--kind exact)")
        return (faiss.IndexIDMap2(faiss.IndexFlatIP(DIM)),
                {"kind": "exact", "faiss": "IDMap2,Flat (inner product)", "why": why})
    if kind not in ("ivf", "pq"):
        raise GalleryError(f"unknown index kind {kind!r}", hint="use auto, exact, pq or ivf")
    if n < 1000:
        raise GalleryError(f"a {kind} index needs at least 1000 entries, not {n}", hint="use exact")
    index, info = _new_pq(vectors) if kind == "pq" else _new_ivf(vectors)
    return index, {**info, "why": f"requested (--kind {kind})"} if requested else info


def _sample(vectors: np.ndarray, size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    n = len(vectors)
    return np.ascontiguousarray(vectors[np.sort(rng.choice(n, size=min(n, size), replace=False))])


def _new_ivf(vectors: np.ndarray) -> tuple[Any, dict[str, Any]]:
    import faiss
    n = len(vectors)
    nlist = int(min(max(16, round(math.sqrt(n))), 4096))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, nlist, faiss.METRIC_INNER_PRODUCT)
    index.train(_sample(vectors, 50 * nlist))
    return index, {"kind": "ivf", "faiss": f"IVF{nlist},Flat (inner product)", "nlist": nlist,
                   "why": "requested"}


def _new_pq(vectors: np.ndarray) -> tuple[Any, dict[str, Any]]:
    """IndexIDMap2(IndexRefineFlat(IndexPQFastScan)): every query scans all 4-bit codes, then
    re-ranks the best k * k_factor by their exact inner product (the refine index keeps the float
    vectors), so reported scores are exact fused scores. IVF lost here: face vectors have no
    cluster structure, and it needed nprobe = nlist / 2 for recall 0.99 at 1 M."""
    import faiss
    base = faiss.index_factory(DIM, PQ_SPEC, faiss.METRIC_INNER_PRODUCT)
    base.train(_sample(vectors, 20_000))  # k-means of 16 centroids a sub-space: 20 k is plenty
    index = faiss.IndexIDMap2(faiss.IndexRefineFlat(base))
    return index, {"kind": "pq", "faiss": f"IDMap2,{PQ_SPEC},RFlat (inner product)",
                   "why": f"{len(vectors)} entries > {EXACT_MAX}: a compressed scan with exact "
                          "re-ranking is faster than exact search at equal recall"}


def _remove_refined(index: Any, ids: np.ndarray) -> None:
    """IndexRefine has no remove_ids; its two parts do, and both compact their arrays in the
    same order, so removing the same positions from each (and from the id map) keeps them aligned."""
    import faiss
    refine = faiss.downcast_index(index.index)
    id_map = faiss.vector_to_array(index.id_map)
    drop = np.isin(id_map, ids)
    positions = faiss.IDSelectorBatch(np.flatnonzero(drop).astype(np.int64))
    faiss.downcast_index(refine.base_index).remove_ids(positions)
    faiss.downcast_index(refine.refine_index).remove_ids(positions)
    refine.ntotal = refine.base_index.ntotal
    faiss.copy_array_to_vector(np.ascontiguousarray(id_map[~drop]), index.id_map)
    index.ntotal = refine.ntotal
    index.construct_rev_map()


def tune(index: Any, vectors: np.ndarray, info: dict[str, Any], queries: int = 200) -> None:
    """Pick the smallest nprobe (ivf) or k_factor (pq) whose recall@10 against exact search reaches
    TUNE_TARGET, on `queries` gallery vectors used as held-out probes: each one's own entry is
    left out of both result lists, so what is measured is finding the 10 nearest *other* faces, as
    for a real probe (a perturbed copy of an entry was easier: its own entry dominates)."""
    import faiss
    rng = np.random.default_rng(1)
    pick = np.sort(rng.choice(len(vectors), size=min(queries, len(vectors)), replace=False))
    q = np.ascontiguousarray(vectors[pick])
    flat = faiss.IndexFlatIP(DIM)
    flat.add(np.ascontiguousarray(vectors))
    truth = _others(flat.search(q, 11)[1], pick)  # positions = the ids of a freshly built gallery
    if info["kind"] == "ivf":
        name, values, target = "nprobe", [p for p in NPROBES if p <= index.nlist], index
    else:
        name, values, target = "k_factor", list(K_FACTORS), faiss.downcast_index(index.index)
    for value in values:
        setattr(target, name, value)
        got = _others(index.search(q, 11)[1], pick)
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)]))
        if recall >= TUNE_TARGET:
            break
    # when no value tried reaches the target, the largest is kept and its recall stated
    info.update({name: int(value), "recall_at_10": round(recall, 4),
                 "recall_measured_on": f"{len(q)} gallery vectors as held-out probes (own entry "
                                       "left out), against exact search"})


def _others(ids: np.ndarray, own: np.ndarray) -> list[list[int]]:
    """Each row's first 10 ids other than its own."""
    return [[i for i in row if i != o][:10] for row, o in zip(ids.tolist(), own.tolist())]



def build_index(vectors: np.ndarray, paths: Sequence[str], identities: Sequence[str],
                folder: Path, kind: str = "auto") -> Gallery:
    index, info = new_index(vectors, kind)
    gallery = Gallery(folder=Path(folder), index=index, info=info)
    gallery.add(paths, identities, vectors)
    if info["kind"] in ("ivf", "pq"):
        tune(index, vectors, info)
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
    if "k_factor" in meta["index"]:  # also set per search (it depends on k); here for direct use
        faiss.downcast_index(index.index).k_factor = float(meta["index"]["k_factor"])
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
