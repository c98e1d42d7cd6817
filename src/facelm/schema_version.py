"""The version stamp every JSON, JSONL record and report facelm writes carries.

    {"same": true, ..., "schema_version": 1, "facelm_version": "0.1.0"}

`schema_version` names the layout of facelm's outputs: it goes up when a field is renamed, removed
or changes meaning, not when a field is added, so a reader can check it once and accept any
later additive change. `facelm_version` says which release wrote the file, for the numbers.

The stamp goes after the object's own fields: resumable JSONL files are read by their first bytes
(`{"index": 3, "error": ...` in facelm.jsonl's fast path), and files written before the stamp
existed, which lack it, stay valid input everywhere.
"""
from __future__ import annotations

import json
from typing import Any

SCHEMA_VERSION = 1
STAMP_KEYS = ("schema_version", "facelm_version")


def stamp(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of `obj` with `schema_version` and `facelm_version` as its last fields (an old
    stamp, e.g. of a record read back and written again, is replaced)."""
    from . import __version__
    out = {k: v for k, v in obj.items() if k not in STAMP_KEYS}
    out["schema_version"] = SCHEMA_VERSION
    out["facelm_version"] = __version__
    return out


def dumps(obj: dict[str, Any], **kwargs: Any) -> str:
    """json.dumps of the stamped object (same keyword arguments)."""
    return json.dumps(stamp(obj), **kwargs)
