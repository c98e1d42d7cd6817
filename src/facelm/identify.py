"""1:N identification: build a gallery from photos, add and remove photos, search it.

    g = build_gallery("photos/", "gallery/")          # or a CSV with file[,identity] columns
    result = search("probe.jpg", "gallery/", k=5)      # facelm.search
    result.matches[0].identity, result.matches[0].score, result.best.explanation.concise

Embeddings come from the analysis table (facelm.table, identity-only analysis), stored in the
gallery folder, so building again or adding photos analyses only photos not seen before.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import calibration as cal
from . import gallery as gal
from .errors import GalleryError, InputFormatError
from .faces.types import FaceAnalysis, _round
from .imageio import ImageInput
from .verify import Comparison, probability


def gallery_items(images: str | Path) -> list[tuple[str, str]]:
    """(absolute path, identity) of each photo: a folder's photos are named by their file stem,
    a CSV's by its `identity` column when it has one (else the stem too)."""
    from .table import list_images
    images = Path(images)
    paths = list_images(images)
    if images.is_dir():
        return [(p, Path(p).stem) for p in paths]
    from .csvio import read_csv
    _, rows = read_csv(images, ("file",))
    names = [(r.get("identity") or "").strip() or Path(p).stem for r, p in zip(rows, paths)]
    return list(zip(paths, names))


def embed(items: Sequence[tuple[str, str]], folder: Path, *, workers: int = 2,
          progress: bool = True) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    """(paths, identities, fused vectors) of the photos that were analysed, and the failed paths
    (no face, unreadable): analysed into the gallery's table, which resumes."""
    from .table import analyze_to_parquet, read_embeddings
    table = Path(folder) / gal.ANALYSES_FILE
    analyze_to_parquet([p for p, _ in items], table, workers=workers, fast=True, progress=progress)
    paths, sface, dlib, ok = read_embeddings(table)
    row = {p: i for i, p in enumerate(paths)}
    keep, failed = [], []
    for p, ident in items:
        i = row.get(os.path.abspath(p))
        (keep if i is not None and ok[i] else failed).append((p, ident, i))
    rows = np.asarray([i for _, _, i in keep], dtype=np.int64)
    vectors = gal.fused_vectors(sface[rows], dlib[rows]) if len(rows) else np.zeros((0, gal.DIM), np.float32)
    return [p for p, _, _ in keep], [n for _, n, _ in keep], vectors, [p for p, _, _ in failed]


def build_gallery(images: str | Path, out: str | Path, *, kind: str = "auto", workers: int = 2,
                  progress: bool = True) -> tuple[gal.Gallery, list[str]]:
    """A new gallery in `out` from a folder or CSV of photos; returns it and the failed photos."""
    from .outlock import LOCK_NAME, output_lock
    out = Path(out)
    if (out / gal.META_FILE).exists():
        _check_rebuild(out)
    elif out.is_dir() and any(p.name not in _OURS + (LOCK_NAME,) for p in out.iterdir()):
        raise GalleryError("is a folder with files facelm did not write; it was left unchanged",
                           item=str(out), hint="build into a new or empty --out folder")
    with output_lock(out, folder=True):
        items = gallery_items(images)
        paths, names, vectors, failed = embed(items, out, workers=workers, progress=progress)
        if not paths:
            raise GalleryError("no photo with a face to index", item=str(images),
                               hint="check the photos; each failed one is listed in analyses.parquet")
        g = gal.build_index(vectors, paths, names, out, kind)
        g.save()
    return g, failed


# What a gallery folder holds: anything else in an --out folder is a user's, and is not touched.
_OURS = (gal.INDEX_FILE, gal.META_FILE, gal.ANALYSES_FILE)


def _check_rebuild(out: Path) -> None:
    """Building again in place is fine (the analyses resume) unless the embedding models changed:
    the stored analyses would then mix two models' embeddings."""
    import json
    try:
        models = json.loads((out / gal.META_FILE).read_text(encoding="utf-8")).get("models")
    except (OSError, ValueError):
        models = None
    if models != gal.current_models():
        raise GalleryError("holds a gallery of other embedding models (or an unreadable one)",
                           item=str(out), hint="build into a new --out folder")


def add_photos(folder: str | Path, images: str | Path, *, workers: int = 2,
               progress: bool = True) -> tuple[list[int], list[str]]:
    """Add photos to a gallery without rebuilding it (photos already in it are skipped)."""
    from .outlock import output_lock
    with output_lock(Path(folder), folder=True):  # load-change-save: two at once would lose one's
        g = gal.load(folder)
        present = {os.path.abspath(e["path"]) for e in g.entries.values()}
        items = [(p, n) for p, n in gallery_items(images) if os.path.abspath(p) not in present]
        paths, names, vectors, failed = embed(items, g.folder, workers=workers, progress=progress)
        ids = g.add(paths, names, vectors)
        g.save()
    return ids, failed


def remove_photos(folder: str | Path, *, ids: Sequence[int] = (), paths: Sequence[str] = ()) -> int:
    """Remove entries by id or by photo path, without rebuilding; returns how many were removed."""
    from .outlock import output_lock
    with output_lock(Path(folder), folder=True):
        g = gal.load(folder)
        wanted = [*ids, *g.ids_of_paths([os.path.abspath(p) for p in paths])]
        n = g.remove(sorted(set(wanted)))
        g.save()
    return n


@dataclass(frozen=True)
class Match:
    id: int
    path: str
    identity: str
    score: float          # the fused score, as facelm.compare computes it
    same: bool            # score >= the calibrated threshold
    probability: float    # calibrated P(same person | score)

    def to_dict(self) -> dict[str, Any]:
        return _round({"id": self.id, "path": self.path, "identity": self.identity,
                       "score": self.score, "same": self.same,
                       "verdict": "same" if self.same else "different",
                       "probability": self.probability})


@dataclass(frozen=True)
class SearchResult:
    query: FaceAnalysis
    matches: tuple[Match, ...]        # best first
    threshold: float
    best: Comparison | None           # the query against the best match's photo, explained
    gallery: dict[str, Any]
    min_score: float | None = None    # matches below it were left out (open-set threshold)

    def to_dict(self) -> dict[str, Any]:
        best = None
        if self.best is not None:
            cmp = self.best.to_dict()
            best = {"path": self.matches[0].path, "identity": self.matches[0].identity,
                    **{k: v for k, v in cmp.items() if k not in ("a", "warnings")}}
        return {"matches": [m.to_dict() for m in self.matches], "threshold": self.threshold,
                "min_score": self.min_score, "best_match": best, "query": self.query.to_dict(),
                "gallery": _round(self.gallery),
                "warnings": list(self.query.warnings)}


_CACHE: dict[str, tuple[float, gal.Gallery]] = {}


def open_gallery(index: str | Path | gal.Gallery) -> gal.Gallery:
    """A loaded gallery, cached per process until its metadata file changes (a server worker
    reads it once; `index add` or `remove` elsewhere is seen at the next search)."""
    if isinstance(index, gal.Gallery):
        return index
    key = os.path.abspath(index)
    meta = Path(key) / gal.META_FILE
    stamp = meta.stat().st_mtime_ns if meta.is_file() else -1.0
    hit = _CACHE.get(key)
    if hit is None or hit[0] != stamp:
        _CACHE[key] = (stamp, gal.load(key))
    return _CACHE[key][1]


def search(image: ImageInput | FaceAnalysis, index: str | Path | gal.Gallery, *, k: int = 5,
           fast: bool = False, explain: bool = True, seed: int = 0,
           min_score: float | None = None) -> SearchResult:
    """Who in the gallery is this? The top k gallery photos by fused score, best first, each with
    the calibrated verdict, and the query compared with the best match (dual-tier explanation).
    `min_score`: report only matches scoring at least this (an open-set threshold, chosen for the
    false-positive identification rate wanted; docs/search.md); no match is then "not in the gallery"."""
    from .api import analyze, compare
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 1000:
        raise InputFormatError(f"k must be a whole number from 1 to 1000, not {k!r}", item="k")
    min_score = check_min_score(min_score)
    g = open_gallery(index)
    query = image if isinstance(image, FaceAnalysis) else analyze(image, fast=fast)
    vec = gal.fused_vectors(np.asarray(query.embeddings["sface"]), np.asarray(query.embeddings["dlib"]))
    scores, ids = g.search(vec, k)
    matches = tuple(_match(g, int(i), float(s)) for s, i in zip(scores[0], ids[0])
                    if i >= 0 and (min_score is None or s >= min_score))
    best = None
    if explain and matches:
        best = compare(query, matches[0].path, fast=fast, seed=seed)
    info = {"folder": str(g.folder), "size": len(g), **g.info}
    return SearchResult(query=query, matches=matches, threshold=cal.THRESHOLD, best=best, gallery=info,
                        min_score=min_score)


def check_min_score(value: object) -> float | None:
    """None, or a finite number in [-1, 1] (fused scores are convex sums of cosines)."""
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        score = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        score = float("nan")
    if not -1.0 <= score <= 1.0:  # also refuses nan
        raise InputFormatError(f"min_score must be a number from -1 to 1, not {value!r}",
                               item="min_score", hint="e.g. 0.827 (FPIR 1 % on LFW; docs/search.md)")
    return score


def _match(g: gal.Gallery, i: int, score: float) -> Match:
    e = g.entries[i]
    return Match(id=i, path=e["path"], identity=e["identity"], score=score,
                 same=score >= cal.THRESHOLD, probability=probability(score))

