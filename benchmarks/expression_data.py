"""Expression-head features for LFW View 1's expression labels, cached as .npz: the fer model's 7
probabilities, the 68 landmarks in a face-normalised frame, and the attribute features
(`facelm.faces.attr_features`), with each photo's identity for identity-disjoint splits.

    .venv/bin/python benchmarks/expression_data.py [--data ../shared/data/lfw-view1] [--out .cache/expr/lfw.npz]
"""
from __future__ import annotations

import argparse
import csv
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]


def one(path: str) -> tuple[np.ndarray | None, str]:
    """[fer probs (7), normalised landmarks (136), attribute features] for one photo."""
    from facelm.faces import landmarks, models
    from facelm.faces.analysis import analyze_array
    from facelm.faces.attributes import expression
    from facelm.faces.attr_features import face_features
    from facelm.faces.expression_head import expression_features
    from facelm.imageio import load_rgb
    try:
        rgb = load_rgb(path)
        fa = analyze_array(rgb, fast=True, item=path)
        shape5 = models.dlib5()(rgb, landmarks.dlib_rect(fa.detection))
        attr = face_features(rgb, shape5, fa.embeddings)[0]
        # the fer model's own probabilities (not the shipped head's refinement of them)
        return expression_features(expression(rgb, fa.detection), fa.landmarks68, attr), ""
    except Exception as exc:  # noqa: BLE001 - one photo's failure is recorded, the rest go on
        return None, f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/lfw-view1")
    ap.add_argument("--out", type=Path, default=ROOT / ".cache/expr/lfw.npz")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    with open(args.data / "expressions.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if (r.get("expression") or "").strip()]
    paths = [str(args.data / r["file"]) for r in rows]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(tqdm(pool.map(one, paths, chunksize=16), total=len(paths), desc="features"))
    keep = [i for i, (x, _) in enumerate(results) if x is not None]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, x=np.stack([results[i][0] for i in keep]),
                        files=np.array([rows[i]["file"] for i in keep]),
                        identity=np.array([Path(rows[i]["file"]).parent.name for i in keep]),
                        expression=np.array([rows[i]["expression"].strip() for i in keep]))
    print(f"{len(keep)} of {len(rows)} photos -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
