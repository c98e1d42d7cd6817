"""Analyses as data: one Parquet row per photo, written resumably, read by pandas, `datasets`, DuckDB.

Layout. `OUT.parquet` is a folder of part files `part-00000.parquet`, `part-00001.parquet`, ...
(the usual "Parquet dataset" layout). Each part is written whole to a hidden `.part-NNNNN.parquet.tmp`,
fsync'd and renamed, so a part is either complete or absent: after `kill -9` the finished parts stay,
and the rows of the unfinished one (at most `part_rows` photos per run) are analysed again by the next
run. A part never holds a photo that an earlier part holds (the run that writes it holds the folder's
lock, facelm.outlock, and skipped those photos), so the union of the parts has one row per photo.
Readers skip names starting with "." or "_" (pyarrow, pandas, DuckDB's `OUT.parquet/*.parquet`), so
the lock and a killed run's temporary file are never read as data:

    pandas.read_parquet("OUT.parquet")
    datasets.load_dataset("parquet", data_files="OUT.parquet/*.parquet")
    duckdb.sql("SELECT * FROM 'OUT.parquet/*.parquet'")

Keys. `path` is the photo's absolute, normalised path (os.path.abspath): the key a resume skips by,
and the key `verify --pairs --embeddings` looks photos up by, whatever the working folder.
Embeddings are float32 (the analysis' float64 unit vectors, rounded; cosines move by < 1e-6).
A photo that could not be analysed is a row with `error` (and `error_kind`, the exception's class)
and nulls elsewhere; `faces_found` is 0 for "no face found".
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .errors import InputFormatError

DIM = 128
MARK = b"facelm.table"           # schema metadata key: this part was written by facelm
VERSION = b"analysis/1"
PART = re.compile(r"part-(\d{5,})\.parquet")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif",
                            ".ppm", ".pgm", ".heic", ".heif"})
PART_ROWS = 256                  # photos per part: what a kill -9 can cost at most


def schema(fast: bool) -> Any:
    """The row schema; `fast` (identity-only) is recorded in the metadata so a resume keeps it."""
    import pyarrow as pa
    f32 = pa.float32()
    fixed = lambda n: pa.list_(f32, n)   # noqa: E731 - fixed_size_list<float32>[n]
    return pa.schema([
        ("path", pa.string()), ("faces_found", pa.int32()), ("face_index", pa.int32()),
        ("box", fixed(4)), ("det_score", f32), ("landmarks5", pa.list_(fixed(2), 5)),
        ("pose", pa.struct([("yaw", f32), ("pitch", f32), ("roll", f32),
                            ("image_rotation", pa.int16())])),
        ("quality", pa.struct([(k, f32) for k in ("brightness", "contrast", "sharpness",
                                                  "face_size_px", "interocular_px", "overexposed",
                                                  "underexposed")])),
        ("attributes", pa.struct([("age", f32), ("gender", pa.string()),
                                  ("gender_confidence", f32), ("race", pa.string()),
                                  ("race_confidence", f32), ("expression", pa.string())])),
        ("sface", fixed(DIM)), ("dlib", fixed(DIM)),
        ("models", pa.string()), ("error", pa.string()), ("error_kind", pa.string()),
    ], metadata={MARK: VERSION, b"facelm.fast": b"1" if fast else b"0"})


def analysis_row(path: str, result: Any) -> dict[str, Any]:
    """One row from `analyse_or_error`'s result: a FaceAnalysis or an ItemError."""
    from .errors import ItemError
    if isinstance(result, ItemError):
        return {"path": path, "faces_found": 0 if result.kind == "NoFaceError" else None,
                "error": str(result), "error_kind": result.kind}
    det, a = result.detection, result.attributes
    return {
        "path": path, "faces_found": result.faces_found, "face_index": result.face_index,
        "box": list(det.box), "det_score": det.score, "landmarks5": [list(p) for p in det.landmarks5],
        "pose": dataclasses.asdict(result.pose), "quality": dataclasses.asdict(result.quality),
        "attributes": None if a is None else {
            "age": a.age, "gender": a.gender, "gender_confidence": a.gender_confidence,
            "race": a.race, "race_confidence": a.race_confidence, "expression": a.expression},
        "sface": list(result.embeddings["sface"]), "dlib": list(result.embeddings["dlib"]),
        "models": json.dumps(result.models, sort_keys=True),
    }


def analyse_batch(paths: list[str], fast: bool) -> list[dict[str, Any]]:
    """The per-batch function of the table, the same for every engine (facelm.engines): photos
    in, one row each out. A bad photo is a row with `error`, never an exception that would lose
    the batch."""
    from .faces.analysis import analyse_or_error
    rows = []
    for p in paths:
        _test_crash(p)
        rows.append(analysis_row(p, analyse_or_error(p, fast=fast)))
    return rows


def _test_crash(path: str) -> None:
    """Tests only: FACELM_TEST_EXIT_ON="PHOTO_PATH|MARKER" makes the worker that reaches PHOTO_PATH
    die at once (os._exit), the first time only (MARKER is created), as a killed worker would."""
    spec = os.environ.get("FACELM_TEST_EXIT_ON")
    if spec and path == spec.split("|")[0]:
        marker = Path(spec.split("|")[1])
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:
            return
        os._exit(3)


# --- the folder of parts ------------------------------------------------------------------------

def _part_files(out: Path) -> list[Path]:
    return sorted((p for p in out.iterdir() if PART.fullmatch(p.name)),
                  key=lambda p: int(PART.fullmatch(p.name).group(1)))


def check_table(out: Path, fast: bool | None = None) -> list[Path]:
    """The part files of `out` (none when it does not exist), after checking that it is a facelm
    table: a file, a folder with other files, or parts without facelm's mark are refused unchanged.
    With `fast` given, parts written in the other mode are refused too (no mixed tables)."""
    import pyarrow.parquet as pq
    out = Path(out)
    if not out.exists():
        return []
    hint = "choose a new --out: facelm only resumes its own table folder"
    if not out.is_dir():
        raise InputFormatError("is a file, not a facelm table folder; it was left unchanged",
                               item=str(out), hint=hint)
    foreign = [p.name for p in out.iterdir() if not p.name.startswith(".") and not PART.fullmatch(p.name)]
    if foreign:
        raise InputFormatError(f"holds files that facelm did not write ({', '.join(sorted(foreign)[:3])}); "
                               "it was left unchanged", item=str(out), hint=hint)
    parts = _part_files(out)
    for p in parts:
        try:
            meta = pq.read_schema(p).metadata or {}
        except Exception as exc:  # noqa: BLE001 - any unreadable part means not ours / damaged
            raise InputFormatError(f"{p.name} is not a readable Parquet file ({exc})",
                                   item=str(out), hint=hint) from None
        if meta.get(MARK) != VERSION:
            raise InputFormatError(f"{p.name} is not a facelm analysis table part; it was left "
                                   "unchanged", item=str(out), hint=hint)
        if fast is not None and meta.get(b"facelm.fast") != (b"1" if fast else b"0"):
            kinds = ("a full analysis", "an identity-only (--fast) analysis")
            was, now = kinds[meta.get(b"facelm.fast") == b"1"], kinds[bool(fast)]
            raise InputFormatError(f"was written as {was}; this run is {now}", item=str(out),
                                   hint="run with the same --fast setting, or use a new --out")
    return parts


def clean_temporaries(out: Path) -> None:
    """Remove a killed run's unfinished part (call with the lock held: no writer is running)."""
    for p in out.glob(".part-*.tmp"):
        p.unlink(missing_ok=True)


def done_paths(parts: Iterable[Path]) -> set[str]:
    """Every photo already in the table (reads the `path` column only)."""
    import pyarrow.parquet as pq
    done: set[str] = set()
    for p in parts:
        done.update(pq.read_table(p, columns=["path"]).column("path").to_pylist())
    return done


class PartWriter:
    """Writes rows to new part files of `out`, numbered after the existing ones, each atomically."""

    def __init__(self, out: Path, fast: bool, first: int):
        self.out, self.schema, self.next = Path(out), schema(fast), first

    def write(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq
        if not rows:
            return
        name = f"part-{self.next:05d}.parquet"
        tmp = self.out / f".{name}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            pq.write_table(pa.Table.from_pylist(rows, schema=self.schema), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.out / name)
        _fsync_dir(self.out)   # the rename itself survives a power cut
        self.next += 1


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_table(out: Path, columns: list[str] | None = None) -> Any:
    """The union of the parts as one pyarrow Table, sorted by path."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    parts = check_table(out)
    if not parts:
        raise InputFormatError("no such analysis table (or it is empty)", item=str(out),
                               hint="make one with: facelm analyze --images DIR --out X.parquet")
    table = pa.concat_tables([pq.read_table(p, columns=columns) for p in parts])
    return table.sort_by("path")


def read_embeddings(out: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(paths, sface (N,128) float32, dlib (N,128) float32, ok (N,) bool), sorted by path.
    Rows with an error have zero vectors and ok False."""
    t = read_table(out, ["path", "sface", "dlib", "error"])
    ok = np.asarray(t.column("error").is_null().to_numpy(zero_copy_only=False), dtype=bool)
    return (t.column("path").to_pylist(), _matrix(t.column("sface")), _matrix(t.column("dlib")), ok)


def _matrix(col: Any) -> np.ndarray:
    """A fixed_size_list<float32>[128] column as an (N, 128) array, zeros where null."""
    import pyarrow as pa
    arr = col.combine_chunks() if col.num_chunks else pa.array([], col.type)
    flat = arr.fill_null([0.0] * DIM) if arr.null_count else arr
    return np.asarray(flat.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, DIM)


def lookup_embeddings(out: Path, photos: list[str]) -> list[tuple[str, Any]]:
    """(photo, {"sface": vector, "dlib": vector}) for each photo, found in the table by its
    absolute path; an ItemError for a photo the table lacks or could not analyse."""
    from .errors import ItemError
    t = read_table(out, ["path", "sface", "dlib", "error", "error_kind"])
    paths, sface, dlib = t.column("path").to_pylist(), _matrix(t.column("sface")), _matrix(t.column("dlib"))
    errors, kinds = t.column("error").to_pylist(), t.column("error_kind").to_pylist()
    row = {p: i for i, p in enumerate(paths)}
    found: list[tuple[str, Any]] = []
    for photo in photos:
        i = row.get(os.path.abspath(photo))
        if i is None:
            found.append((photo, ItemError(
                f"{photo}: not in the embeddings table {out} (add it with: facelm analyze "
                f"--images DIR_OR_CSV --out {out})", "InputFormatError")))
        elif errors[i] is not None:
            found.append((photo, ItemError(errors[i], kinds[i] or "FaceLMError")))
        else:
            found.append((photo, {"sface": sface[i], "dlib": dlib[i]}))
    return found


# --- inputs ---------------------------------------------------------------------------------------

def list_images(images: Path) -> list[str]:
    """The photos of a folder (every image file, recursively, sorted) or of a CSV (its `file`
    column, relative to the CSV's folder), as absolute normalised paths."""
    images = Path(images)
    if images.is_dir():
        found = (p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        return sorted(os.path.abspath(p) for p in found)
    if images.suffix.lower() != ".csv":
        raise InputFormatError("is neither a folder nor a .csv file", item=str(images),
                               hint="--images takes a folder of photos or a CSV with a `file` column")
    from .csvio import read_csv_lines
    _, rows, lines = read_csv_lines(images, ("file",))
    out = []
    for row, line in zip(rows, lines):
        if not (row.get("file") or "").strip():
            raise InputFormatError(f"line {line}: empty `file`", item=str(images),
                                   hint="give every row a photo path")
        out.append(os.path.abspath(images.parent / row["file"]))
    return out


def analyze_to_parquet(inputs: list[str] | Path, out: Path, *, workers: int = 2, fast: bool = True,
                       engine: str = "local", address: str | None = None, progress: bool = True,
                       part_rows: int = PART_ROWS) -> dict[str, int]:
    """Analyse every photo (a folder, a CSV, or a list of paths) into the table `out`, skipping
    photos already in it. Returns {total, skipped, done, failed}."""
    from .engines import check_engine, run_engine
    from .outlock import output_lock
    check_engine(engine, address)
    paths = list(dict.fromkeys(os.path.abspath(p) for p in (
        list_images(inputs) if isinstance(inputs, Path) else inputs)))
    out = Path(out)
    check_table(out, fast)  # before the lock creates the folder: a foreign file stays untouched
    with output_lock(out, folder=True):
        parts = check_table(out, fast)
        clean_temporaries(out)
        done = done_paths(parts)
        todo = [p for p in paths if p not in done]
        first = int(PART.fullmatch(parts[-1].name).group(1)) + 1 if parts else 0
        writer = PartWriter(out, fast, first)
        written, failed = run_engine(todo, writer.write, engine=engine, address=address,
                                     workers=workers, fast=fast, progress=progress,
                                     part_rows=part_rows)
    return {"total": len(paths), "skipped": len(paths) - len(todo), "done": written, "failed": failed}
