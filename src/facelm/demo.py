"""`facelm demo`: the main job on bundled real photos, with no files of the user's needed.

The photos ship inside installed packages: scikit-image's `astronaut` (Eileen Collins, NASA,
public domain) and matplotlib's `grace_hopper` sample (US Navy, public domain).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def bundled_photos() -> dict[str, np.ndarray]:
    """The two real portraits, as RGB arrays."""
    import matplotlib
    from PIL import Image
    from skimage import data
    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return {"astronaut": data.astronaut(), "grace_hopper": np.asarray(Image.open(hopper).convert("RGB"))}


def variant(rgb: np.ndarray) -> np.ndarray:
    """The same photo mirrored, rotated 8 degrees and darkened: a harder same-person pair."""
    import cv2
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 8.0, 1.0)
    out = cv2.warpAffine(rgb[:, ::-1], m, (w, h), borderMode=cv2.BORDER_REFLECT)
    return np.clip(out.astype(np.float32) * 0.6, 0, 255).astype(np.uint8)


def run_demo() -> None:
    from .api import analyze, compare, describe
    from .cli import format_comparison, format_description
    from .explain import ASPECT_TITLES
    photos = bundled_photos()
    astro = analyze(photos["astronaut"], name="astronaut (scikit-image)")
    hopper = analyze(photos["grace_hopper"], name="grace_hopper (matplotlib)")
    astro2 = analyze(variant(photos["astronaut"]), name="astronaut, mirrored + rotated + darkened")
    print("== 1. Two different people ==")
    print(format_comparison(compare(astro, hopper)))
    print("\n== 2. The same person, in a mirrored, rotated and darker copy ==")
    print(format_comparison(compare(astro, astro2), "concise"))
    print("\n== 3. One face, eight aspects ==")
    print(format_description(describe(astro), ASPECT_TITLES))
    print("\nYour own photos: facelm verify A.jpg B.jpg   |   facelm describe IMG --aspect pose")
