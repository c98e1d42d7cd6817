"""VerLM, the explainable face-verification prefix model (after VerLM / ADIFF), one file per part:

config (VerLMConfig) · features (frozen face encoder, cached) · mapper · separator ·
cross_projection · lm (SmolLM2 offline, or any HF causal LM) · model (VerLM) · generation (KV
cache) · checkpoint (save/load) · interface (FaceVLM) · verdict (agreement with the score).

`load(path)` returns the checkpoint behind the FaceVLM interface. Importing this package loads
nothing heavy (torch is imported by the submodules, on use).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import CONFIG_NAME, VerLMConfig

__all__ = ["CONFIG_NAME", "VerLMConfig", "load"]


def load(path: str | Path, *, device: str | None = None, batch_size: int = 8, **kw: Any) -> Any:
    """The VerLM checkpoint at `path` as a FaceVLM (facelm.models.base)."""
    from .checkpoint import load_checkpoint
    from .interface import VerLMFaceVLM
    return VerLMFaceVLM(load_checkpoint(path), device=device, batch_size=batch_size, **kw)
