"""Which face of a photo to analyse: `--face central|largest|N|all`.

Faces are numbered from 0, left to right by the centre of their box (top to bottom on a tie): the
order a reader names the people in a group photo, and one that does not change when a detector's
scores do (YuNet lists faces best-scored first, which a re-encoded JPEG can reorder).
"""
from __future__ import annotations

from typing import Union

from ..errors import InputFormatError, NoFaceError
from .detect import choose_face
from .types import Detection

# "central" is facelm's rule since the first release (area weighted by closeness to the centre,
# detect.choose_face), kept as the default; "largest" is the biggest box alone.
DEFAULT_FACE = "central"
FACE_WORDS = ("central", "largest", "all")
FaceChoice = Union[str, int]


def parse_face(value: object, *, item: str = "--face") -> FaceChoice:
    """'central', 'largest', 'all' or a face number >= 0, from a CLI, form or API value."""
    if value is None or value == "":
        return DEFAULT_FACE
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip().lower()
        if text in FACE_WORDS:
            return text
        try:
            number = int(text)
        except ValueError:
            number = -1
    if number < 0:  # JSON true/false land here too, as text: not face 1 and face 0
        raise InputFormatError(f"{value!r} is not a face choice", item=item, hint=(
            "use central, largest, all, or a face number counted from 0 left to right"))
    return number


def in_order(faces: list[Detection]) -> list[Detection]:
    """The documented numbering: left to right by box centre, then top to bottom."""
    return sorted(faces, key=lambda d: (d.box[0] + d.box[2] / 2, d.box[1] + d.box[3] / 2))


def pick(ordered: list[Detection], choice: FaceChoice, size: tuple[int, int], item: str) -> int:
    """The index (in `in_order` numbering) of the one face `choice` names."""
    if choice == "central":
        return ordered.index(choose_face(ordered, size))
    if choice == "largest":
        return max(range(len(ordered)), key=lambda i: ordered[i].box[2] * ordered[i].box[3])
    if isinstance(choice, int) and not isinstance(choice, bool):
        if choice >= len(ordered):
            n = len(ordered)
            raise NoFaceError(f"there is no face {choice}: {n} face{'s' if n > 1 else ''} found, "
                              f"numbered 0 to {n - 1} from left to right", item=item,
                              hint="use --face all to see every face with its box")
        return choice
    raise InputFormatError(f"{choice!r} does not choose one face", item=item,
                           hint="use central, largest or a face number; `all` returns a FaceSet")


def choice_warning(count: int, choice: FaceChoice, index: int, det: Detection) -> tuple[str, ...]:
    """One line when a photo held several faces and one was analysed (none otherwise)."""
    if count < 2:
        return ()
    which = f"face {index}" if isinstance(choice, int) else f"the {choice} one, face {index}"
    box = ", ".join(str(round(v)) for v in det.box)
    return (f"{count} faces found; analysed {which} (box [{box}], numbered from 0 left to right); "
            "use --face all or --face N to choose",)
