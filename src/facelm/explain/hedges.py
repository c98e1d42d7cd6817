"""Hedge wording: what weakens the evidence, said from the measured values that show it."""
from __future__ import annotations

import random

from ..faces.types import FaceAnalysis
from . import evidence as E
from .phrasing import deg, join_list, pick, px, share

_FLAG_TEMPLATES: dict[str, tuple[str, ...]] = {
    "low_resolution": ("the face is small ({io} between the eyes)",
                       "at only {io} between the eyes the face carries little detail",
                       "the face resolution is low ({io} between the eyes)"),
    "blurred": ("the face is blurred (sharpness {sh})",
                "the face is out of focus or motion-blurred (sharpness {sh})",
                "blur softens the face (sharpness {sh})"),
    # Flagged by a low mean or by clipping alone, so the wording fits either ("part of").
    "underexposed": ("the face is (partly) underexposed ({dark})", "shadows lose detail ({dark})"),
    "overexposed": ("the face is (partly) overexposed ({bright})",
                    "highlights are blown out ({bright})"),
    "low_contrast": ("the face has very low contrast ({ct})",
                     "contrast across the face is very flat ({ct})"),
    "strong_yaw": ("the head is turned {yaw} from frontal",
                   "the face is seen at a strong angle ({yaw} of yaw)"),
    "strong_pitch": ("the head is tilted {pitch} {updown}",
                     "the face is seen from well {view} ({pitch} of pitch)"),
    "rotated": ("the face lies turned {rot} in the image, as if the photo lost its EXIF orientation",
                "the face is on its side in the image (turned {rot}), as if its EXIF orientation "
                "was lost"),
    "pose_unreliable": ("the head-pose solver returned an implausible roll of {roll}, so the pose "
                        "angles are unreliable",
                        "the pose estimate is unreliable (an impossible roll of {roll})"),
}


def _exposure(level: float, clipped: float, low: bool) -> str:
    """State whichever measurement triggered the exposure flag (mean level, clipping or both)."""
    parts = []
    if (level < E.DARK_BRIGHTNESS) if low else (level > E.BRIGHT_BRIGHTNESS):
        parts.append(f"mean brightness {share(level)}")
    if clipped > E.CLIPPED_FRACTION:
        where = "crushed to black" if low else "clipped to white"
        parts.append(f"{share(clipped)} of face pixels {where}")
    return ", ".join(parts)


def flag_values(a: FaceAnalysis) -> dict[str, str]:
    q, p = a.quality, a.pose
    return {"dark": _exposure(q.brightness, q.underexposed, True),
            "bright": _exposure(q.brightness, q.overexposed, False),
            "io": px(q.interocular_px), "sh": f"{q.sharpness:.2f}", "ct": share(q.contrast),
            "yaw": deg(p.yaw), "pitch": deg(p.pitch), "roll": deg(p.roll),
            "rot": f"about {deg(p.roll)} {'clockwise' if p.roll > 0 else 'counter-clockwise'}",
            # pitch > 0 looks up, i.e. the camera sees the face from below (faces/types.py)
            "updown": "up" if p.pitch > 0 else "down", "view": "below" if p.pitch > 0 else "above"}


def flag_clauses(a: FaceAnalysis, flags: list[str], rng: random.Random) -> list[str]:
    values = flag_values(a)
    return [pick(rng, _FLAG_TEMPLATES[f], **values) for f in flags]


def attribute_hedge(a: FaceAnalysis, rng: random.Random, what: str) -> str:
    """'Because <problems>, treat <what> with caution.' or '' when nothing weakens the estimate."""
    flags = [f for f in E.quality_flags(a) if f in E.ATTRIBUTE_HEDGE_FLAGS]
    if not flags:
        return ""
    clauses = join_list(flag_clauses(a, flags[:2], rng))
    return pick(rng, ("Because {c}, treat {what} with caution.",
                      "Note that {c}, which makes {what} less reliable.",
                      "Caution: {c}, so {what} may be off."), c=clauses, what=what)


def yaw_phrase(yaw: float) -> str:
    """Direction of a turn, in the image's frame and the subject's (see faces/types.py)."""
    if abs(yaw) < 1:
        return "facing the camera"
    side = "right (the subject's left)" if yaw > 0 else "left (the subject's right)"
    return f"turned {deg(yaw)} towards the image's {side}"


def pitch_phrase(pitch: float) -> str:
    if abs(pitch) < 1:
        return "level (no pitch)"
    return f"looking {deg(pitch)} {'up' if pitch > 0 else 'down'}"


def roll_phrase(roll: float) -> str:
    if abs(roll) < 1:
        return "upright"
    return f"tilted {deg(roll)} {'clockwise' if roll > 0 else 'counter-clockwise'}"
