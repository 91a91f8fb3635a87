"""ango_torch.assets.decode: every format and mode to RGB uint8 [H, W, 3], on a 17×11 canvas."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ango_torch.assets.decode import decode_image, decode_rgba, image_size
from ango_torch.errors import AssetFetchError, DecodeError

H, W = 11, 17
RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)


def encode(im: Image.Image, fmt: str, **kw: Any) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **kw)
    return out.getvalue()


def exif(orientation: int) -> Image.Exif:
    e = Image.Exif()
    e[0x0112] = orientation
    return e


def check(a: np.ndarray, shape: tuple[int, ...] = (H, W, 3)) -> None:
    assert a.dtype == np.uint8 and a.shape == shape
    assert a.flags.writeable and a.flags.c_contiguous


LOSSLESS = [
    ("PNG", {}),
    ("WEBP", {"lossless": True}),
    ("BMP", {}),
    ("TIFF", {}),
    ("TIFF", {"compression": "tiff_lzw"}),
]


@pytest.mark.parametrize(("fmt", "kw"), LOSSLESS, ids=["png", "webp", "bmp", "tiff", "tiff-lzw"])
def test_lossless_rgb_roundtrip(fmt: str, kw: dict[str, Any]) -> None:
    data = encode(Image.fromarray(RGB), fmt, **kw)
    out = decode_image(data)
    check(out)
    np.testing.assert_array_equal(out, RGB)
    assert image_size(data) == (H, W)


def test_jpeg_close_to_source() -> None:
    smooth = np.broadcast_to(np.linspace(0, 255, W, dtype=np.uint8)[None, :, None], (H, W, 3))
    out = decode_image(encode(Image.fromarray(np.ascontiguousarray(smooth)), "JPEG", quality=95))
    check(out)
    assert np.abs(out.astype(int) - smooth).max() <= 8


def test_matches_pil_reference_on_photo_sized_jpeg() -> None:
    big = RNG.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    data = encode(Image.fromarray(big), "JPEG")
    np.testing.assert_array_equal(decode_image(data), np.asarray(Image.open(io.BytesIO(data))))


@pytest.mark.parametrize("orientation", range(1, 9), ids=[f"o{i}" for i in range(1, 9)])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_exif_orientation(orientation: int, fmt: str) -> None:
    kw: dict[str, Any] = {"exif": exif(orientation)}
    if fmt == "JPEG":
        kw["quality"] = 100
    if fmt == "WEBP":
        kw["lossless"] = True
    data = encode(Image.fromarray(RGB), fmt, **kw)
    transposed = orientation >= 5
    shape = (W, H, 3) if transposed else (H, W, 3)
    out = decode_image(data)
    check(out, shape)
    assert image_size(data) == shape[:2]
    if fmt != "JPEG":
        # Independent reference: the eight orientations as numpy flips/rotations.
        ref = {
            1: RGB,
            2: RGB[:, ::-1],
            3: RGB[::-1, ::-1],
            4: RGB[::-1],
            5: RGB.transpose(1, 0, 2),
            6: np.rot90(RGB, -1),
            7: np.rot90(RGB, -1)[::-1],
            8: np.rot90(RGB),
        }[orientation]
        np.testing.assert_array_equal(out, ref)


GRAY = RNG.integers(0, 256, (H, W), dtype=np.uint8)


def palette_with_transparency() -> Image.Image:
    im = Image.fromarray(RNG.integers(0, 4, (H, W), dtype=np.uint8), mode="P")
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    im.info["transparency"] = 0
    return im


MODES = [
    ("L", lambda: Image.fromarray(GRAY), "PNG", np.repeat(GRAY[..., None], 3, axis=2)),
    (
        "1",
        lambda: Image.fromarray(GRAY > 127),
        "PNG",
        np.repeat(np.where(GRAY > 127, 255, 0).astype(np.uint8)[..., None], 3, axis=2),
    ),
    (
        "LA",
        lambda: Image.fromarray(np.dstack([GRAY, GRAY]), mode="LA"),
        "PNG",
        np.repeat(GRAY[..., None], 3, axis=2),
    ),
    ("RGBA", lambda: Image.fromarray(np.dstack([RGB, GRAY])), "PNG", RGB),
    ("RGBA-webp", lambda: Image.fromarray(np.dstack([RGB, GRAY])), "WEBP", None),
    ("P", lambda: Image.fromarray(RGB).quantize(16), "PNG", None),
    ("P-transparency", palette_with_transparency, "PNG", None),
    ("P-gif", palette_with_transparency, "GIF", None),
    ("CMYK-jpeg", lambda: Image.fromarray(RGB).convert("CMYK"), "JPEG", None),
    (
        "CMYK-tiff",
        lambda: Image.fromarray(RGB).convert("CMYK"),
        "TIFF",
        np.asarray(Image.fromarray(RGB).convert("CMYK").convert("RGB")),
    ),
]


@pytest.mark.parametrize(("name", "make", "fmt", "expected"), MODES, ids=[m[0] for m in MODES])
def test_modes_to_rgb(name: str, make: Any, fmt: str, expected: np.ndarray | None) -> None:
    im = make()
    kw = {"lossless": True} if fmt == "WEBP" else {}
    out = decode_image(encode(im, fmt, **kw))
    check(out)
    if expected is not None:
        np.testing.assert_array_equal(out, expected)


def test_palette_transparency_keeps_palette_colour_and_alpha() -> None:
    im = palette_with_transparency()
    data = encode(im, "PNG")
    idx = np.asarray(im)
    pal = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 9, 9]], dtype=np.uint8)
    np.testing.assert_array_equal(decode_image(data), pal[idx])
    rgba = decode_rgba(data)
    check(rgba, (H, W, 4))
    np.testing.assert_array_equal(rgba[..., 3], np.where(idx == 0, 0, 255))


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_sixteen_bit_scaled_not_clipped(fmt: str) -> None:
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    grid = np.repeat(values, 3, axis=0)
    out = decode_image(encode(Image.fromarray(grid), fmt))
    check(out, (3, 4, 3))
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 128, 255])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_float_tiff() -> None:
    f = (GRAY / 255.0).astype(np.float32)
    out = decode_image(encode(Image.fromarray(f, mode="F"), "TIFF"))
    check(out)
    np.testing.assert_array_equal(out[..., 0], GRAY)


def test_multipage_tiff_first_page() -> None:
    pages = [Image.fromarray(RGB), Image.fromarray(255 - RGB)]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    np.testing.assert_array_equal(decode_image(data), RGB)


def test_decode_rgba_brush() -> None:
    rgba = np.dstack([RGB, np.where(GRAY > 127, 255, 0).astype(np.uint8)])
    out = decode_rgba(encode(Image.fromarray(rgba), "PNG"))
    check(out, (H, W, 4))
    np.testing.assert_array_equal(out, rgba)
    opaque = decode_rgba(encode(Image.fromarray(RGB), "PNG"))
    assert (opaque[..., 3] == 255).all()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size: only the header is needed to refuse it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("data", "kw", "match"),
    [
        (png_header_only(20_000, 10_000), {}, r"200,000,000 pixels, over Pillow's limit"),
        # Between Pillow's warning and error limits: its warning must not escape.
        (
            png_header_only(10_000, 10_000),
            {"max_pixels": 50_000_000},
            r"10000×10000 = 100,000,000 pixels, over the limit of 50,000,000",
        ),
        (encode(Image.fromarray(RGB), "PNG"), {"max_pixels": 100}, r"17×11 = 187 pixels.*100"),
    ],
    ids=["over-pillow-limit", "pillow-warning-zone", "custom-limit"],
)
def test_bomb_guard(data: bytes, kw: dict[str, Any], match: str) -> None:
    with pytest.raises(DecodeError, match=match) as info:
        decode_image(data, label="asset 'big.png' (#1)", **kw)
    assert "asset 'big.png' (#1)" in str(info.value)


def test_bomb_guard_can_be_lifted_for_genuine_images() -> None:
    data = encode(Image.fromarray(RGB), "PNG")
    check(decode_image(data, max_pixels=None))
    assert image_size(png_header_only(16_000, 10_000)) == (10_000, 16_000)


GOOD_JPEG = encode(Image.fromarray(RGB), "JPEG")
GOOD_PNG = encode(Image.fromarray(RGB), "PNG")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image at all",
        b"<?xml version='1.0'?><Error>AccessDenied</Error>",
        GOOD_JPEG[: len(GOOD_JPEG) // 2],
        GOOD_PNG[: len(GOOD_PNG) // 2],
        GOOD_PNG[:40] + b"\x00" * 100,
    ],
    ids=["empty", "text", "s3-error-page", "truncated-jpeg", "truncated-png", "garbled-png"],
)
def test_corrupt_bytes_raise_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError, match=r"^asset 'a.jpg' \(#3\): ") as info:
        decode_image(data, label="asset 'a.jpg' (#3)")
    assert isinstance(info.value, AssetFetchError) and isinstance(info.value, OSError)
    with pytest.raises(DecodeError):
        decode_rgba(data, label="x")


def test_image_size_rejects_garbage() -> None:
    with pytest.raises(DecodeError, match="lbl"):
        image_size(b"garbage", label="lbl")
