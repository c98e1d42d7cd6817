"""`facelm index build|add|remove` and `facelm search`: 1:N identification (facelm.identify)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .schema_version import dumps as stamped_json


def add_parser(sub: Any) -> None:
    p = sub.add_parser("index", help="build a search gallery (FAISS) from photos; add or remove photos",
                       description="A gallery is a folder: index.faiss, gallery.json and the photos' "
                                   "analyses. See docs/search.md.")
    cmds = p.add_subparsers(dest="index_command", required=True)
    b = cmds.add_parser("build", help="a new gallery from a folder or CSV of photos")
    b.add_argument("--images", type=Path, required=True, metavar="DIR_OR_CSV",
                   help="a folder (identity = file stem) or a CSV with file[,identity] columns")
    b.add_argument("--out", type=Path, required=True, metavar="GALLERY", help="the gallery folder")
    b.add_argument("--kind", choices=("auto", "exact", "pq", "ivf"), default="auto",
                   help="index type (default auto: exact up to 5,000 photos, pq above: a 4-bit "
                        "compressed scan with exact re-ranking; ivf on request)")
    b.add_argument("--workers", type=int, default=2, help="analysis processes (default 2)")
    b.set_defaults(func=cmd_build)
    a = cmds.add_parser("add", help="add photos to a gallery without rebuilding it")
    a.add_argument("--index", type=Path, required=True, metavar="GALLERY")
    a.add_argument("--images", type=Path, required=True, metavar="DIR_OR_CSV")
    a.add_argument("--workers", type=int, default=2, help="analysis processes (default 2)")
    a.set_defaults(func=cmd_add)
    r = cmds.add_parser("remove", help="remove photos from a gallery without rebuilding it")
    r.add_argument("--index", type=Path, required=True, metavar="GALLERY")
    which = r.add_mutually_exclusive_group(required=True)
    which.add_argument("--ids", type=int, nargs="+", help="entry ids (as search reports them)")
    which.add_argument("--paths", nargs="+", help="photo paths as they were added")
    r.set_defaults(func=cmd_remove)
    s = sub.add_parser("search", help="who in the gallery is this? the top k with verdicts",
                       description="Search a gallery (facelm index build) for the face of IMAGE.")
    s.add_argument("image", metavar="IMAGE")
    s.add_argument("--index", type=Path, required=True, metavar="GALLERY")
    s.add_argument("--k", type=int, default=5, help="matches to return (default 5)")
    s.add_argument("--min-score", type=float, default=None, metavar="S",
                   help="report only matches scoring at least S (an open-set threshold: e.g. 0.827 "
                        "gave 1 %% false-positive identifications on LFW; see docs/search.md)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--seed", type=int, default=0, help="phrasing seed of the explanation")
    s.set_defaults(func=cmd_search)


def _failed(failed: list[str]) -> None:
    if failed:
        print(f"facelm: {len(failed)} photo(s) not indexed (no face or unreadable; the error is in "
              f"analyses.parquet), e.g. {failed[0]}", file=sys.stderr)


def cmd_build(args: argparse.Namespace) -> int:
    from .identify import build_gallery
    g, failed = build_gallery(args.images, args.out, kind=args.kind, workers=args.workers)
    _failed(failed)
    tuned = [f"{k} {g.info[k]}" for k in ("nprobe", "k_factor", "recall_at_10") if k in g.info]
    extra = "".join(", " + t.replace("recall_at_10", "recall@10") for t in tuned)
    print(f"{len(g)} photos indexed in {args.out} ({g.info['kind']}: {g.info['faiss']}{extra})",
          file=sys.stderr)
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from .identify import add_photos
    ids, failed = add_photos(args.index, args.images, workers=args.workers)
    _failed(failed)
    print(f"{len(ids)} photos added to {args.index}", file=sys.stderr)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from .identify import remove_photos
    n = remove_photos(args.index, ids=args.ids or (), paths=args.paths or ())
    print(f"{n} photos removed from {args.index}", file=sys.stderr)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .cli_faces import print_warnings
    from .identify import search
    result = search(args.image, args.index, k=args.k, seed=args.seed, min_score=args.min_score)
    out = result.to_dict()
    print_warnings(out["warnings"])
    print(stamped_json(out) if args.json else format_search(result))
    return 0


def format_search(result: Any) -> str:
    floor = "" if result.min_score is None else f", scores >= {result.min_score:.3f} only"
    lines = [f"{len(result.matches)} best matches in {result.gallery['folder']} "
             f"({result.gallery['size']} photos; threshold {result.threshold:.3f}{floor}):"]
    if not result.matches and result.min_score is not None:
        lines.append("  none: this face is not in the gallery at this minimum score")
    for rank, m in enumerate(result.matches, 1):
        verdict = "SAME PERSON" if m.same else "different"
        lines.append(f"  {rank}. {m.score:.3f}  P(same) {m.probability:.2f}  {verdict:<11} "
                     f"{m.identity}  {m.path}")
    if result.best is not None and result.best.explanation is not None:
        lines += ["", "Best match, concise:", "  " + result.best.explanation.concise,
                  "", "Best match, detailed:", "  " + result.best.explanation.detailed]
    return "\n".join(lines)
