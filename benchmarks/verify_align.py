"""Alignment from dlib's 68 landmarks instead of YuNet's 5 points / dlib's 5-point shape, measured on
LFW View 1 with benchmarks/verify_tta.py's table (issue 13, item 4: "better alignment or crop").

SFace: the 112x112 crop aligned from the 68-point eye centres, nose tip (30) and mouth corners
(48, 54) instead of YuNet's 5 points. dlib: the 150x150 chip from the 68-point shape (dlib's
get_face_chip accepts either; face_recognition's "large" model uses it) instead of the 5-point one.
Both are already computed by the analysis, so either costs nothing extra. Cached in
.cache/align68-<data>.npz; rows as in verify_tta (row 0 the crop, row 1 its mirror).
    python benchmarks/verify_align.py [--data ../shared/data/lfw-view1] [--workers 2]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lfw_embeddings import CACHE, DEFAULT_DATA, read_pairs  # noqa: E402
from verify_tta import _embed, evaluate, extract, print_table  # noqa: E402


def _photo68(path: str) -> tuple[np.ndarray, np.ndarray] | str:
    """(2,128) SFace and (2,128) dlib embeddings of the 68-point-aligned crop/chip and mirrors."""
    try:
        import dlib
        from facelm.faces import landmarks, models
        from facelm.faces.align import align_face
        from facelm.faces.detect import choose_face, detect_faces
        from facelm.imageio import load_rgb
        rgb = load_rgb(path, name=path)
        det = choose_face(detect_faces(rgb, item=path), (int(rgb.shape[1]), int(rgb.shape[0])))
        shape68 = models.dlib68()(rgb, landmarks.dlib_rect(det))
        pts = np.array([(p.x, p.y) for p in shape68.parts()], float)
        five = (pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54])
        crop = align_face(rgb, dataclasses.replace(det, landmarks5=tuple(map(tuple, five))))
        chip = dlib.get_face_chip(np.ascontiguousarray(rgb), shape68, 150, 0.25)
        return _embed(crop, chip)
    except Exception as exc:  # noqa: BLE001 - one photo's failure, scored as a rejection
        return f"{type(exc).__name__}: {exc}"


def extract68(data: Path, files: list[str], workers: int, cache: Path) -> dict[str, np.ndarray]:
    return extract(data, files, workers, cache, photo=_photo68, what="embedding (68-point alignment)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    files = sorted({r[k] for r in read_pairs(args.data) for k in ("file_a", "file_b")})
    base = extract(args.data, files, args.workers, CACHE / f"tta-{args.data.name}.npz")
    z68 = extract68(args.data, files, args.workers, CACHE / f"align68-{args.data.name}.npz")
    # The quality measures come from the 5-point run (they do not depend on the alignment).
    for label, swap in (("SFace 68-point crop, dlib 5-point chip", "sface"),
                        ("SFace 5-point crop, dlib 68-point chip", "dlib"),
                        ("both from the 68 points", "both")):
        z = dict(base)
        for m in ("sface", "dlib"):
            if swap in (m, "both"):
                z[m] = z68[m]
        z["ok"] = base["ok"] & z68["ok"]
        print(f"\n### {label}\n")
        print_table(evaluate(args.data, z))


if __name__ == "__main__":
    main()
