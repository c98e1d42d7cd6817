"""Labelled face photos from a folder and a CSV (FairFace, UTKFace, or any CSV via a column map).

FairFace's `file,age,gender,race` and UTKFace's `file,age,gender,race` read as they are; another
CSV names its columns with `columns={"file": "img", "race": "ethnicity", ...}` (the CLI's
`--columns file=img,race=ethnicity`). Paths in the CSV are relative to the images folder.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..csvio import read_csv_lines
from ..teacher.labels import age_label_problem
from ..errors import InputFormatError

# Canonical label -> the column names tried, in order, when the user gives no mapping.
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "file": ("file", "path", "image", "filename", "img"),
    "identity": ("identity", "id", "person", "subject", "label"),
    "age": ("age",),
    "gender": ("gender", "sex"),
    "race": ("race", "ethnicity"),
}
LABEL_KEYS = ("age", "gender", "race")


@dataclass(frozen=True)
class LabeledImage:
    file: str                      # as written in the CSV (stored in records)
    path: str                      # resolved against the images folder
    labels: dict[str, Any] = field(default_factory=dict)   # age / gender / race, when present
    identity: str | None = None


def parse_columns(spec: str | None) -> dict[str, str]:
    """'file=img,race=ethnicity' -> {'file': 'img', 'race': 'ethnicity'}."""
    out: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        key, sep, col = part.partition("=")
        if not sep or key.strip() not in DEFAULT_COLUMNS:
            raise InputFormatError(f"bad column mapping {part!r}", item="--columns",
                                   hint=f"use KEY=COLUMN with KEY in {', '.join(DEFAULT_COLUMNS)}")
        out[key.strip()] = col.strip()
    return out


def resolve_columns(header: list[str], columns: Mapping[str, str] | None,
                    source: str) -> dict[str, str]:
    """Canonical label -> CSV column, from the user's mapping or the usual names."""
    lower = {h.lower().strip(): h for h in header}
    chosen: dict[str, str] = {}
    for key, names in DEFAULT_COLUMNS.items():
        if columns and key in columns:
            if columns[key] not in header:
                raise InputFormatError(f"no column {columns[key]!r} (mapped to {key}); found "
                                       f"{', '.join(header)}", item=source)
            chosen[key] = columns[key]
            continue
        hit = next((lower[n] for n in names if n in lower), None)
        if hit:
            chosen[key] = hit
    if "file" not in chosen:
        raise InputFormatError(f"no image column; found {', '.join(header) or 'no header'}",
                               item=source, hint="name it `file`, or map it: --columns file=COLUMN")
    return chosen


def read_labels(csv_path: str | Path, images: str | Path,
                columns: Mapping[str, str] | None = None) -> list[LabeledImage]:
    """Every row with a file name, in CSV order (duplicate files are kept once)."""
    csv_path, root = Path(csv_path), Path(images)
    header, rows, lines = read_csv_lines(csv_path)
    cols = resolve_columns(header, columns, str(csv_path))
    out, seen = [], set()
    for row, line in zip(rows, lines):
        name = (row.get(cols["file"]) or "").strip()
        if not name or name in seen:
            continue
        seen.add(name)
        labels = {k: row[cols[k]].strip() for k in LABEL_KEYS
                  if k in cols and (row.get(cols[k]) or "").strip()}
        check_age_label(labels.get("age"), line, csv_path)
        ident = (row.get(cols["identity"]) or "").strip() if "identity" in cols else ""
        p = Path(name)
        out.append(LabeledImage(file=name, path=str(p if p.is_absolute() else root / p),
                                labels=labels, identity=ident or None))
    if not out:
        raise InputFormatError("no rows with an image file name", item=str(csv_path))
    return out


def check_age_label(value: str | None, line: int, source: Path) -> None:
    """Refuse an impossible age label (-5, 300, "old") naming its line: taught to a student as a
    fact, or grouped in a fairness report, it would be silently wrong."""
    problem = None if value is None else age_label_problem(value)
    if problem:
        raise InputFormatError(f"line {line}: {problem}", item=str(source),
                               hint="fix or blank that cell; ages are years 0-120 or bins such as 20-29")
