"""`facelm analyze --images DIR_OR_CSV --out X.parquet` (the analysis table, facelm.table) and the
`--engine local|ray [--address ADDR]` options of the commands that analyse many photos.

Kept apart from cli.py so that building the parser imports nothing heavy (pyarrow, Ray).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ENGINE_HELP = ("who analyses the photos: local (a process pool on this machine) or ray (Ray Data: "
               "a local Ray cluster, or the one --address names; needs setup.sh --scale)")


def add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=("local", "ray"), default="local", help=ENGINE_HELP)
    p.add_argument("--address", metavar="ADDR", help="the Ray cluster to join (e.g. auto, or "
                   "HEAD_IP:6379; see docs/scale.md); default: start a local one")


def add_table_options(p: argparse.ArgumentParser) -> None:
    """The batch form of `analyze`: many photos into one Parquet table."""
    p.add_argument("--images", type=Path, metavar="DIR_OR_CSV",
                   help="analyse every photo of a folder (recursively) or of a CSV's `file` column "
                        "into the table --out")
    p.add_argument("--out", type=Path, metavar="X.parquet",
                   help="the table: a folder of Parquet parts; re-running skips photos already in it")
    p.add_argument("--workers", type=int, default=2, help="worker processes (or Ray actors)")
    add_engine_options(p)


def cmd_analyze_table(args: argparse.Namespace) -> int:
    """`analyze --images`: the table of every photo; a summary line on stderr."""
    from .cli_faces import face_choice
    from .table import analyze_to_parquet
    face_choice(args, refuse="--images")   # the table holds each photo's main face
    if args.image is not None or args.out is None:
        raise SystemExit("facelm analyze: give one IMAGE, or --images DIR_OR_CSV --out X.parquet")
    if args.embeddings:
        raise SystemExit("facelm analyze --images: the table always holds both embeddings; "
                         "leave out --embeddings")
    s = analyze_to_parquet(args.images, args.out, workers=args.workers, fast=args.fast,
                           engine=args.engine, address=args.address)
    print(f"{s['done']} photos written to {args.out} ({s['failed']} failed, see their 'error'); "
          f"{s['skipped']} already done earlier; {s['total']} in {args.images}", file=sys.stderr)
    return 0
