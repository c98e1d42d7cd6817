"""`facelm train merge --adapter DIR --out MERGED`: merge a LoRA adapter into its base model.

Its old name, `facelm export`, stays as an alias (export_cli.py); it was renamed because `facelm
data export` (write a dataset) shared the word.
"""
from __future__ import annotations

import argparse
from typing import Any

HELP = ("merge a LoRA adapter into its base and save a plain Hugging Face model (checked against "
        "base + adapter)")


def add_parser(sub: Any) -> None:
    configure(sub.add_parser("merge", help=HELP))


def configure(p: argparse.ArgumentParser) -> None:
    """The options, shared with the old name."""
    p.add_argument("--adapter", required=True, help="adapter folder (OUT/adapter of `facelm train "
                   "vlm`, or OUT itself)")
    p.add_argument("--out", required=True, help="folder for the merged model")
    p.add_argument("--base", help="base model (default: the one named in adapter_config.json)")
    p.add_argument("--no-check", action="store_true",
                   help="skip reloading the merged model and comparing logits")
    p.add_argument("--atol", type=float, default=1e-3, help="logit tolerance of the check")
    p.set_defaults(func=cmd_merge)


def cmd_merge(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ..schema_version import dumps as stamped_json
    from .vlm_export import export_merged
    report = export_merged(args.adapter, args.out, base=args.base, check=not args.no_check,
                           atol=args.atol)
    print(stamped_json(asdict(report)))
    return 0
