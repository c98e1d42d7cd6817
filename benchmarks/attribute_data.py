"""Attribute-head features for a labelled UTKFace-style folder (labels.csv: file, age, gender,
race), cached as .npz: what `benchmarks/train_attributes.py` fits on.

    .venv/bin/python benchmarks/attribute_data.py ../shared/data/utkface-train .cache/attr/train.npz
"""
from __future__ import annotations

import argparse
import csv
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm


def one(path: str) -> tuple[np.ndarray | None, str]:
    from facelm.faces import landmarks, models
    from facelm.faces.analysis import analyze_array
    from facelm.faces.attr_features import face_features
    from facelm.imageio import load_rgb
    try:
        rgb = load_rgb(path)
        fa = analyze_array(rgb, fast=True, item=path)
        shape5 = models.dlib5()(rgb, landmarks.dlib_rect(fa.detection))
        return face_features(rgb, shape5, fa.embeddings)[0], ""
    except Exception as exc:  # noqa: BLE001 - one photo's failure is recorded, the rest go on
        return None, f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args(argv)
    with open(args.folder / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rows = rows[: args.limit] if args.limit else rows
    paths = [str(args.folder / r["file"]) for r in rows]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(tqdm(pool.map(one, paths, chunksize=16), total=len(paths), desc="features"))
    keep = [i for i, (x, _) in enumerate(results) if x is not None]
    failed = {rows[i]["file"]: results[i][1] for i in range(len(rows)) if results[i][0] is None}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, x=np.stack([results[i][0] for i in keep]),
                        files=np.array([rows[i]["file"] for i in keep]),
                        age=np.array([float(rows[i]["age"]) for i in keep]),
                        gender=np.array([rows[i]["gender"] for i in keep]),
                        race=np.array([rows[i]["race"] for i in keep]),
                        failed=np.array(sorted(failed)), reasons=np.array([failed[k] for k in sorted(failed)]))
    print(f"{len(keep)} of {len(rows)} photos -> {args.out}; {len(failed)} failed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
