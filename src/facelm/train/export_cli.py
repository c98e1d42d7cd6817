"""`facelm export --adapter DIR --out MERGED`: merge a LoRA adapter into its base model."""
from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="merge a LoRA adapter into its base and save a plain "
                       "Hugging Face model (checked against base + adapter)")
    p.add_argument("--adapter", required=True, help="adapter folder (OUT/adapter of `facelm train "
                   "vlm`, or OUT itself)")
    p.add_argument("--out", required=True, help="folder for the merged model")
    p.add_argument("--base", help="base model (default: the one named in adapter_config.json)")
    p.add_argument("--no-check", action="store_true",
                   help="skip reloading the merged model and comparing logits")
    p.add_argument("--atol", type=float, default=1e-3, help="logit tolerance of the check")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .vlm_export import export_merged
    report = export_merged(args.adapter, args.out, base=args.base, check=not args.no_check,
                           atol=args.atol)
    print(json.dumps(asdict(report)))
    return 0
