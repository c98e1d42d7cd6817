"""Verification pairs from identity labels: half same person, half different people, seeded.

Same-person pairs go round-robin over identities with two or more photos (so a person with 100
photos does not crowd out the rest). Different-people pairs are random, or *hard negatives*: each
identity is paired with its nearest other identities by mean identity embedding (SFace and dlib,
each L2-normalised, concatenated), optionally only within the same gender and age group, and the
closest pair of photos of the two is taken.
"""
from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..atomic import write_atomic
from ..errors import InputFormatError
from .sources import LabeledImage

PAIR_COLUMNS = ("file_a", "file_b", "same", "id_a", "id_b", "kind")
# Age groups for --same-group (decades, with children and seniors grouped).
AGE_EDGES = (13, 20, 30, 40, 50, 60)


@dataclass(frozen=True)
class Pair:
    file_a: str
    file_b: str
    same: bool
    id_a: str = ""
    id_b: str = ""
    kind: str = "given"       # "same" | "random" | "hard" | "given"


def _by_identity(images: Sequence[LabeledImage]) -> dict[str, list[LabeledImage]]:
    groups: dict[str, list[LabeledImage]] = {}
    for img in images:
        if img.identity:
            groups.setdefault(img.identity, []).append(img)
    if len(groups) < 2:
        raise InputFormatError(f"{len(groups)} identities with labels; pairs need at least two",
                               item="--labels", hint="the CSV needs file,identity columns")
    return groups


def same_pairs(groups: dict[str, list[LabeledImage]], n: int, rng: random.Random) -> list[Pair]:
    pools = {k: [(a, b) for a, b in combinations(v, 2)] for k, v in sorted(groups.items())
             if len(v) > 1}
    for pool in pools.values():
        rng.shuffle(pool)
    order = list(pools)
    rng.shuffle(order)
    out: list[Pair] = []
    while len(out) < n and any(pools.values()):
        for ident in order:
            if pools[ident] and len(out) < n:
                a, b = pools[ident].pop()
                out.append(Pair(a.file, b.file, True, ident, ident, "same"))
    return out


def random_negatives(groups: dict[str, list[LabeledImage]], n: int,
                     rng: random.Random) -> list[Pair]:
    ids = sorted(groups)
    seen: set[tuple[str, str]] = set()
    out: list[Pair] = []
    max_pairs = sum(len(groups[a]) * len(groups[b]) for a, b in combinations(ids, 2))
    while len(out) < min(n, max_pairs):
        ia, ib = rng.sample(ids, 2)
        a, b = rng.choice(groups[ia]), rng.choice(groups[ib])
        key = tuple(sorted((a.file, b.file)))
        if key not in seen:
            seen.add(key)
            out.append(Pair(a.file, b.file, False, ia, ib, "random"))
    return out


def identity_vector(analysis: Any) -> np.ndarray:
    parts = [np.asarray(analysis.embeddings[k], dtype=np.float64) for k in ("sface", "dlib")]
    return np.concatenate([p / (np.linalg.norm(p) + 1e-12) for p in parts])


def group_of(img: LabeledImage, analysis: Any) -> tuple[str, int]:
    """(gender, age group) from the labels where present, else from the measured attributes."""
    from ..teacher.labels import canonical_gender
    g = canonical_gender(img.labels.get("gender", "")) or ""
    nums = [float(x) for x in str(img.labels.get("age", "")).replace("-", " ").split()
            if x.replace(".", "", 1).isdigit()]
    age = float(np.mean(nums)) if nums else None
    at = getattr(analysis, "attributes", None)
    if at is not None:
        g = g or at.gender
        age = at.age if age is None else age
    return g, (sum(age >= e for e in AGE_EDGES) if age is not None else -1)


def hard_negatives(groups: dict[str, list[LabeledImage]], n: int, analyses: dict[str, Any],
                   rng: random.Random, same_group: bool = False) -> list[Pair]:
    """Different-people pairs from the nearest identities, nearest first, cycling over people."""
    vecs = {k: [(img, identity_vector(analyses[img.path])) for img in v if img.path in analyses]
            for k, v in groups.items()}
    vecs = {k: v for k, v in vecs.items() if v}
    ids = sorted(vecs)
    means = np.stack([np.mean([x for _, x in vecs[k]], axis=0) for k in ids])
    means /= np.linalg.norm(means, axis=1, keepdims=True) + 1e-12
    sims = means @ means.T
    np.fill_diagonal(sims, -np.inf)
    if same_group:
        grp = {k: group_of(vecs[k][0][0], analyses[vecs[k][0][0].path]) for k in ids}
        mask = np.array([[grp[a] != grp[b] for b in ids] for a in ids])
        sims[mask] = -np.inf
    ranked = {i: [j for j in np.argsort(-sims[i]) if np.isfinite(sims[i, j])]
              for i in range(len(ids))}
    order = list(range(len(ids)))
    rng.shuffle(order)
    used: set[tuple[str, str]] = set()
    out: list[Pair] = []
    while len(out) < n and any(ranked.values()):
        for i in order:
            while ranked[i] and len(out) < n:
                j = ranked[i].pop(0)
                pair = _closest_unused(vecs[ids[i]], vecs[ids[j]], used)
                if pair is not None:
                    out.append(Pair(pair[0].file, pair[1].file, False, ids[i], ids[j], "hard"))
                    break
    return out


def _closest_unused(a: list, b: list, used: set) -> tuple[LabeledImage, LabeledImage] | None:
    best, best_sim = None, -np.inf
    for ia, va in a:
        for ib, vb in b:
            key = tuple(sorted((ia.file, ib.file)))
            s = float(va @ vb)
            if key not in used and s > best_sim:
                best, best_sim = (ia, ib), s
    if best is not None:
        used.add(tuple(sorted((best[0].file, best[1].file))))
    return best


def sample_pairs(images: Sequence[LabeledImage], n_pairs: int, seed: int = 0,
                 hard: bool = False, same_group: bool = False,
                 analyse: Callable[[list[str]], dict[str, Any]] | None = None) -> list[Pair]:
    """n_pairs pairs, half same and half different (fewer, still balanced, if there are not
    enough same-person pairs); `analyse(paths)` gives the analyses hard negatives need."""
    rng = random.Random(seed)
    groups = _by_identity(images)
    same = same_pairs(groups, n_pairs // 2, rng)
    # Balanced: when same-person pairs run short, as many different-people pairs as there are.
    n_diff = len(same) if len(same) < n_pairs // 2 else n_pairs - len(same)
    if hard:
        if analyse is None:
            raise ValueError("hard negatives need an analyse function")
        analyses = analyse([img.path for img in images if img.identity])
        diff = hard_negatives(groups, n_diff, analyses, rng, same_group)
    else:
        diff = random_negatives(groups, n_diff, rng)
    pairs = same + diff
    rng.shuffle(pairs)
    return pairs


def write_pairs(path: Path, pairs: Sequence[Pair]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(PAIR_COLUMNS)
    w.writerows([p.file_a, p.file_b, int(p.same), p.id_a, p.id_b, p.kind] for p in pairs)
    write_atomic(path, buf.getvalue())


def read_pairs(path: str | Path) -> list[Pair]:
    """Pairs from a CSV with file_a,file_b,same (id_a,id_b,kind optional); LFW's pairs.csv works."""
    from ..batch import read_pairs_csv
    rows = read_pairs_csv(Path(path))
    out = []
    for n, row in enumerate(rows, 2):
        same = (row.get("same") or "").strip().lower()
        if same not in ("1", "0", "true", "false", "yes", "no"):
            raise InputFormatError(f"line {n}: same must be 1/0 or true/false, got {same!r}",
                                   item=str(path), hint="add a same column with the ground truth")
        out.append(Pair(row["file_a"], row["file_b"], same in ("1", "true", "yes"),
                        row.get("id_a") or "", row.get("id_b") or "", row.get("kind") or "given"))
    return out
