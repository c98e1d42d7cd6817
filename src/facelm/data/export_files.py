"""Where an export's files go, who owns them, and how its image paths are written.

Layout: every dataset exported to DEST lives in its own folder, DEST/NAME/, whatever the format, so
two datasets exported to one DEST never share a file. LLaMA-Factory's `dataset_info.json` is the
one shared file (it must sit in DEST, LLaMA-Factory's dataset_dir); it is merged, entry by entry.

Ownership: DEST/NAME/facelm_export.json (the marker) records which dataset (its resolved folder)
wrote the folder, and which files each format wrote. An export into a folder another dataset owns,
or holding files facelm did not write, is refused before anything is written, naming them.

Image paths (`--images`, LLaMA-Factory and ms-swift; the Hugging Face export embeds the photos):
`absolute`, `relative` (to DEST, which is LLaMA-Factory's media_dir by default and the folder to run
ms-swift from), or `copy` (the photos are copied to DEST/NAME/images/ under collision-safe names and
referred to relatively, so DEST can move to another machine as it is).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from ..errors import FaceLMError, InputFormatError
from ..schema_version import stamp

MARKER = "facelm_export.json"
IMAGE_MODES = ("absolute", "relative", "copy")
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_name(name: str) -> str:
    """The dataset name is a folder and a prefix of LLaMA-Factory entries: keep it plain."""
    if not _NAME_OK.match(name) or name in (".", ".."):
        raise InputFormatError(f"{name!r} is not a usable dataset name", item="--name",
                               hint="use letters, digits, '.', '_' and '-'")
    return name


def _refuse(folder: Path, owner: str, files: list[str]) -> FaceLMError:
    shown = ", ".join(files[:4]) + (f" and {len(files) - 4} more" if len(files) > 4 else "")
    return FaceLMError(f"holds {owner} ({shown}); facelm does not overwrite another dataset's "
                       "files", item=str(folder), hint="choose another --to or --name")


def claim(folder: Path, source: Path) -> dict[str, Any]:
    """The folder's marker when `source` may write into `folder` (empty if new); else refuses."""
    marker = folder / MARKER
    if marker.is_file():
        try:
            owned = json.loads(marker.read_text(encoding="utf-8"))
            owner = str(owned["dataset"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FaceLMError(f"{MARKER} is not readable ({exc})", item=str(folder),
                              hint="choose another --to or --name") from exc
        if owner != str(source):
            files = sorted({f for e in owned.get("exports", {}).values() for f in e["files"]})
            raise _refuse(folder, f"the export of another dataset, {owner}", files)
        return owned
    if folder.is_dir() and any(folder.iterdir()):
        files = sorted(p.name for p in folder.iterdir())
        raise _refuse(folder, "files that no facelm export wrote", files)
    return {}


def check_info_entries(info: dict[str, Any], wanted: dict[str, str], info_path: Path) -> None:
    """LLaMA-Factory entries of the same name that point at other files are another dataset's."""
    clash = [k for k, f in wanted.items() if k in info
             and not (isinstance(info[k], dict) and info[k].get("file_name") == f)]
    if clash:
        raise FaceLMError(f"already has entries {', '.join(clash)} for other files; facelm does "
                          "not overwrite another dataset's entries", item=str(info_path),
                          hint="choose another --to or --name")


def remove_previous(dest: Path, owned: dict[str, Any], fmt: str) -> None:
    """Delete what this dataset's earlier export in `fmt` wrote (e.g. Parquet shards of a larger
    run), so no stale file is loaded with the new ones. Copied photos are not listed: they are
    kept and reused."""
    for rel in owned.get("exports", {}).get(fmt, {}).get("files", []):
        if (dest / rel).is_file():
            (dest / rel).unlink()


def write_marker(folder: Path, source: Path, owned: dict[str, Any], fmt: str,
                 entry: dict[str, Any]) -> None:
    exports = dict(owned.get("exports", {}), **{fmt: entry})
    write_atomic(folder / MARKER, json.dumps(stamp(
        {"dataset": str(source), "name": folder.name, "exports": exports}), indent=2) + "\n")


@dataclass
class ImagePlacer:
    """Turns a photo's absolute path into the path an export writes (see the module docstring)."""

    mode: str
    dest: Path                                   # paths are relative to this folder
    folder: Path                                 # DEST/NAME: copies go to its images/
    copied: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in IMAGE_MODES:
            raise InputFormatError(f"unknown image mode {self.mode!r}", item="--images",
                                   hint=f"choose one of {', '.join(IMAGE_MODES)}")

    def place(self, path: str) -> str:
        if self.mode == "absolute":
            return path
        if self.mode == "relative":
            return Path(os.path.relpath(path, self.dest.resolve())).as_posix()
        if path not in self.copied:
            self.copied[path] = self._copy(Path(path))
        return self.copied[path]

    def _copy(self, src: Path) -> str:
        # Named by a hash of the source path: two photos called 0001.jpg in different folders get
        # different names, and exporting again reuses the copies instead of piling up new ones.
        digest = hashlib.sha1(str(src).encode("utf-8")).hexdigest()[:12]
        target = self.folder / "images" / f"{digest}_{src.name}"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(src, target.with_name(target.name + ".tmp"))
            except OSError as exc:
                raise InputFormatError(f"cannot copy the photo ({exc.strerror or exc})",
                                       item=str(src), hint="export where the dataset's photos "
                                       "are readable") from exc
            os.replace(target.with_name(target.name + ".tmp"), target)
        return target.relative_to(self.dest).as_posix()
