"""`--face central|largest|N|all` for `facelm analyze`, `describe` and `verify`.

Kept apart from cli.py so that building the parser imports nothing heavy: facelm.faces (OpenCV,
dlib) is imported only when a command runs.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Iterable

FACE_HELP = ("which face of a photo with several: central (large and near the centre), largest "
             "(biggest box), N (the N-th face, counted from 0 left to right) or all (every face) "
             "(default: %(default)s)")


def add_face_option(p: argparse.ArgumentParser) -> None:
    # Parsed by the command (face_choice), not by argparse: a bad value is then one line naming
    # --face, like every other facelm error, instead of argparse's usage block.
    p.add_argument("--face", default="central", metavar="central|largest|N|all", help=FACE_HELP)


def face_choice(args: argparse.Namespace, *, refuse: str | None = None) -> Any:
    """The parsed --face. `refuse` names an option this command cannot combine with a face
    choice (--model reads the whole photo; --pairs analyses the main face of each row)."""
    from .errors import InputFormatError
    from .faces.select import DEFAULT_FACE, parse_face
    choice = parse_face(args.face, item="--face")
    if refuse and choice != DEFAULT_FACE:
        raise InputFormatError(f"choosing a face ({args.face}) does not work with {refuse}",
                               item="--face", hint=f"leave out --face, or leave out {refuse}")
    return choice


def print_warnings(warnings: Iterable[str]) -> None:
    """Each warning of a result's JSON as one line on stderr (stdout keeps only the result)."""
    for text in warnings:
        print(f"facelm: warning: {text}", file=sys.stderr)


def face_note(fa: Any) -> str:
    """'(4 faces found, face 2 analysed)' for the text outputs."""
    n = fa.faces_found
    if n < 2 or fa.face_index is None:
        return f"({n} face(s) found)"
    return f"({n} faces found, face {fa.face_index} analysed)"


def format_face_set_description(d: Any, titles: dict[str, str]) -> str:
    """`describe --face all` as text: one block per face, numbered as in the JSON."""
    lines = [f"{d.faces.source} ({d.faces.faces_found} face(s) found, numbered from 0 left to right)"]
    for desc in d.descriptions:
        box = ", ".join(str(round(v)) for v in desc.analysis.detection.box)
        lines += ["", f"== Face {desc.analysis.face_index} (box [{box}]) =="]
        for aspect, text in desc.answers.items():
            lines += [f"{titles.get(aspect, aspect)}:", "  " + text]
    return "\n".join(lines)
