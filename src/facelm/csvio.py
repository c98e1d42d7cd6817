"""Reading users' CSV files: one place for encodings, missing columns and unreadable files."""
from __future__ import annotations

import csv
from pathlib import Path

from .errors import InputFormatError


def read_csv(path: Path, need: tuple[str, ...] = (), hint: str | None = None,
             ) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a CSV with a header line; a BOM (Excel's UTF-8) is dropped. Raises
    InputFormatError naming the file when it cannot be read or lacks a column in `need`."""
    if not Path(path).is_file():
        raise InputFormatError("no such file", item=str(path), hint=hint)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            missing = [c for c in need if c not in header]
            if missing:
                raise InputFormatError(
                    f"missing column(s) {', '.join(missing)}; found {', '.join(header) or 'no header'}",
                    item=str(path), hint=hint or f"the CSV needs a header with {','.join(need)}")
            return header, list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputFormatError(f"cannot read the CSV ({exc})", item=str(path),
                               hint=hint or "save it as a UTF-8 CSV with a header line") from exc
