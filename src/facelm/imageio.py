"""Robust image loading: every file a user may hand us becomes an 8-bit RGB array or a clear error.

Handles EXIF orientation, CMYK, 16-bit and float greyscale, palette, alpha and bilevel images, and
refuses decompression bombs before decoding them (JPEGs are instead reduced while decoding, which
costs no extra memory).

Contract for oversized JPEGs: the array returned is the *reduced* image (scaled by 1/2, 1/4 or 1/8,
the smallest factor that fits max_pixels), and every coordinate computed from it (face boxes,
landmarks) is in that reduced frame; FaceAnalysis.image_size reports the reduced size.
"""
from __future__ import annotations

import io
import math
import os
import struct
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import FaceLMError, ImageLoadError, ImageTooLargeError, InputFormatError

# Above this many pixels an image is refused (or, for JPEG, decoded at a reduced scale).
# 50 MP covers every camera photo users hand to a face tool; 20,000² (400 MP) would need 1.2 GB.
DEFAULT_MAX_PIXELS = 50_000_000
# Replaces the default limit process-wide: the CLI's --max-pixels sets it for the command it runs,
# and worker processes inherit it (an argument would have to be threaded through every layer).
MAX_PIXELS_ENV = "FACELM_MAX_PIXELS"
# The reduction factors libjpeg applies while decoding (DCT scaling), at no extra memory cost.
JPEG_DRAFT_SCALES = (2, 4, 8)

ImageInput = Union[str, os.PathLike, bytes, np.ndarray, Image.Image]

_HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_REREAD_HINT = "re-export or re-download the file"


def describe_source(source: ImageInput) -> str:
    """A short name for an image source, used in results and error messages."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {'x'.join(map(str, source.shape))}>"
    if isinstance(source, Image.Image):
        return f"<PIL {source.mode} {source.size[0]}x{source.size[1]}>"
    return f"<{type(source).__name__}>"


def load_rgb(source: ImageInput, *, max_pixels: int = DEFAULT_MAX_PIXELS,
             name: str | None = None) -> np.ndarray:
    """Load any supported image source as a contiguous (H, W, 3) uint8 RGB array.

    `name` replaces the default description of the source in error messages. Raises
    ImageLoadError (missing, empty, truncated, undecodable) or ImageTooLargeError.
    """
    name = name or describe_source(source)
    if max_pixels == DEFAULT_MAX_PIXELS:   # the default, not a limit the caller chose
        max_pixels = configured_max_pixels()
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, name)
    if isinstance(source, Image.Image):
        return _pil_to_rgb(_upright(source), name)
    img = _decode(_read_bytes(source, name), name, max_pixels)
    return _pil_to_rgb(_upright(img), name)


def configured_max_pixels() -> int:
    """$FACELM_MAX_PIXELS when set (by --max-pixels), else DEFAULT_MAX_PIXELS."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        return max(1, int(float(text)))
    except (ValueError, OverflowError):
        raise InputFormatError(f"{text!r} is not a number of pixels", item=MAX_PIXELS_ENV,
                               hint="e.g. 100000000 for 100 MP") from None


def _decode(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Open, size-check and decode the pixels; every decoder failure becomes ImageLoadError."""
    try:
        with warnings.catch_warnings():
            # We enforce our own pixel limit below; PIL's bomb warning would only add noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = _open(data)
            _check_size(img, name, max_pixels)
            img.load()
        return img
    except (FaceLMError, MemoryError):
        raise
    except Image.DecompressionBombError as exc:  # some plugins check again inside load()
        raise ImageTooLargeError(str(exc), item=name,
                                 hint="downscale it, or raise max_pixels / --max-pixels") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError("not an image file we can read", item=name,
                             hint="use JPEG, PNG, BMP, TIFF or WebP") from exc
    except Exception as exc:  # noqa: BLE001 - PIL's plugins raise OSError, SyntaxError,
        # ValueError, EOFError, struct.error, IndexError... on corrupt data; all mean the same.
        raise ImageLoadError(f"the image data is corrupt or truncated ({exc})", item=name,
                             hint=_REREAD_HINT) from exc


def _open(data: bytes) -> Image.Image:
    """Image.open, minus PIL's own decompression-bomb refusal (our _check_size replaces it).

    Image.open raises DecompressionBombError above 2 * Image.MAX_IMAGE_PIXELS (~179 MP) from the
    header alone, which would refuse huge JPEGs we can decode reduced, and ignore a max_pixels the
    caller raised. Only then do we identify the file through PIL's plugin registry ourselves: that
    reads the header and decodes nothing, so it is as safe as Image.open.
    """
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        pass
    Image.init()
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        ok = accept(data[:16]) if accept else True
        if not ok or isinstance(ok, str):  # a str is a plugin's "looks like me, but unsupported"
            continue
        try:
            return factory(io.BytesIO(data), "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue
    raise UnidentifiedImageError("cannot identify image file")


def _read_bytes(source: object, name: str) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        data = _read_file(Path(source), name)
    elif hasattr(source, "read"):  # an open binary file or BytesIO
        data = source.read()
        if not isinstance(data, bytes):
            raise ImageLoadError("file object returned text, not bytes", item=name,
                                 hint="open the file in binary mode ('rb')")
    else:
        raise ImageLoadError(f"cannot load an image from a {type(source).__name__}", item=name,
                             hint="pass a path, bytes, a numpy array or a PIL image")
    if not data:
        raise ImageLoadError("the file is empty (0 bytes)", item=name, hint=_REREAD_HINT)
    return data


def _read_file(path: Path, name: str) -> bytes:
    if not path.exists():
        raise ImageLoadError("file not found", item=name, hint="check the path")
    if path.is_dir():
        raise ImageLoadError("is a folder, not an image file", item=name,
                             hint="pass the path of an image file inside it")
    try:
        return path.read_bytes()
    except OSError as exc:  # permission denied, I/O error: still this item's problem, not a crash
        raise ImageLoadError(f"cannot read the file ({exc.strerror or exc})", item=name,
                             hint="check the file's permissions") from exc


def _check_size(img: Image.Image, name: str, max_pixels: int) -> None:
    """Refuse or reduce an oversized image before any pixel is decoded."""
    w, h = img.size
    if w * h <= max_pixels:
        return
    if img.format in ("JPEG", "MPO"):  # MPO: camera JPEGs with a multi-picture index
        # The smallest reduction that fits keeps the most detail; draft() only accepts these.
        for s in JPEG_DRAFT_SCALES:
            if math.ceil(w / s) * math.ceil(h / s) <= max_pixels:
                # draft() picks the largest power of two <= min(w // tw, h // th), i.e. exactly s.
                img.draft(img.mode, (max(1, w // s), max(1, h // s)))
                break
        if img.size[0] * img.size[1] <= max_pixels:
            return
    raise ImageTooLargeError(
        f"image is {w}x{h} ({w * h / 1e6:.3g} MP), above the {max_pixels / 1e6:.3g} MP limit",
        item=name, hint="downscale it, or raise max_pixels / --max-pixels")


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF Orientation tag, so coordinates are those of the image as displayed."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose a readable image
        return img


def _pil_to_rgb(img: Image.Image, name: str) -> np.ndarray:
    mode = img.mode
    if mode in _HIGH_BIT_MODES or mode == "F":
        return _array_to_rgb(_to_uint8(np.asarray(img), sixteen_bit=mode != "F"), name)
    try:
        if mode in _ALPHA_MODES or (mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            # Composite on white: a cut-out's transparent background becomes white, not black.
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, rgba)
        rgb = img.convert("RGB")  # CMYK, YCbCr, P, L and 1 all convert here
    except ValueError as exc:  # a mode PIL has no conversion to RGB for (exotic TIFFs)
        raise ImageLoadError(f"colour mode {mode} is not supported ({exc})", item=name,
                             hint="convert the image to RGB") from exc
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _to_uint8(arr: np.ndarray, *, sixteen_bit: bool = False) -> np.ndarray:
    """Scale numeric pixel values to uint8 by what their type and range say they hold.

    Brightness is kept wherever the scale is known (quality measures depend on it): 16-bit data
    (uint16 arrays, PIL's I;16 and I modes) maps 65535 -> 255; floats in [0, 1] map 1.0 -> 255;
    other values already in 0..255 (float TIFFs converted from 8-bit, int arrays) are kept.
    Only data outside every known scale is stretched to its used range.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"pixel type {arr.dtype} is not numeric")
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 2:  # any byte order
        return _round_u8(arr.astype(np.float32) / 257.0)
    a = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()), float(a.max())
    if lo >= 0 and sixteen_bit and hi <= 65535:
        return _round_u8(a / 257.0)
    if lo >= 0 and arr.dtype.kind == "f" and hi <= 1.0:
        return _round_u8(a * 255.0)
    if lo >= 0 and hi <= 255:
        return _round_u8(a)
    return _stretch(a, lo, hi)


def _round_u8(a: np.ndarray) -> np.ndarray:
    return np.clip(a + 0.5, 0, 255).astype(np.uint8)


def _stretch(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    return _round_u8((a - lo) * (255.0 / (hi - lo)))


def _array_to_rgb(arr: np.ndarray, name: str) -> np.ndarray:
    """Accept (H, W), (H, W, 1|3|4) arrays of any numeric dtype; arrays are assumed RGB(A)."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageLoadError(f"array of shape {arr.shape} is not an image",
                             item=name, hint="pass (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
    if arr.size == 0:
        raise ImageLoadError(f"array of shape {arr.shape} is empty", item=name,
                             hint="pass an image with at least one pixel")
    try:
        arr = _to_uint8(arr)
    except TypeError as exc:
        raise ImageLoadError(str(exc), item=name,
                             hint="pass uint8, uint16 or float pixels") from exc
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    elif arr.shape[2] == 4:
        # Composite on white, as for RGBA files.
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
        arr = _round_u8(arr[:, :, :3] * alpha + 255.0 * (1.0 - alpha))
    return np.ascontiguousarray(arr)
