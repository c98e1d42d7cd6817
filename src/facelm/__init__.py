"""facelm: face-understanding vision-language models, offline first.

The top-level verbs are imported lazily so that `import facelm` loads no model and no heavy
dependency (no import-time side effects).
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["analyze", "compare", "describe", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("analyze", "compare", "describe"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'facelm' has no attribute {name!r}")
