"""`facelm export`: the old name of `facelm train merge` (merge_cli.py), kept so existing scripts
keep working."""
from __future__ import annotations

from typing import Any

from .merge_cli import HELP, cmd_merge, configure

cmd_export = cmd_merge   # the old handler's name


def add_parser(sub: Any) -> None:
    configure(sub.add_parser("export", help=f"(old name of `facelm train merge`) {HELP}"))
