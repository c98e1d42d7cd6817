"""The accelerate launch configs that ship with facelm (facelm/train/configs/*.yaml)."""
from __future__ import annotations

from pathlib import Path

from ..errors import InputFormatError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
# kind -> file; DDP for models that fit one GPU, FSDP or ZeRO-3 to shard 38B-class models.
LAUNCH_CONFIGS: dict[str, str] = {
    "ddp": "ddp.yaml",
    "fsdp": "fsdp.yaml",
    "deepspeed_zero3": "deepspeed_zero3.yaml",
}


def config_path(kind: str) -> Path:
    if kind not in LAUNCH_CONFIGS:
        raise InputFormatError(f"no launch config {kind!r}", item="--print-config",
                               hint=f"choose one of {', '.join(LAUNCH_CONFIGS)}")
    return CONFIG_DIR / LAUNCH_CONFIGS[kind]
