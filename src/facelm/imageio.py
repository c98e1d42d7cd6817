"""Robust image loading: every file a user may hand us becomes an 8-bit RGB array or a clear error.

Handles EXIF orientation, CMYK, 16-bit and float greyscale, palette, alpha and bilevel images, and
refuses decompression bombs before decoding them (JPEGs are instead reduced while decoding, which
costs no extra memory).
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import ImageLoadError, ImageTooLargeError

# Above this many pixels an image is refused (or, for JPEG, decoded at a reduced scale).
# 50 MP covers every camera photo users hand to a face tool; 20,000² (400 MP) would need 1.2 GB.
DEFAULT_MAX_PIXELS = 50_000_000
# Faces need no more than this on the longest side; larger JPEGs are decoded reduced.
JPEG_DRAFT_SIDE = 4096

ImageInput = Union[str, os.PathLike, bytes, np.ndarray, Image.Image]


def describe_source(source: ImageInput) -> str:
    """A short name for an image source, used in results and error messages."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {'x'.join(map(str, source.shape))}>"
    return f"<PIL {source.mode} {source.size[0]}x{source.size[1]}>"


def load_rgb(source: ImageInput, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load any supported image source as a contiguous (H, W, 3) uint8 RGB array.

    Raises ImageLoadError (missing, empty, truncated, undecodable) or ImageTooLargeError.
    """
    name = describe_source(source)
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, name)
    if isinstance(source, Image.Image):
        return _pil_to_rgb(ImageOps.exif_transpose(source), name)
    data = _read_bytes(source, name)
    try:
        with warnings.catch_warnings():
            # We enforce our own pixel limit below; PIL's bomb warning would only add noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            _check_size(img, name, max_pixels)
            img.load()
    except (ImageLoadError, ImageTooLargeError):
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(str(exc), item=name, hint="downscale the image") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError("not an image file we can read", item=name,
                             hint="use JPEG, PNG, BMP, TIFF or WebP") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"the image data is corrupt or truncated ({exc})", item=name,
                             hint="re-export or re-download the file") from exc
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose a readable image
        pass
    return _pil_to_rgb(img, name)


def _read_bytes(source: str | os.PathLike | bytes, name: str) -> bytes:
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        if not path.exists():
            raise ImageLoadError("file not found", item=name, hint="check the path")
        if path.is_dir():
            raise ImageLoadError("is a folder, not an image file", item=name)
        data = path.read_bytes()
    if not data:
        raise ImageLoadError("the file is empty (0 bytes)", item=name,
                             hint="re-export or re-download the file")
    return data


def _check_size(img: Image.Image, name: str, max_pixels: int) -> None:
    """Refuse or reduce an oversized image before any pixel is decoded."""
    w, h = img.size
    if w * h <= max_pixels:
        return
    if img.format == "JPEG":
        scale = max(w, h) / JPEG_DRAFT_SIDE
        img.draft("RGB", (int(w / scale), int(h / scale)))
        if img.size[0] * img.size[1] <= max_pixels:
            return
    raise ImageTooLargeError(
        f"image is {w}x{h} ({w * h / 1e6:.0f} MP), above the {max_pixels / 1e6:.0f} MP limit",
        item=name, hint="downscale it, or raise max_pixels / --max-pixels")


def _pil_to_rgb(img: Image.Image, name: str) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit greyscale keeps its brightness (quality measures depend on it): 65535 -> 255.
        # Only data outside 0..65535 (32-bit int or float) is stretched to its used range.
        arr = np.asarray(img, dtype=np.float64)
        if mode == "F" and np.nanmax(arr) <= 1.0 and np.nanmin(arr) >= 0.0:
            return _array_to_rgb((arr * 255.0 + 0.5).astype(np.uint8), name)
        if np.nanmin(arr) >= 0 and np.nanmax(arr) <= 65535:
            return _array_to_rgb((arr / 257.0 + 0.5).astype(np.uint8), name)
        return _array_to_rgb(_stretch(arr), name)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        # Composite on white: transparent backgrounds of portrait cut-outs become white, not black.
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    rgb = img.convert("RGB")  # CMYK, YCbCr, P, L and 1 all convert here
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _stretch(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.clip((arr - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)


def _array_to_rgb(arr: np.ndarray, name: str) -> np.ndarray:
    """Accept (H, W), (H, W, 1|3|4) arrays of any numeric dtype; arrays are assumed RGB(A)."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageLoadError(f"array of shape {arr.shape} is not an image",
                             item=name, hint="pass (H, W), (H, W, 3) or (H, W, 4)")
    if arr.size == 0:
        raise ImageLoadError("array is empty", item=name)
    if arr.dtype != np.uint8:
        if arr.dtype == np.uint16:
            arr = (arr >> 8).astype(np.uint8)
        elif np.issubdtype(arr.dtype, np.floating) and float(np.nanmax(arr)) <= 1.0:
            arr = np.clip(np.nan_to_num(arr) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        else:
            arr = _stretch(arr.astype(np.float64))
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    elif arr.shape[2] == 4:
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
        arr = (arr[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(arr)
