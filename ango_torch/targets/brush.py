"""Pure brush-mask processing: colour → class maps, connected components, resizing.

numpy only (no torch, no IO); conventions as in :mod:`ango_torch.targets.geometry`.  A brush
PNG is RGBA: alpha > 0 is painted, and the RGB of a painted pixel is the ontology colour
of its class; there are no instance ids, so connected components split instances.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from ango_torch.errors import ExportFormatError
from ango_torch.targets.geometry import BoolArray, IntArray, Offset, _canvas

__all__ = [
    "BRUSH_TOLERANCE",
    "OTHER_COLORS",
    "REPORTED_COLORS",
    "UNLISTED",
    "brush_to_class_map",
    "components_to_crops",
    "connected_components",
    "count_colors",
    "distinct_colors",
    "parse_hex_color",
    "resize_nearest",
]

RGB: TypeAlias = tuple[int, int, int]


_HEX = re.compile(r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


def parse_hex_color(text: str) -> RGB:
    """``"#f44336"`` → ``(244, 67, 54)``; with or without ``#``, 3 or 6 digits, any case."""
    match = _HEX.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ExportFormatError(f"expected a colour like '#RRGGBB' or '#RGB', got {text!r}")
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def _packed_rgba(rgba: npt.ArrayLike) -> npt.NDArray[np.uint32]:
    """``uint8 [H, W, 4]`` → ``uint32 [H, W]`` holding ``a << 24 | b << 16 | g << 8 | r``."""
    arr = np.asarray(rgba)
    if arr.ndim != 3 or arr.shape[2] != 4 or arr.dtype != np.uint8:
        raise ExportFormatError(
            f"expected a uint8 [H, W, 4] RGBA brush image, got {arr.dtype} {arr.shape}"
        )
    # Reading the 4 bytes of a pixel as one little-endian uint32 packs it in a single pass.
    packed: npt.NDArray[np.uint32] = np.ascontiguousarray(arr).view("<u4")[..., 0]
    return packed


def _unpack(packed: npt.NDArray[np.uint32]) -> IntArray:
    """Packed ``b << 16 | g << 8 | r`` → ``int64 [N, 3]`` RGB."""
    p = packed.astype(np.int64)
    return np.stack([p & 0xFF, (p >> 8) & 0xFF, (p >> 16) & 0xFF], axis=1)


BRUSH_TOLERANCE = 16
"""Largest per-channel RGB difference (``max(|dr|, |dg|, |db|)``) at which a painted pixel
still takes a listed brush colour (antialiasing, lossy re-encoding); beyond it the pixel
is *unlisted* (``-1`` in :func:`brush_to_class_map`)."""

UNLISTED = -1
"""Index of painted pixels whose colour is within the tolerance of no listed colour."""

REPORTED_COLORS = 256
"""Most unlisted colours of one brush PNG counted by name in a dataset's report; the
pixels of the others are counted under :data:`OTHER_COLORS` (a noisy PNG has millions)."""

OTHER_COLORS = "other colours"
"""Report key of the unlisted pixels beyond the :data:`REPORTED_COLORS` most frequent."""


def brush_to_class_map(
    rgba: npt.ArrayLike, *, colors: Sequence[RGB], tolerance: int | None = BRUSH_TOLERANCE
) -> tuple[IntArray, int]:
    """Map a brush PNG to class indices by colour.

    A pixel is painted when its alpha is > 0.  A painted pixel whose RGB is a listed
    colour takes it; otherwise it takes the nearest colour (squared RGB distance, ties:
    the first colour) among those within ``tolerance`` (largest per-channel difference)
    and is counted as inexact; with none within it, it is :data:`UNLISTED` (``-1``).
    So a colour nobody listed never becomes the class that happens to be nearest.

    Args:
        rgba: ``uint8 [H, W, 4]`` RGBA image.
        colors: the class colours ``(r, g, b)`` in ``0..255``; must be distinct.  Pass
            every colour the ontology knows (also those of classes left out) so that
            their pixels are recognised rather than left unlisted.
        tolerance: :data:`BRUSH_TOLERANCE` by default; ``0`` for exact colours only;
            ``None`` for the nearest colour at any distance (no pixel is unlisted).

    Returns:
        ``(class_map, inexact)``: ``int64 [H, W]``, 0 for unpainted pixels, ``k`` for
        ``colors[k - 1]`` and ``-1`` for unlisted ones; and the number of painted pixels
        mapped to a colour their RGB does not equal.

    Raises:
        ExportFormatError: bad image, bad or duplicate colours, a negative tolerance, or
            painted pixels with no colour to map them to.
    """
    if tolerance is not None and (isinstance(tolerance, bool) or not 0 <= int(tolerance) < 256):
        raise ExportFormatError(f"tolerance must be None or an int in 0..255, got {tolerance!r}")
    packed = _packed_rgba(rgba)
    out = np.zeros(packed.shape, dtype=np.int64)
    painted = np.flatnonzero(packed >= 1 << 24)
    table = np.array([_pack_color(c) for c in colors], dtype=np.uint32).reshape(-1)
    if len(np.unique(table)) != len(table):
        raise ExportFormatError(f"brush colours must be distinct, got {list(colors)!r}")
    if not painted.size:
        return out, 0
    if not table.size:
        raise ExportFormatError(f"{painted.size} painted brush pixels but no class colours")
    rgb = packed.reshape(-1)[painted] & 0xFFFFFF
    order = np.argsort(table)
    pos = np.minimum(np.searchsorted(table[order], rgb), len(table) - 1)
    labels = order[pos] + 1
    inexact = table[order][pos] != rgb
    n_inexact = 0
    if inexact.any():
        # Few distinct off-colours (antialiasing): find the nearest class per colour once.
        uniq, inverse = np.unique(rgb[inexact], return_inverse=True)
        ref = _unpack(table)
        nearest = np.empty(len(uniq), dtype=np.int64)
        for s in range(0, len(uniq), 1 << 16):  # bound the [U, K] distance block
            diff = _unpack(uniq[s : s + (1 << 16)])[:, None, :] - ref[None, :, :]
            dist = (diff * diff).sum(axis=2)
            if tolerance is not None:
                far = np.abs(diff).max(axis=2) > tolerance
                dist[far] = np.iinfo(np.int64).max
                best = np.argmin(dist, axis=1)
                nearest[s : s + (1 << 16)] = np.where(far.all(axis=1), UNLISTED - 1, best)
            else:
                nearest[s : s + (1 << 16)] = np.argmin(dist, axis=1)
        off = nearest[inverse.reshape(-1)] + 1
        labels[inexact] = off
        n_inexact = int((off != UNLISTED).sum())
    out.reshape(-1)[painted] = labels
    return out, n_inexact


def _pack_color(color: RGB) -> int:
    if len(color) != 3 or any(not 0 <= int(v) <= 255 or int(v) != v for v in color):
        raise ExportFormatError(f"expected an (r, g, b) colour in 0..255, got {color!r}")
    r, g, b = (int(v) for v in color)
    return b << 16 | g << 8 | r


def distinct_colors(rgba: npt.ArrayLike, *, top: int | None = None) -> list[tuple[RGB, int]]:
    """The distinct RGB colours of the painted (alpha > 0) pixels of a ``uint8 [H, W, 4]``
    image, with their pixel counts, most frequent first (ties by colour).

    Args:
        rgba: ``uint8 [H, W, 4]``.
        top: return only the ``top`` most frequent (``None``: all).  Sorting and the
            Python list are then bounded by ``top``, however noisy the image: a noisy PNG
            has millions of colours.
    """
    if top is not None and top <= 0:
        _packed_rgba(rgba)  # validates the image
        return []
    uniq, counts = _color_counts(rgba)
    r, g, b = uniq & 0xFF, (uniq >> 8) & 0xFF, (uniq >> 16) & 0xFF
    key = (r.astype(np.int64) << 16) | (g.astype(np.int64) << 8) | b  # (r, g, b) order
    if top is not None and top < len(uniq):
        # the top-th largest count; every colour above it, and those at it by colour order
        kth = np.partition(counts, len(counts) - top)[len(counts) - top]
        pick = np.flatnonzero(counts >= kth)
        uniq, counts, key = uniq[pick], counts[pick], key[pick]
    order = np.lexsort((key, -counts))[:top]
    rgb = _unpack(uniq[order]).tolist()
    return [((r, g, b), n) for (r, g, b), n in zip(rgb, counts[order].tolist(), strict=True)]


def count_colors(rgba: npt.ArrayLike) -> int:
    """The number of distinct RGB colours of the painted pixels of a ``uint8 [H, W, 4]``."""
    return len(_color_counts(rgba)[0])


def _color_counts(rgba: npt.ArrayLike) -> tuple[npt.NDArray[np.uint32], IntArray]:
    packed = _packed_rgba(rgba)
    rgb = packed[packed >= 1 << 24] & 0xFFFFFF
    uniq, counts = np.unique(rgb, return_counts=True)
    return uniq, counts.astype(np.int64)


def resize_nearest(arr: npt.NDArray[np.generic], *, size: Sequence[int]) -> npt.NDArray[np.generic]:
    """Nearest-neighbour resize of ``[H, W, ...]`` to ``size = (h, w)``; exact for label maps.

    Output pixel ``i`` takes source pixel ``floor((i + 0.5) * H / h)`` (centres aligned, as
    Pillow's NEAREST and torch's ``nearest-exact``), computed in integers.
    """
    a = np.asarray(arr)
    h, w = _canvas(size)
    if a.ndim < 2 or (h * w > 0 and a.shape[0] * a.shape[1] == 0):
        raise ExportFormatError(f"cannot resize an array of shape {a.shape} to {(h, w)}")
    rows = (2 * np.arange(h) + 1) * a.shape[0] // (2 * max(h, 1))
    cols = (2 * np.arange(w) + 1) * a.shape[1] // (2 * max(w, 1))
    out: npt.NDArray[np.generic] = a[rows[:, None], cols[None, :]]
    return out


# --------------------------------------------------------------------- connected components


def connected_components(
    mask: npt.ArrayLike, *, connectivity: int = 8
) -> tuple[npt.NDArray[np.int32], int]:
    """Label the connected components of a ``bool [H, W]`` mask.

    Run-length union-find, vectorized: horizontal runs are the nodes, runs on adjacent
    rows that touch (share a column for 4-connectivity, also a corner for 8) are joined.

    Args:
        mask: ``[H, W]``, nonzero = foreground.
        connectivity: 8 (default, brush strokes touching at a corner are one) or 4.

    Returns:
        ``(labels, n)``: ``int32 [H, W]``, 0 background, ``1..n`` numbered in raster-scan
        order of each component's first pixel; and the number of components ``n``.
    """
    if connectivity not in (4, 8):
        raise ExportFormatError(f"connectivity must be 4 or 8, got {connectivity!r}")
    m = np.asarray(mask).astype(bool, copy=False)
    if m.ndim != 2:
        raise ExportFormatError(f"expected a [H, W] mask, got shape {m.shape}")
    H, W = m.shape
    S = W + 1  # rows padded by one background column, so runs never wrap onto the next row
    padded = np.zeros((H, S), dtype=np.int8)
    padded[:, :W] = m
    step = np.diff(padded.reshape(-1), prepend=np.int8(0))
    starts, ends = np.flatnonzero(step == 1), np.flatnonzero(step == -1)  # ends exclusive
    n_runs = starts.size
    # Run b on the next row touches run a iff b.start < a.end + k and b.end > a.start - k,
    # i.e. in padded flat indices b.start < a.end + S + k and b.end > a.start + S - k.
    k = 1 if connectivity == 8 else 0
    lo = np.searchsorted(ends, starts + S - k, side="right")
    hi = np.searchsorted(starts, ends + S + k, side="left")
    count = np.maximum(hi - lo, 0)
    u = np.repeat(np.arange(n_runs), count)
    v = np.repeat(lo, count) + np.arange(u.size) - np.repeat(np.cumsum(count) - count, count)
    parent = np.arange(n_runs)
    while u.size:
        pu, pv = parent[u], parent[v]
        live = pu != pv
        u, v, pu, pv = u[live], v[live], pu[live], pv[live]
        # Hook the larger root under the smaller: the root of a component ends up as its
        # first run in raster order, which gives the numbering for free.
        np.minimum.at(parent, np.maximum(pu, pv), np.minimum(pu, pv))
        while True:  # pointer jumping until every run points at its root
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    is_root = parent == np.arange(n_runs)
    run_label = np.cumsum(is_root, dtype=np.int32)[parent]
    flat = np.zeros(H * S, dtype=np.int32)
    flat[starts] = run_label
    flat[ends] = -run_label  # an end is a background pixel, never another run's start
    labels = np.cumsum(flat, dtype=np.int32).reshape(H, S)[:, :W]
    return np.ascontiguousarray(labels), int(is_root.sum())


def components_to_crops(
    labels: npt.NDArray[np.integer], *, count: int
) -> tuple[list[BoolArray], list[Offset]]:
    """Split a label map from :func:`connected_components` into per-component crops.

    Args:
        labels: ``int [H, W]``, 0 background, ``1..count`` components.
        count: the number of components.

    Returns:
        ``(crops, offsets)``: for label ``k`` (at index ``k - 1``) the ``bool`` crop of its
        tight box and its ``(y0, x0)``; feed to :func:`masks_from_crops`, and use
        ``(x0, y0, x0 + w, y0 + h)`` as its XYXY box.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ExportFormatError(f"expected a [H, W] label map, got shape {lab.shape}")
    ys, xs = np.nonzero(lab)
    ids = lab[ys, xs].astype(np.int64)
    if ids.size and (ids.min() < 1 or ids.max() > count):
        raise ExportFormatError(f"labels must be in 0..{count}, got {ids.min()}..{ids.max()}")
    big = np.iinfo(np.int64).max
    y0, x0 = np.full(count + 1, big), np.full(count + 1, big)
    y1, x1 = np.full(count + 1, -1), np.full(count + 1, -1)
    np.minimum.at(y0, ids, ys)
    np.minimum.at(x0, ids, xs)
    np.maximum.at(y1, ids, ys)
    np.maximum.at(x1, ids, xs)
    crops: list[BoolArray] = []
    offsets: list[Offset] = []
    for k in range(1, count + 1):
        if y1[k] < 0:
            crops.append(np.zeros((0, 0), dtype=bool))
            offsets.append((0, 0))
            continue
        crops.append(lab[y0[k] : y1[k] + 1, x0[k] : x1[k] + 1] == k)
        offsets.append((int(y0[k]), int(x0[k])))
    return crops, offsets
