"""Analyse every photo named in an LFW-style pairs.csv once (identity-only) and cache the results.

Used by calibration and the verification benchmarks, so each photo is analysed once per machine.
    python benchmarks/lfw_embeddings.py [--data ../shared/data/lfw-view1] [--workers 2]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "lfw-view1"
CACHE = REPO / ".cache"


def read_pairs(data: Path) -> list[dict]:
    with open(data / "pairs.csv", newline="") as f:
        return list(csv.DictReader(f))


def _analyse(path: str) -> tuple[str, dict | None, str | None]:
    from facelm.faces import analyze
    try:
        a = analyze(path, fast=True)
        return path, {"sface": a.embeddings["sface"], "dlib": a.embeddings["dlib"],
                      "faces_found": a.faces_found}, None
    except Exception as exc:  # noqa: BLE001 - recorded per photo
        return path, None, str(exc)


def embeddings(data: Path = DEFAULT_DATA, workers: int = 2) -> dict[str, dict]:
    """{relative file: {"sface": [...], "dlib": [...]}}; failures map to {"error": msg}."""
    CACHE.mkdir(exist_ok=True)
    cache = CACHE / f"embeddings-{data.name}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    files = sorted({r[k] for r in read_pairs(data) for k in ("file_a", "file_b")})
    out: dict[str, dict] = {}
    with ProcessPoolExecutor(workers) as pool:
        jobs = pool.map(_analyse, [str(data / f) for f in files], chunksize=16)
        for f, (_, emb, err) in tqdm(zip(files, jobs), total=len(files), desc="analysing"):
            out[f] = emb if emb is not None else {"error": err}
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, cache)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    emb = embeddings(args.data, args.workers)
    failed = [k for k, v in emb.items() if "error" in v]
    print(f"{len(emb)} photos, {len(failed)} failed", file=sys.stderr)
    for k in failed:
        print(f"  {k}: {emb[k]['error']}", file=sys.stderr)


if __name__ == "__main__":
    main()
