"""Bytes → pixels: decode fetched images and brush PNGs into numpy arrays.

Pure functions, no IO: the fetch layer hands over bytes, these return
``numpy.uint8`` arrays in torchvision's ``(height, width)`` order, with the
EXIF orientation applied so that pixels match the coordinates annotators saw.

Pillow is the decoder, chosen by measurement (``benchmarks/fetch.py``): it is
warning-free and a core dependency, its JPEG/PNG decode itself ties
``torchvision.io`` (≈4.2 vs 4.0 ms for a 1536×1536 JPEG), whereas
``torchvision.io``'s decoders are deprecated in torchvision 0.29 and warn on every
call.  On large images most of the time goes to Pillow's export to numpy (its
``tobytes``), which is 3× slower once torch is imported in the process (glibc
malloc then page-faults every fresh multi-MB buffer); ``torchvision.io`` avoids
that copy, hence its 3.5× lead end to end on 2-megapixel JPEGs.
"""

from __future__ import annotations

import functools
import io
import os
import re
import warnings
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from ..errors import DecodeError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "decode_image",
    "decode_rgba",
    "exif_transposed",
    "image_size",
    "write_png",
]

#: Default pixel limit of :func:`decode_image` and :func:`decode_rgba`:
#: Pillow's own hard limit (2 × ``Image.MAX_IMAGE_PIXELS`` ≈ 179 megapixels).
DEFAULT_MAX_PIXELS: Final[int] = 2 * 89_478_485

# EXIF orientations 5-8 are transposed: the stored width is the displayed height.
_ORIENTATION_TAG: Final = 0x0112
_SWAPS_AXES: Final = frozenset({5, 6, 7, 8})
_HAS_ALPHA: Final = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_SIXTEEN_BIT: Final = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})

U8 = npt.NDArray[np.uint8]


def _where(label: str) -> str:
    return label or "image"


def _describe(data: bytes) -> str:
    """Size and kind of ``data``, never its bytes: a message must not echo a file's
    contents (a local file could be a secret).  The kind tells a truncated image from
    an HTML/XML error page served as one."""
    head = bytes(data[:512]).lstrip()
    if not head:
        kind = "empty" if not data else "blank"
    elif head[:1] == b"<":
        kind = "an HTML or XML document (an error page?)"
    elif head[:1] in (b"{", b"["):
        kind = "JSON-like text"
    elif all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        kind = "plain text"
    else:
        kind = "binary data"
    return f"{len(data)} bytes, {kind}"


def _open(data: bytes, label: str, max_pixels: int | None) -> Image.Image:
    """Open (header only) and apply the pixel limit before any pixel is decoded."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{_where(label)}: expected bytes, got {type(data).__name__}")
    try:
        # Pillow warns between 1× and 2× its limit; the limit is ours to enforce
        # (below, as an error), so its warning must not leak to callers running
        # with warnings as errors.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        # Pillow's own hard limit (2 × PIL.Image.MAX_IMAGE_PIXELS) fired first.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise DecodeError(
            f"{_where(label)}: image has {pixels}, over Pillow's limit of "
            f"{2 * (Image.MAX_IMAGE_PIXELS or 0):,} (2 × PIL.Image.MAX_IMAGE_PIXELS); refusing "
            "to decode a possible decompression bomb. Raise PIL.Image.MAX_IMAGE_PIXELS "
            "(or set it to None) if the image is genuine"
        ) from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error...
        raise DecodeError(
            f"{_where(label)}: not a decodable image ({_describe(data)}): {exc}"
        ) from exc
    width, height = im.size
    if max_pixels is not None and width * height > max_pixels:
        raise DecodeError(
            f"{_where(label)}: image is {width}×{height} = {width * height:,} pixels, "
            f"over the limit of {max_pixels:,} (max_pixels=); refusing to decode a "
            "possible decompression bomb. Pass a larger max_pixels= (or None) if the "
            "image is genuine"
        )
    return im


def _load(im: Image.Image, data: bytes, label: str) -> Image.Image:
    """Decode pixels of the first frame/page and apply the EXIF orientation."""
    try:
        if getattr(im, "n_frames", 1) > 1:
            im.seek(0)
        im.load()
        # in_place avoids the full copy exif_transpose makes when there is nothing to do.
        ImageOps.exif_transpose(im, in_place=True)
    except Exception as exc:
        raise DecodeError(
            f"{_where(label)}: corrupt or truncated image ({_describe(data)}): {exc}"
        ) from exc
    return im


def _sixteen_to_eight(im: Image.Image) -> Image.Image:
    """Scale 16-bit grayscale to 8 bits: 0 → 0, 65535 → 255, rounded (not clipped at 255)."""
    # Pillow opens some 16-bit files as 32-bit "I"; values outside 16 bits are clipped.
    a = np.clip(np.asarray(im).astype(np.int64), 0, 65535)
    return Image.fromarray(((a * 255 + 32767) // 65535).astype(np.uint8), mode="L")


def _float_to_eight(im: Image.Image) -> Image.Image:
    a = np.asarray(im, dtype=np.float32)
    finite = a[np.isfinite(a)]
    if finite.size and float(finite.max()) <= 1.0:
        a = a * 255.0  # [0, 1] floats
    a = np.nan_to_num(np.clip(np.rint(a), 0, 255))
    return Image.fromarray(a.astype(np.uint8), mode="L")


def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in _SIXTEEN_BIT:
        im = _sixteen_to_eight(im)
    elif mode == "F":
        im = _float_to_eight(im)
    elif mode == "P" or "transparency" in im.info:
        # Pillow warns when a palette image with transparency goes straight to RGB.
        im = im.convert("RGBA")
    elif mode not in _HAS_ALPHA and mode not in ("L", "1", "CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGBA")
    return im.convert("RGB")  # drops alpha; L/1 → gray RGB; CMYK/YCbCr → RGB


def _to_array(im: Image.Image, channels: int) -> U8:
    # np.array (not asarray): Pillow's buffer is read-only, and torch.from_numpy warns
    # on read-only arrays.
    a: U8 = np.array(im, dtype=np.uint8)
    if a.ndim != 3 or a.shape[2] != channels:
        raise DecodeError(f"internal: expected {channels} channels, got shape {a.shape}")
    return a


def decode_image(
    data: bytes, *, label: str = "", max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> U8:
    """Decode an encoded image into RGB pixels, EXIF orientation applied.

    Reads JPEG, PNG, WebP, BMP, GIF (first frame) and TIFF (first page).  Grayscale
    and bilevel images are replicated to three channels; palette images (with or
    without transparency), RGBA and LA lose their alpha channel; 16-bit grayscale is
    scaled to 8 bits (``v * 255 / 65535``, rounded, not clipped); CMYK and YCbCr are
    converted to RGB.

    Args:
        data: The encoded file.
        label: Location for error messages, e.g. ``"asset 'a.jpg' (#3)"``.
        max_pixels: Refuse images with more than this many pixels (decompression
            bomb guard), checked from the header before decoding.  ``None``
            disables ango_torch's limit (Pillow's ``MAX_IMAGE_PIXELS`` still applies).

    Returns:
        Writable, C-contiguous ``uint8`` array of shape ``[H, W, 3]`` (RGB), where
        ``H, W`` are the displayed height and width (after EXIF rotation).

    Raises:
        DecodeError: Bytes that are not an image, corrupt or truncated data, or an
            image over ``max_pixels``.
    """
    im = _load(_open(data, label, max_pixels), data, label)
    try:
        rgb = _to_rgb(im)
    except Exception as exc:
        raise DecodeError(
            f"{_where(label)}: cannot convert mode {im.mode!r} to RGB: {exc}"
        ) from exc
    return _to_array(rgb, 3)


def decode_rgba(data: bytes, *, label: str = "", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> U8:
    """Decode a brush PNG into RGBA pixels, alpha kept.

    Args:
        data: The encoded file (normally an RGBA PNG; any mode is converted).
        label: Location for error messages.
        max_pixels: Decompression-bomb guard, as in :func:`decode_image`.

    Returns:
        Writable ``uint8`` array of shape ``[H, W, 4]`` (R, G, B, alpha); images
        without alpha get alpha 255 everywhere, palette transparency becomes alpha 0.

    Raises:
        DecodeError: As :func:`decode_image`.
    """
    im = _load(_open(data, label, max_pixels), data, label)
    try:
        if im.mode in _SIXTEEN_BIT:
            im = _sixteen_to_eight(im)
        rgba = im if im.mode == "RGBA" else im.convert("RGBA")
    except Exception as exc:
        raise DecodeError(
            f"{_where(label)}: cannot convert mode {im.mode!r} to RGBA: {exc}"
        ) from exc
    return _to_array(rgba, 4)


def image_size(data: bytes, *, label: str = "") -> tuple[int, int]:
    """The displayed ``(height, width)`` of an encoded image, from its header only.

    EXIF orientations 5-8 (transposed) swap the stored width and height, as
    :func:`decode_image` does.  No pixel data is decoded and no pixel limit applies.

    Raises:
        DecodeError: Bytes whose header is not a recognised image.
    """
    im = _open(data, label, None)
    width, height = im.size
    if _transposed(im) and not (im.format == "TIFF" and _tiff_size_oriented()):
        width, height = height, width
    return height, width


def exif_transposed(data: bytes, *, label: str = "") -> bool:
    """Whether the image's EXIF orientation (5-8) transposes it: its displayed size
    (what :func:`decode_image` returns) is its stored size with width and height swapped.

    Reads the header only.

    Raises:
        DecodeError: Bytes whose header is not a recognised image.
    """
    return _transposed(_open(data, label, None))


def _transposed(im: Image.Image) -> bool:
    try:
        if im.format == "PNG":
            # PngImageFile.getexif() decodes the whole image to look for a trailing
            # eXIf chunk; only one before the pixels is read here.
            raw = im.info.get("exif")
            exif = Image.Exif()
            if isinstance(raw, bytes):
                exif.load(raw)
        else:
            exif = im.getexif()
        orientation = exif.get(_ORIENTATION_TAG, 1)
    except Exception:
        orientation = 1  # unreadable EXIF: decode_image's exif_transpose ignores it too
    return orientation in _SWAPS_AXES


@functools.cache
def _tiff_size_oriented() -> bool:
    """Whether this Pillow reports TIFF sizes with the orientation already applied.

    Recent Pillow applies a TIFF's Orientation tag itself (size at open, pixels at
    load); older releases leave it to ``exif_transpose``.  Probed once on a 2×1 image.
    """
    exif = Image.Exif()
    exif[_ORIENTATION_TAG] = 6
    out = io.BytesIO()
    Image.new("L", (2, 1)).save(out, "TIFF", exif=exif)
    with Image.open(out) as im:
        return bool(im.size == (1, 2))


def write_png(array: npt.NDArray[np.uint8], path: str | os.PathLike[str]) -> Path:
    """Write a ``uint8 [H, W]`` (grey or labels) or ``[H, W, 3]`` (RGB) array as a PNG.

    Raises:
        ValueError: ``array`` is not uint8, or not ``[H, W]`` / ``[H, W, 1 or 3]``.
    """
    if array.dtype != np.uint8:
        raise ValueError(f"write_png: expected a uint8 array, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"write_png: expected [H, W] or [H, W, 3], got {list(array.shape)}")
    out = Path(path)
    Image.fromarray(np.ascontiguousarray(array)).save(out, format="PNG")
    return out
