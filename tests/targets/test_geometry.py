"""Tests of ango_torch.targets.geometry: rasterization against pycocotools, exact small cases,
brush colour maps, connected components against a brute-force flood fill."""

from __future__ import annotations

import importlib.util
import math
import warnings
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from ango_torch.errors import AngoTorchError, ExportFormatError
from ango_torch.targets import brush as br
from ango_torch.targets import geometry as g

ROOT = Path(__file__).resolve().parents[2]
PYCOCOTOOLS_NUMPY2 = "__array__ implementation doesn't accept a copy keyword"
CANVASES = [(11, 17), (61, 97)]  # (height, width), odd and non-square: a swap fails loudly

# ----------------------------------------------------------------------------- references


def coco_mask(
    regions: Sequence[npt.ArrayLike], holes: Sequence[npt.ArrayLike], size: tuple[int, int]
) -> npt.NDArray[np.bool_]:
    """pycocotools' rasterization: union of regions minus union of holes."""
    mask_api = pytest.importorskip("pycocotools.mask")
    h, w = size

    def union(rings: Sequence[npt.ArrayLike]) -> npt.NDArray[np.bool_]:
        if not rings:
            return np.zeros((h, w), dtype=bool)
        flat = [np.asarray(r, dtype=np.float64).ravel().tolist() for r in rings]
        with warnings.catch_warnings():  # pycocotools' Cython vs numpy 2, not our code
            warnings.filterwarnings("ignore", PYCOCOTOOLS_NUMPY2, DeprecationWarning)
            rle = mask_api.merge(mask_api.frPyObjects(flat, h, w))
            decoded: npt.NDArray[np.bool_] = mask_api.decode(rle).astype(bool)
            return decoded

    return union(regions) & ~union(holes)


def boundary_distance(points: npt.NDArray[np.float64], rings: Sequence[npt.ArrayLike]) -> float:
    """Largest distance from ``points`` ([P, 2]) to the nearest edge of any ring."""
    best = np.full(len(points), np.inf)
    for ring in rings:
        a = np.asarray(ring, dtype=np.float64)
        ab = np.roll(a, -1, axis=0) - a
        ap = points[:, None, :] - a[None]
        t = np.clip((ap * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0, 1)
        d = ap - t[..., None] * ab
        best = np.minimum(best, np.sqrt((d * d).sum(-1)).min(axis=1))
    return float(best.max()) if len(points) else 0.0


def star_polygon(rng: np.random.Generator, size: tuple[int, int]) -> npt.NDArray[np.float64]:
    """A random star-shaped (often concave) polygon, sometimes partly off the canvas."""
    h, w = size
    n = int(rng.integers(3, 24))
    radius = rng.uniform(0.3, 0.6) * min(h, w)
    cx, cy = rng.uniform([-0.2 * w, -0.2 * h], [1.2 * w, 1.2 * h])
    t = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = radius * rng.uniform(0.7, 1.0, n)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def rotated_box(cx: float, cy: float, w: float, h: float, deg: float) -> list[list[float]]:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    half = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    return [[cx + x * c - y * s, cy + x * s + y * c] for x, y in half]


HAND_MADE: dict[str, list[list[float]]] = {  # on the 61 x 97 canvas
    "convex-hexagon": [[20, 10], [50, 8], [70, 25], [60, 50], [30, 55], [12, 35]],
    "concave-L": [[10, 10], [40, 10], [40, 25], [25, 25], [25, 50], [10, 50]],
    "concave-arrow": [[10, 30], [50, 5], [40, 28], [90, 30], [40, 33], [50, 56]],
    "self-intersecting-star": [[50, 5], [61, 55], [25, 18], [80, 18], [39, 55]],
    "partly-outside": [[-20.5, -10.2], [40.3, -5.7], [30.1, 30.9], [-5.4, 45.5]],
    "float-coords": [[12.37, 8.91], [47.03, 11.52], [52.77, 39.18], [18.61, 44.05]],
    "rotated-box-30": rotated_box(48.3, 30.1, 50.0, 20.0, 30.0),
    "rotated-box-117": rotated_box(20.7, 40.2, 30.0, 12.5, 117.0),
    "rotated-box-off-canvas": rotated_box(90.0, 55.0, 40.0, 25.0, -20.0),
}
TINY: dict[
    str, list[list[float]]
] = {  # on the 11 x 17 canvas: too small for a meaningful IoU, checked at the boundary
    "tiny-triangle": [[3.2, 2.1], [5.9, 2.4], [4.1, 4.8]],
    "tiny-square": [[7.5, 7.5], [9.5, 7.5], [9.5, 9.5], [7.5, 9.5]],
    "sliver": [[1.0, 1.0], [15.0, 2.0], [1.0, 1.8]],
    "tiny-rotated-box": rotated_box(12.0, 5.0, 3.0, 2.0, 45.0),
}


# ------------------------------------------------------------- polygons vs pycocotools


def test_polygon_masks_match_pycocotools() -> None:
    """Per-instance IoU against pycocotools (``frPyObjects`` + ``merge`` + ``decode``).

    The reference numbers come from pycocotools, which rasterizes on a 5x supersampled
    grid and so only approximates the pixel-centre rule: instances of >= 100 pixels must
    reach IoU >= 0.95 each and a median >= 0.98 (measured: min 0.965, the thin
    rotated-box-117, median 0.995, over 110 instances). Every pixel where the two
    disagree, at any size, tiny shapes included, must have its centre within 0.5 px of
    the polygon's boundary (measured: <= 0.23 px).
    """
    rng = np.random.default_rng(20240601)
    cases: list[tuple[str, tuple[int, int], npt.NDArray[np.float64]]] = []
    for size in CANVASES:
        cases += [(f"random-{size}-{i}", size, star_polygon(rng, size)) for i in range(120)]
    cases += [(name, (61, 97), np.asarray(p, dtype=np.float64)) for name, p in HAND_MADE.items()]
    cases += [(name, (11, 17), np.asarray(p, dtype=np.float64)) for name, p in TINY.items()]

    ious: dict[str, float] = {}
    farthest = 0.0
    for name, size, poly in cases:
        ours = g.polygon_to_mask(poly, canvas_size=size)
        ref = coco_mask([poly], [], size)
        assert ours.shape == size and ours.dtype == bool
        ys, xs = np.nonzero(ours ^ ref)
        far = boundary_distance(np.stack([xs + 0.5, ys + 0.5], axis=1), [poly])
        assert far <= 0.5, f"{name}: a differing pixel lies {far:.2f} px from the boundary"
        farthest = max(farthest, far)
        if (ours | ref).sum() >= 100:
            ious[name] = float((ours & ref).sum() / (ours | ref).sum())

    worst = min(ious, key=ious.__getitem__)
    median = float(np.median(list(ious.values())))
    summary = f"IoU vs pycocotools over {len(ious)} instances: min {ious[worst]:.4f} ({worst}), "
    summary += f"median {median:.4f}; differing pixels <= {farthest:.2f} px from the boundary"
    print(summary)
    assert set(HAND_MADE) <= set(ious), summary
    assert ious[worst] >= 0.95, summary
    assert median >= 0.98, summary


@pytest.mark.parametrize("size", CANVASES, ids=["17x11", "97x61"])
def test_segmentation_matches_pycocotools(size: tuple[int, int]) -> None:
    """Region minus hole, against pycocotools' union(regions) & ~union(holes)."""
    h, w = size
    region = [[0.3 * w, 0.1 * h], [0.95 * w, 0.2 * h], [0.8 * w, 0.9 * h], [0.1 * w, 0.8 * h]]
    hole = [[0.4 * w, 0.35 * h], [0.7 * w, 0.4 * h], [0.55 * w, 0.7 * h]]
    ours = g.segmentation_to_mask([(region, [hole])], canvas_size=size)
    ref = coco_mask([region], [hole], size)
    ys, xs = np.nonzero(ours ^ ref)
    assert boundary_distance(np.stack([xs + 0.5, ys + 0.5], axis=1), [region, hole]) <= 0.5


# ---------------------------------------------------------------- exact, hand-checked


def grid(rows: Sequence[str]) -> npt.NDArray[np.bool_]:
    return np.array([[c == "#" for c in row] for row in rows], dtype=bool)


EXACT = [
    pytest.param(
        [[1, 1], [3, 1], [3, 2], [1, 2]],
        ["......", ".##...", "......", "......", "......"],
        id="unit-squares-on-pixel-edges",
    ),
    pytest.param(  # centres on the left/top edge are inside, on the right/bottom outside
        [[0.5, 0.5], [2.5, 0.5], [2.5, 2.5], [0.5, 2.5]],
        ["##....", "##....", "......", "......", "......"],
        id="centres-on-edges-half-open",
    ),
    pytest.param(
        [[0.49, 0.49], [2.51, 0.49], [2.51, 2.51], [0.49, 2.51]],
        ["###...", "###...", "###...", "......", "......"],
        id="centres-just-inside",
    ),
    pytest.param(  # hypotenuse x + y = 4: centre (x+.5, y+.5) inside iff x + y <= 2
        [[0, 0], [4, 0], [0, 4]],
        ["###...", "##....", "#.....", "......", "......"],
        id="triangle",
    ),
    pytest.param(
        [[2, -1], [9, -1], [9, 7], [2, 7]][::-1],
        ["..####", "..####", "..####", "..####", "..####"],
        id="clockwise-and-clipped",
    ),
    pytest.param(  # a vertex on a centre row counts once; top and bottom tips are ties
        [[2.5, 0.5], [4.5, 2.5], [2.5, 4.5], [0.5, 2.5]],
        ["......", ".##...", "####..", ".##...", "......"],
        id="diamond-vertices-on-centres",
    ),
    pytest.param(
        [[-1e12, -1e12], [1e12, -1e12], [1e12, 1e12], [-1e12, 1e12]],
        ["######"] * 5,
        id="huge-coords-cover-canvas",
    ),
    pytest.param([[1, 1], [4, 1]], ["......"] * 5, id="two-points-empty"),
    pytest.param([[1, 1], [3, 3], [5, 5]], ["......"] * 5, id="collinear-empty"),
    pytest.param([], ["......"] * 5, id="no-points-empty"),
    pytest.param([[-9, -9], [-1, -9], [-1, -1]], ["......"] * 5, id="fully-outside"),
]


@pytest.mark.parametrize(("points", "expected"), EXACT)
def test_polygon_exact(points: list[list[float]], expected: list[str]) -> None:
    assert np.array_equal(g.polygon_to_mask(points, canvas_size=(5, 6)), grid(expected))


def test_hole_pixels_are_zero() -> None:
    mask = g.segmentation_to_mask(
        [([[0, 0], [6, 0], [6, 5], [0, 5]], [[[2, 1], [4, 1], [4, 3], [2, 3]]])],
        canvas_size=(5, 7),
    )
    assert np.array_equal(mask, grid(["######.", "##..##.", "##..##.", "######.", "######."]))


def test_zones_union_and_holes_belong_to_their_zone() -> None:
    left = [[0, 0], [4, 0], [4, 3], [0, 3]]
    right = [[2, 1], [7, 1], [7, 4], [2, 4]]
    cut_right = [[5, 2], [6, 2], [6, 3], [5, 3]]  # a hole of the right zone only
    cut_left = [[1, 1], [3, 1], [3, 2], [1, 2]]  # inside the left zone, also under right
    mask = g.segmentation_to_mask([(left, [cut_left]), (right, [cut_right])], canvas_size=(5, 8))
    assert np.array_equal(mask, grid(["####....", "#.#####.", "#####.#.", "..#####.", "........"]))


def test_hole_outside_region_does_nothing() -> None:
    square = [[1, 1], [4, 1], [4, 4], [1, 4]]
    far_hole = [[6, 0], [8, 0], [8, 2]]
    with_hole = g.segmentation_to_mask([(square, [far_hole])], canvas_size=(5, 9))
    assert np.array_equal(with_hole, g.polygon_to_mask(square, canvas_size=(5, 9)))


def test_shared_edge_claims_each_pixel_once() -> None:
    """Two triangles splitting a quad along a float diagonal tile it exactly."""
    a, b, c, d = [1.3, 0.7], [14.2, 1.9], [13.6, 9.4], [0.8, 10.1]
    size = (11, 17)
    upper = g.polygon_to_mask([a, b, c], canvas_size=size)
    lower = g.polygon_to_mask([a, c, d], canvas_size=size)
    whole = g.polygon_to_mask([a, b, c, d], canvas_size=size)
    assert not (upper & lower).any()
    assert np.array_equal(upper | lower, whole)


def test_rasterize_crop_offsets_and_empty() -> None:
    size = (11, 17)
    crop, (y0, x0) = g.rasterize_crop(
        [[[3.2, 2.6], [9.9, 2.6], [9.9, 7.1], [3.2, 7.1]]], canvas_size=size
    )
    # centres 3.5..6.5 lie in [2.6, 7.1), centres 3.5..9.5 in [3.2, 9.9)
    assert (y0, x0) == (3, 3) and crop.shape == (4, 7) and crop.all()
    crop, offset = g.rasterize_crop([[[-5, -5], [3, -5], [3, 3], [-5, 3]]], canvas_size=size)
    assert offset == (0, 0) and crop.shape == (3, 3) and crop.all()
    for rings in ([], [[[1, 1], [2, 2]]], [[[20, 20], [30, 20], [30, 30]]]):
        crop, offset = g.rasterize_crop(rings, canvas_size=size)
        assert crop.shape == (0, 0) and offset == (0, 0)
    mask = g.crop_to_mask(*g.rasterize_crop([], canvas_size=size), canvas_size=size)
    assert mask.shape == size and not mask.any()


def test_region_rings_union_each_even_odd() -> None:
    """Overlapping region rings are unioned, not xor-ed, unlike the rings of one polygon."""
    a = [[0, 0], [4, 0], [4, 4], [0, 4]]
    b = [[2, 2], [6, 2], [6, 5], [2, 5]]
    crop, offset = g.rasterize_crop([a, b], canvas_size=(5, 7))
    union = g.polygon_to_mask(a, canvas_size=(5, 7)) | g.polygon_to_mask(b, canvas_size=(5, 7))
    assert np.array_equal(g.crop_to_mask(crop, offset, canvas_size=(5, 7)), union)


def test_masks_from_crops_and_rotated_box() -> None:
    size = (61, 97)
    polys = [np.asarray(p) for p in HAND_MADE.values()]
    pairs = [g.rasterize_crop([p], canvas_size=size) for p in polys]
    masks = g.masks_from_crops([c for c, _ in pairs], [o for _, o in pairs], canvas_size=size)
    assert masks.shape == (len(polys), *size) and masks.dtype == bool
    for mask, poly in zip(masks, polys, strict=True):
        assert np.array_equal(mask, g.polygon_to_mask(poly, canvas_size=size))
    corners = HAND_MADE["rotated-box-30"]
    assert np.array_equal(
        g.rotated_box_to_mask(corners, canvas_size=size),
        g.polygon_to_mask(corners, canvas_size=size),
    )
    assert g.masks_from_crops([], [], canvas_size=size).shape == (0, *size)


def test_paste_crop_ors_in_place() -> None:
    canvas = np.zeros((5, 6), dtype=bool)
    canvas[0, 0] = True
    g.paste_crop(canvas, np.ones((2, 3), dtype=bool), (3, 3))
    assert canvas.sum() == 7 and canvas[0, 0] and canvas[3:, 3:].all()


# ---------------------------------------------------------------------------- boxes


def test_box_conversions() -> None:
    xywh = np.array([[10, 20, 5, 8], [10, 20, -5, -8], [3.5, 1.0, 0, -2]])
    assert np.allclose(
        g.normalize_xywh(xywh), np.array([[10, 20, 5, 8], [5, 12, 5, 8], [3.5, -1, 0, 2]])
    )
    assert np.allclose(
        g.xywh_to_xyxy(xywh), np.array([[10, 20, 15, 28], [5, 12, 10, 20], [3.5, -1, 3.5, 1]])
    )
    assert g.xywh_to_xyxy(np.zeros((0, 4))).shape == (0, 4)
    clipped = g.clip_xyxy([[-3, 2, 20, 9], [1, -1, 5, 30]], canvas_size=(11, 17))
    assert np.allclose(clipped, [[0, 2, 17, 9], [1, 0, 5, 11]])
    assert g.polygon_bounds([[[1, 2], [5, -1]], [[3, 7.5]]]) == (1.0, -1.0, 5.0, 7.5)
    assert g.polygon_bounds(np.array([[1.5, 2.0], [0.5, 4.0]])) == (0.5, 2.0, 1.5, 4.0)


def test_mask_to_box() -> None:
    mask = np.zeros((11, 17), dtype=bool)
    mask[3:6, 9] = True
    mask[4, 2] = True
    assert g.mask_to_box(mask) == (2, 3, 10, 6)
    assert g.mask_to_box(np.zeros((11, 17), dtype=bool)) == (0, 0, 0, 0)


# ---------------------------------------------------------------------------- brush

RED, BLUE, GREEN = (244, 67, 54), (33, 150, 243), (76, 175, 80)


def rgba(
    pixels: dict[tuple[int, int], tuple[int, int, int, int]], size: tuple[int, int]
) -> npt.NDArray[np.uint8]:
    img = np.zeros((*size, 4), dtype=np.uint8)
    for (y, x), value in pixels.items():
        img[y, x] = value
    return img


def test_brush_exact_and_nearest_colours() -> None:
    img = rgba(
        {
            (0, 0): (*RED, 255),
            (0, 1): (*BLUE, 255),
            (1, 2): (*GREEN, 255),
            (2, 3): (240, 70, 50, 128),  # antialiased red, half transparent
            (3, 4): (30, 160, 240, 255),  # near blue
            (4, 5): (*RED, 0),  # transparent: not painted even with a class colour
            (5, 6): (0, 0, 0, 0),
        },
        (7, 9),
    )
    class_map, inexact = br.brush_to_class_map(img, colors=[RED, BLUE, GREEN])
    expected = np.zeros((7, 9), dtype=np.int64)
    expected[0, 0], expected[0, 1], expected[1, 2], expected[2, 3], expected[3, 4] = 1, 2, 3, 1, 2
    assert class_map.dtype == np.int64 and np.array_equal(class_map, expected)
    assert inexact == 2


def test_brush_unpainted_and_no_colours() -> None:
    class_map, inexact = br.brush_to_class_map(np.zeros((3, 5, 4), np.uint8), colors=[])
    assert class_map.shape == (3, 5) and not class_map.any() and inexact == 0


def test_brush_matches_brute_force_on_random_image() -> None:
    rng = np.random.default_rng(3)
    palette = np.array([RED, BLUE, GREEN, (255, 235, 59)], dtype=np.int64)
    img = rng.integers(0, 256, (23, 31, 4)).astype(np.uint8)
    img[..., 3] *= rng.random((23, 31)) < 0.6
    exact = rng.random((23, 31)) < 0.5
    img[exact, :3] = palette[rng.integers(0, 4, int(exact.sum()))]
    colors = [tuple(c) for c in palette.tolist()]
    diff = img[..., None, :3].astype(np.int64) - palette
    d = (diff**2).sum(-1)
    painted = img[..., 3] > 0
    class_map, inexact = br.brush_to_class_map(img, colors=colors, tolerance=None)
    assert np.array_equal(class_map, np.where(painted, d.argmin(-1) + 1, 0))
    assert inexact == int((painted & (d.min(-1) > 0)).sum())
    # with the default tolerance: the nearest colour among those within it, else -1
    near = np.abs(diff).max(-1) <= br.BRUSH_TOLERANCE
    d_near = np.where(near, d, np.iinfo(np.int64).max)
    listed = near.any(-1)
    class_map, inexact = br.brush_to_class_map(img, colors=colors)
    expected = np.where(listed, d_near.argmin(-1) + 1, -1)
    assert np.array_equal(class_map, np.where(painted, expected, 0))
    assert inexact == int((painted & listed & (d.min(-1) > 0)).sum())


def test_distinct_colors() -> None:
    img = rgba(
        {(0, 0): (*RED, 255), (0, 1): (*RED, 200), (1, 1): (*BLUE, 255), (2, 2): (*GREEN, 0)},
        (3, 4),
    )
    assert br.distinct_colors(img) == [(RED, 2), (BLUE, 1)]
    assert br.distinct_colors(np.zeros((3, 4, 4), np.uint8)) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#f44336", (244, 67, 54)),
        ("F44336", (244, 67, 54)),
        ("#FfF", (255, 255, 255)),
        ("0a0", (0, 170, 0)),
        (" #000000 ", (0, 0, 0)),
    ],
    ids=["hash-6", "bare-upper-6", "hash-3-mixed", "bare-3", "whitespace"],
)
def test_parse_hex_color(text: str, expected: tuple[int, int, int]) -> None:
    assert br.parse_hex_color(text) == expected


# --------------------------------------------------------------- connected components


def flood_fill(mask: npt.NDArray[np.bool_], connectivity: int) -> tuple[npt.NDArray[np.int32], int]:
    h, w = mask.shape
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if connectivity == 8:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    labels = np.zeros((h, w), dtype=np.int32)
    n = 0
    for y in range(h):  # raster order: numbering by each component's first pixel
        for x in range(w):
            if mask[y, x] and not labels[y, x]:
                n += 1
                labels[y, x] = n
                queue = deque([(y, x)])
                while queue:
                    cy, cx = queue.popleft()
                    for dy, dx in steps:
                        ny, nx = cy + dy, cx + dx
                        if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not labels[ny, nx]:
                            labels[ny, nx] = n
                            queue.append((ny, nx))
    return labels, n


@pytest.mark.parametrize("connectivity", [4, 8], ids=["4-connected", "8-connected"])
def test_connected_components_match_flood_fill(connectivity: int) -> None:
    rng = np.random.default_rng(connectivity)
    for _ in range(60):
        h, w = rng.integers(1, 29, 2)
        mask = rng.random((h, w)) < rng.uniform(0.2, 0.8)
        labels, n = br.connected_components(mask, connectivity=connectivity)
        ref, ref_n = flood_fill(mask, connectivity)
        assert labels.dtype == np.int32 and n == ref_n and np.array_equal(labels, ref)


def test_connected_components_cases() -> None:
    diagonal = np.eye(4, dtype=bool)
    assert br.connected_components(diagonal)[1] == 1
    assert br.connected_components(diagonal, connectivity=4)[1] == 4
    labels, n = br.connected_components(np.zeros((3, 5), dtype=bool))
    assert n == 0 and labels.shape == (3, 5) and not labels.any()
    labels, n = br.connected_components(np.zeros((0, 5), dtype=bool))
    assert n == 0 and labels.shape == (0, 5)
    u_shape = grid(["#.#", "#.#", "###"])  # joins at the bottom: one label from the top
    labels, n = br.connected_components(u_shape)
    assert n == 1 and set(np.unique(labels)) == {0, 1}


def test_components_to_crops_round_trip() -> None:
    rng = np.random.default_rng(5)
    mask = rng.random((11, 17)) < 0.35
    labels, n = br.connected_components(mask)
    crops, offsets = br.components_to_crops(labels, count=n)
    masks = g.masks_from_crops(crops, offsets, canvas_size=(11, 17))
    for k in range(n):
        assert np.array_equal(masks[k], labels == k + 1)
        y0, x0 = offsets[k]
        box = (x0, y0, x0 + crops[k].shape[1], y0 + crops[k].shape[0])
        assert g.mask_to_box(masks[k]) == box


# ---------------------------------------------------------------------------- resize


def test_resize_nearest() -> None:
    labels = np.arange(11 * 17, dtype=np.int64).reshape(11, 17)
    assert np.array_equal(br.resize_nearest(labels, size=(11, 17)), labels)
    up = br.resize_nearest(labels, size=(22, 34))
    assert np.array_equal(up, labels.repeat(2, axis=0).repeat(2, axis=1))
    down = br.resize_nearest(up, size=(11, 17))
    assert np.array_equal(down, labels)
    img = np.zeros((4, 6, 4), dtype=np.uint8)
    assert br.resize_nearest(img, size=(7, 3)).shape == (7, 3, 4)


@pytest.mark.parametrize("size", [(11, 17), (5, 9), (23, 40), (61, 97)], ids=str)
def test_resize_nearest_matches_pillow(size: tuple[int, int]) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, (19, 29), dtype=np.uint8)
    ref = np.asarray(Image.fromarray(src).resize(size[::-1], Image.Resampling.NEAREST))
    assert np.array_equal(br.resize_nearest(src, size=size), ref)


# ------------------------------------------------------------------------ bad inputs


G: Any = g  # the bad-input table calls with deliberately wrong types


BAD = [
    pytest.param(
        lambda: G.polygon_to_mask([[0, 0], [np.nan, 1], [2, 2]], canvas_size=(5, 5)),
        ExportFormatError,
        id="nan-vertex",
    ),
    pytest.param(
        lambda: G.polygon_to_mask([[0, 0], [np.inf, 1], [2, 2]], canvas_size=(5, 5)),
        ExportFormatError,
        id="inf-vertex",
    ),
    pytest.param(
        lambda: G.polygon_to_mask([[0, 0, 1], [1, 1, 1]], canvas_size=(5, 5)),
        ExportFormatError,
        id="three-columns",
    ),
    pytest.param(
        lambda: G.rasterize_crop([[[0, 0], [1]]], canvas_size=(11, 17)),
        ExportFormatError,
        id="ragged-ring",
    ),
    pytest.param(
        lambda: G.rasterize_crop([["a", "b"]], canvas_size=(11, 17)),
        ExportFormatError,
        id="strings",
    ),
    pytest.param(
        lambda: G.segmentation_to_mask(
            [([[0, 0], [3, 0], [3, 3]], [[[1, 1], [np.nan, 1], [2, 2]]])], canvas_size=(5, 5)
        ),
        ExportFormatError,
        id="nan-in-hole",
    ),
    pytest.param(
        lambda: G.segmentation_to_mask([[[0, 0]]], canvas_size=(5, 5)),
        ExportFormatError,
        id="zone-not-a-pair",
    ),
    pytest.param(
        lambda: G.polygon_to_mask([[0, 0], [1, 0], [1, 1]], canvas_size=(-1, 5)),
        ExportFormatError,
        id="negative-canvas",
    ),
    pytest.param(
        lambda: G.polygon_to_mask([[0, 0], [1, 0], [1, 1]], canvas_size=(5,)),
        ExportFormatError,
        id="canvas-one-dim",
    ),
    pytest.param(
        lambda: G.polygon_to_mask([[0, 0], [1, 0], [1, 1]], canvas_size=(5.0, 5)),
        ExportFormatError,
        id="canvas-float",
    ),
    pytest.param(
        lambda: G.rotated_box_to_mask([[0, 0], [1, 0], [1, 1]], canvas_size=(5, 5)),
        ExportFormatError,
        id="rotated-box-3-corners",
    ),
    pytest.param(lambda: G.polygon_bounds([]), ExportFormatError, id="bounds-of-nothing"),
    pytest.param(lambda: G.xywh_to_xyxy([[0, 0, np.nan, 1]]), ExportFormatError, id="nan-box"),
    pytest.param(lambda: G.xywh_to_xyxy([1, 2, 3]), ExportFormatError, id="box-not-4"),
    pytest.param(
        lambda: G.paste_crop(np.zeros((3, 3), bool), np.ones((2, 2), bool), (2, 0)),
        ExportFormatError,
        id="crop-off-canvas",
    ),
    pytest.param(
        lambda: G.masks_from_crops([np.ones((1, 1), bool)], [], canvas_size=(3, 3)),
        ExportFormatError,
        id="crops-offsets-mismatch",
    ),
    pytest.param(
        lambda: G.mask_to_box(np.zeros((2, 2, 2), bool)), ExportFormatError, id="box-of-3d-mask"
    ),
    pytest.param(lambda: br.parse_hex_color("#12345"), ExportFormatError, id="hex-5-digits"),
    pytest.param(lambda: br.parse_hex_color("#ggg"), ExportFormatError, id="hex-not-hex"),
    pytest.param(lambda: br.parse_hex_color(""), ExportFormatError, id="hex-empty"),
    pytest.param(
        lambda: br.parse_hex_color(0xF44336),
        ExportFormatError,
        id="hex-int",
    ),
    pytest.param(
        lambda: br.brush_to_class_map(np.zeros((3, 3, 3), np.uint8), colors=[RED]),
        ExportFormatError,
        id="brush-rgb-not-rgba",
    ),
    pytest.param(
        lambda: br.brush_to_class_map(np.zeros((3, 3, 4), np.float32), colors=[RED]),
        ExportFormatError,
        id="brush-float",
    ),
    pytest.param(
        lambda: br.brush_to_class_map(np.zeros((3, 3, 4), np.uint8), colors=[RED, RED]),
        ExportFormatError,
        id="brush-duplicate-colours",
    ),
    pytest.param(
        lambda: br.brush_to_class_map(np.zeros((3, 3, 4), np.uint8), colors=[(256, 0, 0)]),
        ExportFormatError,
        id="brush-colour-out-of-range",
    ),
    pytest.param(
        lambda: br.brush_to_class_map(np.full((3, 3, 4), 255, np.uint8), colors=[]),
        ExportFormatError,
        id="brush-painted-no-colours",
    ),
    pytest.param(
        lambda: br.connected_components(np.ones((3, 3), bool), connectivity=6),
        ExportFormatError,
        id="connectivity-6",
    ),
    pytest.param(
        lambda: br.connected_components(np.ones(3, bool)), ExportFormatError, id="components-1d"
    ),
    pytest.param(
        lambda: br.components_to_crops(np.full((2, 2), 3), count=2),
        ExportFormatError,
        id="label-above-count",
    ),
    pytest.param(
        lambda: br.resize_nearest(np.zeros(5), size=(2, 2)), ExportFormatError, id="resize-1d"
    ),
    pytest.param(
        lambda: br.resize_nearest(np.zeros((0, 5)), size=(2, 2)),
        ExportFormatError,
        id="resize-empty-to-nonempty",
    ),
]


@pytest.mark.parametrize(("call", "error"), BAD)
def test_bad_input(call: object, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        call()  # type: ignore[operator]
    assert isinstance(info.value, AngoTorchError) and isinstance(info.value, ValueError)


# -------------------------------------------------------------------------- benchmark


@pytest.mark.filterwarnings(f"ignore:{PYCOCOTOOLS_NUMPY2}:DeprecationWarning")
def test_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pycocotools")
    spec = importlib.util.spec_from_file_location("raster_bench", ROOT / "benchmarks" / "raster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--smoke"])
    assert "pycocotools" in capsys.readouterr().out
