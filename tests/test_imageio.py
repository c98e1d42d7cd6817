"""load_rgb on every image flavour a user may hand us, and analyze still working on each.

All variants are generated in tmp_path from one real LFW photo (never copied into the repo).
Identity thresholds were measured, then given a margin: SFace cosine to the original's embedding is
~1.00 for CMYK/RGBA, ~0.98 for a 256-colour palette and 0.89-0.97 for greyscale over 12 LFW photos
(0.90 for this portrait); dlib's stays >= 0.99 throughout.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelm.csvio import read_csv
from facelm.errors import ImageTooLargeError, NoFaceError
from facelm.faces import analyze, choose_face, detect_faces
from facelm.faces.identity import cosine
from facelm.imageio import load_rgb

COLOUR_SFACE_MIN = 0.9   # variants that keep colour (measured >= 0.97)
GREY_SFACE_MIN = 0.8     # variants that drop colour (measured 0.89-0.97)
DLIB_MIN = 0.95          # measured >= 0.99


@pytest.fixture(scope="module")
def original(portrait_path):
    img = Image.open(portrait_path).convert("RGB")
    return {"img": img, "rgb": np.asarray(img), "grey": np.asarray(img.convert("L")),
            "result": analyze(portrait_path, fast=True)}


def _rgba_cutout(img: Image.Image) -> Image.Image:
    """The portrait with fully transparent 40 px side bands (a cut-out's background)."""
    rgba = np.asarray(img.convert("RGBA")).copy()
    rgba[:, :40, 3] = 0
    rgba[:, -40:, 3] = 0
    return Image.fromarray(rgba)


def _variant(kind: str, img: Image.Image, tmp: Path) -> Path:
    """Save the portrait as one image flavour; returns the file."""
    grey = img.convert("L")
    if kind == "cmyk":
        out, im, kw = tmp / "cmyk.jpg", img.convert("CMYK"), {"quality": 95}
    elif kind == "grey16":
        g16 = np.asarray(grey).astype(np.uint16) * 257
        out, im, kw = tmp / "grey16.png", Image.fromarray(g16), {}
    elif kind == "palette":
        out, im, kw = tmp / "palette.png", img.convert("P", palette=Image.Palette.ADAPTIVE), {}
    elif kind == "rgba":
        out, im, kw = tmp / "rgba.png", _rgba_cutout(img), {}
    elif kind == "la":
        out, im, kw = tmp / "la.png", _rgba_cutout(img).convert("LA"), {}
    elif kind == "grey":
        out, im, kw = tmp / "grey.png", grey, {}
    elif kind == "bilevel":
        out, im, kw = tmp / "bilevel.png", img.convert("1"), {}
    elif kind == "float255":  # what img.convert("F") gives: 0..255 floats
        out, im, kw = tmp / "float255.tif", grey.convert("F"), {}
    elif kind == "float01":
        out, im, kw = tmp / "float01.tif", Image.fromarray(np.asarray(grey, np.float32) / 255), {}
    else:
        raise ValueError(kind)
    im.save(out, **kw)
    return out


# kind -> (PIL mode the file reopens as, keeps colour)
VARIANTS = {"cmyk": ("CMYK", True), "grey16": ("I;16", False), "palette": ("P", True),
            "rgba": ("RGBA", True), "la": ("LA", False), "grey": ("L", False),
            "bilevel": ("1", False), "float255": ("F", False), "float01": ("F", False)}


@pytest.mark.parametrize("kind", sorted(VARIANTS))
def test_variant_loads_as_uint8_rgb(kind, original, tmp_path):
    path = _variant(kind, original["img"], tmp_path)
    with Image.open(path) as im:
        assert im.mode == VARIANTS[kind][0]  # the file really is that flavour
    rgb = load_rgb(path)
    assert rgb.shape == (250, 250, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    ref = original["rgb"] if VARIANTS[kind][1] else np.stack([original["grey"]] * 3, axis=-1)
    inner = (slice(None), slice(40, -40))  # outside the alpha bands of rgba / la
    diff = np.abs(rgb[inner].astype(int) - ref[inner].astype(int)).mean()
    if kind == "bilevel":  # dithered to black and white: only the overall brightness survives
        assert set(np.unique(rgb)) <= {0, 255} and abs(rgb.mean() - ref.mean()) < 3
        return
    limit = {"palette": 6, "cmyk": 3}.get(kind, 1.0)  # quantisation, JPEG; others are exact
    assert diff < limit, f"{kind}: mean abs diff {diff:.2f} to the original"
    if kind not in ("rgba", "la"):  # their alpha bands turn white
        assert abs(rgb.mean() - ref.mean()) < 1.5, "brightness changed"


@pytest.mark.parametrize("kind", ["rgba", "la"])
def test_transparent_background_becomes_white(kind, original, tmp_path):
    rgb = load_rgb(_variant(kind, original["img"], tmp_path))
    assert (rgb[:, :40] == 255).all() and (rgb[:, -40:] == 255).all()


def test_sixteen_bit_keeps_brightness_and_precision(original, tmp_path):
    grey8 = original["grey"].astype(np.float64)
    # Real 16-bit data: the 8-bit values plus sub-8-bit detail that must round, not truncate.
    fine = np.random.default_rng(0).integers(-100, 101, grey8.shape)
    g16 = np.clip(grey8 * 257 + fine, 0, 65535).astype(np.uint16)
    p = tmp_path / "grey16.png"
    Image.fromarray(g16).save(p)
    rgb = load_rgb(p)
    assert abs(rgb.mean() - grey8.mean()) < 0.5
    assert np.abs(rgb[:, :, 0].astype(int) - grey8.astype(int)).max() <= 1
    assert load_rgb(g16).tolist() == rgb.tolist()  # a uint16 array means the same as the file


@pytest.mark.parametrize("kind", sorted(k for k in VARIANTS if k != "bilevel"))
def test_analyze_finds_face_with_same_identity(kind, original, tmp_path):
    ref = original["result"]
    res = analyze(_variant(kind, original["img"], tmp_path), fast=True)
    assert res.faces_found == 1 and res.image_size == (250, 250)
    box, ref_box = np.array(res.detection.box), np.array(ref.detection.box)
    assert np.abs(box - ref_box).max() < 10, (box, ref_box)
    s = cosine(res.embeddings["sface"], ref.embeddings["sface"])
    d = cosine(res.embeddings["dlib"], ref.embeddings["dlib"])
    assert s > (COLOUR_SFACE_MIN if VARIANTS[kind][1] else GREY_SFACE_MIN), f"sface cosine {s:.3f}"
    assert d > DLIB_MIN, f"dlib cosine {d:.3f}"


def test_bilevel_loads_and_does_not_crash_analyze(original, tmp_path):
    # A dithered 1-bit photo is not expected to keep a detectable face; it must not crash.
    path = _variant("bilevel", original["img"], tmp_path)
    try:
        res = analyze(path, fast=True)
    except NoFaceError as exc:
        assert path.name in str(exc)
    else:
        assert res.image_size == (250, 250)


# ---------------------------------------------------------------------------------------------
# EXIF orientation

# Orientation tag -> the transpose that makes the stored pixels need it to be shown upright.
EXIF_CASES = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270,
              3: Image.Transpose.ROTATE_180}


@pytest.mark.parametrize("orientation", sorted(EXIF_CASES))
def test_exif_rotated_photo_loads_upright(orientation, original, tmp_path):
    stored = original["img"].transpose(EXIF_CASES[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / f"rotated{orientation}.jpg"
    stored.save(p, quality=95, exif=exif)
    assert np.asarray(Image.open(p)).shape[:2] == stored.size[::-1]

    rgb = load_rgb(p)
    assert rgb.shape == original["rgb"].shape
    assert np.abs(rgb.astype(int) - original["rgb"].astype(int)).mean() < 3
    # A PIL image opened by the caller is turned upright too.
    assert np.abs(load_rgb(Image.open(p)).astype(int) - rgb.astype(int)).max() == 0

    res = analyze(p, fast=True)
    assert abs(res.pose.roll) < 5, res.pose
    assert np.abs(np.array(res.detection.box) - original["result"].detection.box).max() < 10
    assert cosine(res.embeddings["sface"], original["result"].embeddings["sface"]) > 0.9


def test_broken_exif_does_not_lose_the_image(original, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 99  # not a valid orientation
    p = tmp_path / "bad_exif.jpg"
    original["img"].save(p, quality=95, exif=exif)
    assert load_rgb(p).shape == (250, 250, 3)


# ---------------------------------------------------------------------------------------------
# Huge JPEGs: decoded reduced.
#
# Contract: a JPEG above max_pixels is decoded at 1/2, 1/4 or 1/8 scale (the smallest that fits);
# load_rgb returns that reduced image, and analyze reports image_size and every coordinate
# (boxes, landmarks) in the reduced image's frame, not the file's.

FACE_SIDE, FACE_AT = 1000, (4000, 3000)


def _face_on_canvas(img: Image.Image, size: tuple[int, int], mode: str) -> Image.Image:
    canvas = Image.new(mode, size, 110)
    face = img.convert(mode).resize((FACE_SIDE, FACE_SIDE), Image.Resampling.LANCZOS)
    canvas.paste(face, FACE_AT)
    return canvas


def _expected_box(original, scale: float) -> np.ndarray:
    x, y, w, h = original["result"].detection.box
    k = FACE_SIDE / 250
    return np.array([FACE_AT[0] + x * k, FACE_AT[1] + y * k, w * k, h * k]) / scale


def test_huge_jpeg_is_decoded_reduced_and_face_found(original, tmp_path):
    p = tmp_path / "huge_9000x7000.jpg"
    _face_on_canvas(original["img"], (9000, 7000), "RGB").save(p, quality=85)
    assert p.stat().st_size < 5_000_000
    rgb = load_rgb(p)  # 63 MP > 50 MP: halved while decoding
    assert rgb.shape == (3500, 4500, 3)
    res = analyze(p, fast=True)
    assert res.image_size == (4500, 3500)
    box = np.array(res.detection.box)
    assert np.abs(box - _expected_box(original, 2)).max() < 0.1 * FACE_SIDE / 2, box
    assert cosine(res.embeddings["sface"], original["result"].embeddings["sface"]) > 0.8


def test_jpeg_beyond_pil_bomb_limit_is_still_reduced(original, tmp_path):
    # 180 MP is above PIL's own hard limit (2 * Image.MAX_IMAGE_PIXELS ~ 179 MP), where
    # Image.open refuses from the header alone; load_rgb must still reduce it. Greyscale keeps
    # the test light; max_pixels=5 MP forces the 1/8 scale.
    p = tmp_path / "huge_16384x11000.jpg"
    _face_on_canvas(original["img"], (16384, 11000), "L").save(p, quality=80)
    assert 16384 * 11000 > 2 * Image.MAX_IMAGE_PIXELS
    rgb = load_rgb(p, max_pixels=5_000_000)
    assert rgb.shape == (1375, 2048, 3)
    res = analyze(p, fast=True, max_pixels=5_000_000)
    assert res.image_size == (2048, 1375)
    box = np.array(res.detection.box)
    assert np.abs(box - _expected_box(original, 8)).max() < 0.1 * FACE_SIDE / 8, box


def test_jpeg_reduction_picks_smallest_scale_that_fits(original, tmp_path):
    p = tmp_path / "photo.jpg"
    original["img"].resize((1000, 1000)).save(p, quality=90)
    assert load_rgb(p, max_pixels=1_000_000).shape == (1000, 1000, 3)
    assert load_rgb(p, max_pixels=999_999).shape == (500, 500, 3)
    assert load_rgb(p, max_pixels=250_000).shape == (500, 500, 3)
    assert load_rgb(p, max_pixels=249_999).shape == (250, 250, 3)
    assert load_rgb(p, max_pixels=15_625).shape == (125, 125, 3)
    with pytest.raises(ImageTooLargeError, match=r"1000x1000 \(1 MP\), above the 0.0156 MP limit"):
        load_rgb(p, max_pixels=15_624)  # even 1/8 does not fit


# ---------------------------------------------------------------------------------------------
# Group photos: several faces, the main one chosen


def _group_photos(faceapi_dir: Path) -> list[Path]:
    rows = [r for r in read_csv(faceapi_dir / "labels.csv")[1] if r["kind"] == "group_photo"]
    assert rows, "labels.csv lists no group photos"
    return [faceapi_dir / r["file"] for r in rows]


def test_group_photo_picks_large_central_face(faceapi_dir):
    for path in _group_photos(faceapi_dir):
        rgb = load_rgb(path)
        faces = detect_faces(rgb)
        res = analyze(path, fast=True)
        assert res.faces_found == len(faces) > 1, path.name
        h, w = rgb.shape[:2]
        assert res.detection.box == pytest.approx(choose_face(faces, (w, h)).box, abs=1e-3)

        def area(box):
            return box[2] * box[3]

        def off_centre(box):
            return math.hypot(box[0] + box[2] / 2 - w / 2, box[1] + box[3] / 2 - h / 2)

        chosen = res.detection.box
        # No other face is both larger and closer to the centre than the chosen one.
        for d in faces:
            assert not (area(d.box) > area(chosen) and off_centre(d.box) < off_centre(chosen)), \
                (path.name, d.box, chosen)
        # And the chosen face is not a small one: at least 60% of the largest.
        assert area(chosen) >= 0.6 * max(area(d.box) for d in faces), path.name


# ---------------------------------------------------------------------------------------------
# Other source types: numpy arrays, bytes, file objects, PIL images


def test_numpy_inputs_convert_by_dtype_and_shape(original):
    rgb = original["rgb"]
    same = {
        "uint16": rgb.astype(np.uint16) * 257,
        "float01": rgb.astype(np.float32) / 255,
        "float255": rgb.astype(np.float64),
        "int64": rgb.astype(np.int64),
        "opaque rgba": np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]),
        "non-contiguous": np.ascontiguousarray(rgb[:, ::-1])[:, ::-1],
    }
    for name, arr in same.items():
        out = load_rgb(arr)
        assert out.dtype == np.uint8 and out.shape == rgb.shape, name
        assert np.abs(out.astype(int) - rgb).max() <= 1, name
    # Values already in 0..255 keep their brightness and contrast (not stretched to 0..255).
    dim = rgb // 2 + 40
    for arr in (dim.astype(np.int64), dim.astype(np.float32), dim.astype(np.uint16) * 257):
        assert (load_rgb(arr) == dim).all(), arr.dtype
    grey = original["grey"]
    for arr in (grey, grey[:, :, None], grey.astype(bool)):
        out = load_rgb(arr)
        assert out.shape == (250, 250, 3) and (out[:, :, 0] == out[:, :, 2]).all()
    assert (load_rgb(grey[:, :, None]) == np.dstack([grey] * 3)).all()
    clear = np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])
    assert (load_rgb(clear) == 255).all()  # fully transparent -> white background
    odd = np.linspace(-3.0, 7.0, 250 * 250).reshape(250, 250)  # no known scale: stretched
    assert load_rgb(odd).min() == 0 and load_rgb(odd).max() == 255


def test_analyze_numpy_variants_keep_identity(original):
    ref = original["result"].embeddings["sface"]
    rgb = original["rgb"]
    for arr in (rgb.astype(np.uint16) * 257, rgb.astype(np.float32) / 255,
                np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])):
        res = analyze(arr, fast=True)
        assert cosine(res.embeddings["sface"], ref) > 0.99, arr.dtype
    res = analyze(original["grey"][:, :, None], fast=True)
    assert cosine(res.embeddings["sface"], ref) > GREY_SFACE_MIN


def test_bytes_file_object_and_pil_inputs_match_path(portrait_path):
    expected = load_rgb(portrait_path)
    data = portrait_path.read_bytes()
    with open(portrait_path, "rb") as f:
        from_file = load_rgb(f)
    for out in (load_rgb(data), load_rgb(bytearray(data)), load_rgb(io.BytesIO(data)), from_file,
                load_rgb(Image.open(portrait_path))):
        assert (out == expected).all()
