"""`facelm train verlm|vlm|merge`: the two trainers and the LoRA merge share one command group."""
from __future__ import annotations

from typing import Any

TRAINERS: dict[str, str] = {"verlm": "facelm.train.verlm_cli", "vlm": "facelm.train.vlm_cli",
                            "merge": "facelm.train.merge_cli"}   # merge: LoRA into its base


def add_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a VerLM prefix model, LoRA-tune a Hugging Face VLM, merge a LoRA adapter")
    tsub = p.add_subparsers(dest="trainer", required=True)
    from ..cli import add_group
    for module in TRAINERS.values():
        add_group(tsub, module)
