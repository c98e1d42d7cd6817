"""facelm: face-understanding vision-language models, offline first.

The top-level verbs are imported lazily so that `import facelm` loads no model and no heavy
dependency (no import-time side effects).
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
_VERBS = ("analyze", "compare", "describe", "search")
__all__ = [*_VERBS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _VERBS:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'facelm' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazy verbs are not in the module's namespace until first used: list them anyway, so
    # dir(facelm) and tab completion show what the package offers (not its typing imports).
    return sorted({n for n in globals() if n.startswith("__")} | set(__all__))
