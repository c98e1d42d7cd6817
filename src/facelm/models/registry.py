"""`load_model(spec)`: one place that turns a model name into a `FaceVLM`.

Specs (checked in this order):
* a registered name: "evidence" (the offline explainer behind the FaceVLM interface) or
  "verlm-small" (the shipped trained VerLM, facelm.models.verlm.SHIPPED);
* "openai:MODEL[@BASE_URL]", an OpenAI-compatible chat endpoint (key from $OPENAI_API_KEY);
* a folder holding a facelm VerLM checkpoint (it has `verlm_config.json`);
* anything else: a Hugging Face image-text-to-text model name or local folder.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

from .base import FaceVLM

# Named models: name -> "module:function" (the function takes **kwargs, returns a FaceVLM).
_LOADERS: dict[str, str] = {"evidence": "facelm.models.evidence:load",
                             "verlm-small": "facelm.models.verlm:load_small"}
# The loaders behind the spec forms; not names a user types.
_OPENAI = "facelm.models.openai_vlm:load"
_VERLM = "facelm.models.verlm:load"
_HF = "facelm.models.hf_vlm:load"


def register(name: str, target: str) -> None:
    """Register a loader as "module:function" under `name` (for plug-ins)."""
    _LOADERS[name] = target


def _resolve(target: str) -> Callable[..., FaceVLM]:
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def load_model(spec: str, **kwargs: Any) -> FaceVLM:
    """The FaceVLM named by `spec` (see the module docstring)."""
    if spec in _LOADERS:
        return _resolve(_LOADERS[spec])(**kwargs)
    if spec.startswith("openai:"):
        model, _, base_url = spec[len("openai:"):].partition("@")
        return _resolve(_OPENAI)(model=model, base_url=base_url or None, **kwargs)
    from .verlm.config import CONFIG_NAME
    if (Path(spec) / CONFIG_NAME).is_file():
        return _resolve(_VERLM)(path=spec, **kwargs)
    return _resolve(_HF)(name_or_path=spec, **kwargs)
