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

__all__ = ["CONFIG_NAME", "SHIPPED", "VerLMConfig", "load", "load_small", "shipped_path"]

# Trained VerLM models that ship inside the package (trainable parts only, fp16; the base LM comes
# from its own package). Each folder's manifest.json says how to reproduce it.
SHIPPED = {"verlm-small": "weights/verlm-small"}


def load(path: str | Path, *, device: str | None = None, batch_size: int = 8,
         int8: bool | None = None, **kw: Any) -> Any:
    """The VerLM checkpoint at `path` as a FaceVLM (facelm.models.base). `int8`: the LM's linear
    layers as int8 weights (CPU only; quant.py); None: as FACELM_VERLM_INT8 says (1/0), else off."""
    from .checkpoint import load_checkpoint
    from .interface import VerLMFaceVLM
    return VerLMFaceVLM(load_checkpoint(path, int8=_want_int8(int8, device)), device=device,
                        batch_size=batch_size, **kw)


def _want_int8(int8: bool | None, device: str | None, default: bool = False) -> bool:
    import os
    import torch
    on_cpu = (device or ("cuda" if torch.cuda.is_available() else "cpu")) == "cpu"
    if int8 is None:
        env = os.environ.get("FACELM_VERLM_INT8", "").strip()
        int8 = default if env == "" else env not in ("0", "false", "no", "off")
    return bool(int8) and on_cpu


def shipped_path(name: str) -> Path:
    """The folder of a shipped model (see SHIPPED)."""
    from ...errors import ModelNotInstalledError
    path = Path(__file__).parent / SHIPPED[name]
    if not (path / CONFIG_NAME).is_file():
        raise ModelNotInstalledError(f"the shipped model {name} is missing from this installation",
                                     item=str(path), hint="reinstall facelm (pip install -e .)")
    return path


def load_small(*, device: str | None = None, int8: bool | None = None, **kw: Any) -> Any:
    """verlm-small: the shipped SmolLM2-based VerLM (grounded mode). On CPU its LM runs with int8
    weights by default (measured in docs/benchmarks/verlm_small.md; FACELM_VERLM_INT8=0 or
    int8=False for fp32)."""
    return load(shipped_path("verlm-small"), device=device,
                int8=_want_int8(int8, device, default=True), **kw)
