"""Where facelm keeps derived files (converted weights, feature caches): $FACELM_CACHE, else
~/.cache/facelm. Nothing in it is needed to be correct; deleting it only costs a rebuild."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """The cache folder (or a sub-folder of it), not created."""
    return Path(os.environ.get("FACELM_CACHE") or Path.home() / ".cache" / "facelm").joinpath(*parts)
