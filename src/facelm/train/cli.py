"""`facelm train verlm|vlm`: the two trainers share one command group."""
from __future__ import annotations

from typing import Any

TRAINERS: dict[str, str] = {"verlm": "facelm.train.verlm_cli", "vlm": "facelm.train.vlm_cli"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a VerLM prefix model or LoRA-tune a Hugging Face VLM")
    tsub = p.add_subparsers(dest="trainer", required=True)
    from ..cli import add_group
    for module in TRAINERS.values():
        add_group(tsub, module)
