"""Broken, empty, oversized and face-less inputs: each gives a clear facelm error, never a crash.

Every broken file is generated in tmp_path from a real photo (never copied into the repo). Each
error must name the item and say what to do (FaceLMError.hint), both through load_rgb and analyze.
"""
from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelm.errors import ImageLoadError, ImageTooLargeError, NoFaceError
from facelm.faces import analyze
from facelm.imageio import load_rgb


# ---------------------------------------------------------------------------------------------
# Broken files


def _empty(tmp: Path, portrait: Path) -> Path:
    p = tmp / "empty.jpg"
    p.write_bytes(b"")
    return p


def _truncated(tmp: Path, portrait: Path) -> Path:
    data = portrait.read_bytes()
    p = tmp / "truncated.jpg"
    p.write_bytes(data[: int(len(data) * 0.4)])
    return p


def _text(tmp: Path, portrait: Path) -> Path:
    p = tmp / "notes.jpg"
    p.write_text("These are my holiday notes, not a photo.\n" * 20)
    return p


def _missing(tmp: Path, portrait: Path) -> Path:
    return tmp / "does_not_exist.jpg"


def _folder(tmp: Path, portrait: Path) -> Path:
    p = tmp / "photos.jpg"  # a folder whose name looks like an image
    p.mkdir()
    return p


BROKEN = {"empty": _empty, "truncated": _truncated, "text": _text, "missing": _missing,
          "folder": _folder}


def _assert_names_item_and_hint(err: Exception, item: str) -> None:
    text = str(err)
    assert item in text, f"error does not name {item!r}: {text}"
    assert err.hint, f"error gives no hint: {text}"
    assert err.hint in text, text


@pytest.mark.parametrize("kind", sorted(BROKEN))
@pytest.mark.parametrize("entry", ["load_rgb", "analyze"])
def test_broken_file_raises_image_load_error(kind, entry, tmp_path, portrait_path):
    path = BROKEN[kind](tmp_path, portrait_path)
    call = load_rgb if entry == "load_rgb" else analyze
    with pytest.raises(ImageLoadError) as info:
        call(path)
    _assert_names_item_and_hint(info.value, path.name)
    # A str path behaves like a Path.
    with pytest.raises(ImageLoadError):
        call(str(path))


@pytest.mark.parametrize("kind", ["empty", "truncated", "text"])
def test_broken_bytes_raise_image_load_error(kind, tmp_path, portrait_path):
    data = BROKEN[kind](tmp_path, portrait_path).read_bytes()
    with pytest.raises(ImageLoadError) as info:
        analyze(data)
    _assert_names_item_and_hint(info.value, f"<{len(data)} bytes>")


def test_messages_say_what_went_wrong(tmp_path, portrait_path):
    expected = {"empty": "empty", "truncated": "truncated", "text": "not an image",
                "missing": "not found", "folder": "folder"}
    for kind, words in expected.items():
        (tmp_path / kind).mkdir()
        with pytest.raises(ImageLoadError, match=words):
            load_rgb(BROKEN[kind](tmp_path / kind, portrait_path))


def test_unreadable_file_raises_image_load_error(tmp_path, portrait_path, monkeypatch):
    p = tmp_path / "locked.jpg"
    p.write_bytes(portrait_path.read_bytes())

    def denied(self):  # chmod 000 does not stop root, so simulate what the OS would raise
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(ImageLoadError, match="Permission denied") as info:
        load_rgb(p)
    _assert_names_item_and_hint(info.value, p.name)


def test_unsupported_source_type_raises_image_load_error():
    with pytest.raises(ImageLoadError, match="cannot load an image from a list"):
        load_rgb([1, 2, 3])


# ---------------------------------------------------------------------------------------------
# Tiny and huge images


def test_one_pixel_image_has_no_face(tmp_path):
    p = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (128, 90, 60)).save(p)
    assert load_rgb(p).shape == (1, 1, 3)  # loading is fine: it is a valid image
    with pytest.raises(NoFaceError) as info:
        analyze(p)
    assert p.name in str(info.value)
    assert "1x1" in str(info.value) and info.value.hint


def _solid_png(path: Path, width: int, height: int, rgb=(200, 150, 100)) -> None:
    """A valid 1-bit palette PNG of one colour, written row by row: tiny on disk and in memory."""
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed palette indices (all 0)
    comp = zlib.compressobj(9)
    idat = bytearray()
    for start in range(0, height, 1000):
        idat += comp.compress(row * min(1000, height - start))
    idat += comp.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 3, 0, 0, 0))
                     + chunk(b"PLTE", bytes(rgb)) + chunk(b"IDAT", bytes(idat))
                     + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("huge") / "huge_20000x20000.png"
    _solid_png(p, 20_000, 20_000)
    return p


def test_huge_png_is_small_on_disk_and_valid(huge_png):
    assert huge_png.stat().st_size < 1_000_000
    from PIL import PngImagePlugin

    # Image.open refuses it (PIL's own bomb limit); the PNG plugin reads the header only.
    with huge_png.open("rb") as f:
        im = PngImagePlugin.PngImageFile(f)
        assert im.size == (20_000, 20_000) and im.mode == "P"
        assert im.getpalette()[:3] == [200, 150, 100]


def test_huge_png_refused_without_decoding(huge_png):
    # Decoding 400 MP would take >= 400 MB (1.2 GB as RGB); measure peak RSS in a fresh process,
    # where the loader is the only thing that can raise it.
    script = textwrap.dedent(f"""
        import resource, time
        from facelm.errors import ImageTooLargeError
        from facelm.imageio import load_rgb
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        try:
            load_rgb({str(huge_png)!r})
            print("LOADED")
        except ImageTooLargeError as e:
            print("REFUSED", e)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print("GROWTH_KB", after - before, "SECONDS", time.perf_counter() - t)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert "REFUSED" in out, out
    assert "20000x20000" in out and huge_png.name in out and "max_pixels" in out, out
    fields = out.split()
    growth_mb = int(fields[fields.index("GROWTH_KB") + 1]) / 1024
    seconds = float(fields[fields.index("SECONDS") + 1])
    assert growth_mb < 300, out
    assert seconds < 2, out


def test_huge_png_refused_by_analyze(huge_png):
    with pytest.raises(ImageTooLargeError) as info:
        analyze(huge_png)
    _assert_names_item_and_hint(info.value, huge_png.name)
    assert "400 MP" in str(info.value) and "50 MP" in str(info.value)


def test_max_pixels_applies_to_non_jpeg(tmp_path):
    p = tmp_path / "big.png"
    Image.new("RGB", (1200, 1000), (10, 20, 30)).save(p)
    assert load_rgb(p, max_pixels=1_200_000).shape == (1000, 1200, 3)
    with pytest.raises(ImageTooLargeError, match="1200x1000"):
        load_rgb(p, max_pixels=1_199_999)
    with pytest.raises(ImageTooLargeError):
        analyze(p, max_pixels=1_000_000)


# ---------------------------------------------------------------------------------------------
# No face


def _scene(name: str) -> np.ndarray:
    import skimage.data

    if name == "noise":
        return np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    return getattr(skimage.data, name)()


# chelsea is a cat: an animal face must not count as a face.
@pytest.mark.parametrize("scene", ["rocket", "chelsea", "noise"])
def test_photo_without_face_raises_no_face_error(scene, tmp_path):
    rgb = _scene(scene)
    p = tmp_path / f"{scene}.jpg"
    Image.fromarray(rgb).save(p, quality=92)
    with pytest.raises(NoFaceError) as info:
        analyze(p, fast=True)
    _assert_names_item_and_hint(info.value, p.name)
    with pytest.raises(NoFaceError) as info:
        analyze(rgb, fast=True, name=scene)
    assert str(info.value).startswith(f"{scene}:")


# Regression: the padded retry pass once accepted YuNet false positives (score 0.62-0.67) on these.
@pytest.mark.parametrize("scene", ["coffee", "hubble_deep_field"])
def test_faceless_photo_false_positive_in_retry_pass(scene, tmp_path):
    p = tmp_path / f"{scene}.jpg"
    Image.fromarray(_scene(scene)).save(p, quality=92)
    with pytest.raises(NoFaceError):
        analyze(p, fast=True)


# ---------------------------------------------------------------------------------------------
# Numpy arrays of the wrong shape or type


@pytest.mark.parametrize("shape", [(3,), (50, 50, 2), (50, 50, 5), (2, 50, 50, 3), (0, 0, 3),
                                   (0, 10)])
def test_array_of_wrong_shape_raises_image_load_error(shape):
    arr = np.zeros(shape, dtype=np.uint8)
    with pytest.raises(ImageLoadError) as info:
        load_rgb(arr)
    assert "x".join(map(str, shape)) in str(info.value) and info.value.hint
    with pytest.raises(ImageLoadError):
        analyze(arr)


@pytest.mark.parametrize("dtype", [object, np.complex64, "U1"])
def test_array_of_non_numeric_type_raises_image_load_error(dtype):
    with pytest.raises(ImageLoadError, match="not numeric"):
        load_rgb(np.zeros((20, 20, 3), dtype=dtype))


def test_a_batch_gets_each_photos_failure_as_a_value_that_survives_a_worker_process(tmp_path, monkeypatch):
    """batch, data jobs and eval share analyse_or_error: the failure comes back (through pickling,
    as from a worker process) with its message and the original error's kind; nothing is raised."""
    import pickle
    from facelm.errors import ItemError
    from facelm.faces import analysis
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    err = pickle.loads(pickle.dumps(analysis.analyse_or_error(str(empty))))
    assert isinstance(err, ItemError) and err.kind == "ImageLoadError" and "empty.jpg" in str(err)

    def boom(*a, **k):
        raise RuntimeError("decoder crashed")
    monkeypatch.setattr(analysis, "analyze", boom)
    err = analysis.analyse_or_error(str(empty))
    assert isinstance(err, ItemError) and str(err) == f"{empty}: unexpected error: RuntimeError: decoder crashed"
