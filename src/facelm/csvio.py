"""Reading users' CSV files: one place for encodings, missing columns and unreadable files."""
from __future__ import annotations

import csv
from pathlib import Path

from .errors import InputFormatError


def read_csv(path: Path, need: tuple[str, ...] = (), hint: str | None = None,
             ) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a CSV with a header line; a BOM (Excel's UTF-8) is dropped. Raises
    InputFormatError naming the file when it cannot be read or lacks a column in `need`."""
    header, rows, _ = read_csv_lines(path, need, hint)
    return header, rows


def read_csv_lines(path: Path, need: tuple[str, ...] = (), hint: str | None = None,
                   ) -> tuple[list[str], list[dict[str, str]], list[int]]:
    """read_csv, plus the line number (1-based, header = 1) each row starts on: blank lines are
    skipped as rows, so a row's position is not its line, and messages must name the line."""
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
            rows, lines = [], []
            for row in reader:  # the row ends on reader.line_num; blank lines were skipped
                end = reader.line_num
                single = not lines and end == 2 or lines and end == lines[-1] + 1
                lines.append(end if single else end - _physical_lines(row) + 1)
                rows.append(row)
            return header, rows, lines
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputFormatError(f"cannot read the CSV ({exc})", item=str(path),
                               hint=hint or "save it as a UTF-8 CSV with a header line") from exc


def _physical_lines(row: dict) -> int:
    """Lines a row spans: 1 plus the line breaks inside its quoted cells."""
    return 1 + sum(v.count("\n") for v in row.values() if isinstance(v, str))
