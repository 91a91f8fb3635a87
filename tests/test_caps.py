"""Bounded memory and time on hostile sizes (issue 9, item 2) and out-of-range numbers
(item 1): declared canvases, instance-mask stacks, brush colours and components, and
timestamps/coordinates beyond 64 bits or any float.

The bombs are made small by lowering the limits (``ango_torch.limits.override`` or
``ANGO_TORCH_LIMITS`` for the CLI).  Expected sizes are hand-computed from the canvases
and patterns each test builds (``2000 × 2000 = 4,000,000`` pixels, ``3 × 11 × 17``
bytes, a 20 × 20 grid of isolated pixels = 400 components); distinct colours are counted
with a Python ``set`` of pixel tuples; RLE is checked by decoding it with pycocotools;
clipped polygons against a ray-casting point-in-polygon reference written here; memory
with ``tracemalloc`` or, for torch tensors and pycocotools, a subprocess's peak RSS or
address-space limit.  Also: far-out polygon vertices (to_coco, evaluate_coco) and the
preview's mask copies.
"""

from __future__ import annotations

import json
import time
import tracemalloc
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builders import (
    H,
    W,
    brush_path,
    make_asset,
    make_box,
    make_polygon,
    make_segmentation,
    write_brush,
    write_images,
)
from PIL import Image

from ango_torch import AngoDataset, AngoTorchWarning, load_export, to_coco
from ango_torch.cli import main
from ango_torch.errors import AngoTorchError, ExportFormatError, LimitError
from ango_torch.limits import ENV, Limits, override

BIG = 2000  # declared side of the small bombs: 2000 × 2000 = 4,000,000 pixels
LOW = 1_000_000  # the lowered max_canvas_pixels they go beyond
RED = "#f44336"
ONTOLOGY = {
    "tools": [
        {"title": "car", "tool": "polygon"},
        {"title": "road", "tool": "brush", "color": RED},
    ]
}


def _holed() -> dict[str, Any]:
    """A segmentation with a hole (to_coco encodes it as RLE on the full canvas)."""
    outer = [[1, 1], [15, 1], [15, 9], [1, 9]]
    return make_segmentation([{"region": outer, "holes": [[[4, 3], [8, 3], [8, 6], [4, 6]]]}])


def _claiming(side: int, n: int = 3) -> list[dict[str, Any]]:
    """``n`` assets whose metadata claims ``side × side`` pixels, with small objects."""
    return [
        make_asset(
            [make_polygon([[1, 1], [9, 1], [5, 8]]), make_box(2, 2, 4, 3, "person"), _holed()],
            width=side,
            height=side,
        )
        for _ in range(n)
    ]


def _write(tmp_path: Path, assets: list[dict[str, Any]]) -> Path:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(assets))
    return path


def _quiet_dataset(*args: Any, **kw: Any) -> AngoDataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AngoTorchWarning)  # expiry/brush notes: not tested
        return AngoDataset(*args, **kw)


# --------------------------------------------------------------------------- canvases


def test_to_coco_refuses_a_declared_canvas_over_the_limit(tmp_path: Path) -> None:
    assets = _claiming(BIG)
    with override(max_canvas_pixels=LOW):
        ds = _quiet_dataset(assets, task="instance", root=tmp_path)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(LimitError) as err:
            to_coco(ds)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 5
    assert peak < BIG * BIG // 4  # nothing near the 4 MB canvas was allocated
    message = str(err.value)
    # asset #0 is the first one met; its declared size and the limit are named
    assert f"'{assets[0]['externalId']}' (#0)" in message
    assert "metadata.width/height" in message and f"{BIG}×{BIG}" in message
    assert "4,000,000 pixels" in message and "max_canvas_pixels=1,000,000" in message
    # the same canvas passes once the limit is raised to its 4,000,000 pixels
    with override(max_canvas_pixels=BIG * BIG):
        ds = _quiet_dataset(assets, task="detection", root=tmp_path)
    assert len(to_coco(ds)["images"]) == 3


def test_the_default_limit_refuses_a_100000_square_claim_fast(tmp_path: Path) -> None:
    # 100,000² = 10^10 pixels, over the default 178,956,970 (2 × Pillow's MAX_IMAGE_PIXELS):
    # no limit lowered.  Polygons and boxes only, so that the code before the cap (which
    # rasterized crops only for them) returned instead of allocating 10 GB.
    assets = [
        make_asset([make_polygon([[1, 1], [9, 1], [5, 8]])], width=100_000, height=100_000)
        for _ in range(3)
    ]
    assert Limits().max_canvas_pixels == 2 * 89_478_485
    ds = _quiet_dataset(assets, task="instance", root=tmp_path)
    start = time.perf_counter()
    with pytest.raises(LimitError, match="100000×100000"):
        to_coco(ds)
    with pytest.raises(LimitError, match="10,000,000,000 pixels"):
        ds.load_target(1, (100_000, 100_000))
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("to", ["coco", "masks", "yolo"])
def test_convert_exits_2_on_a_declared_canvas_over_the_limit(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    to: str,
) -> None:
    assets = _claiming(BIG)
    path = _write(tmp_path, assets)
    monkeypatch.setenv(ENV, f"max_canvas_pixels={LOW}")
    out = tmp_path / ("gt.json" if to == "coco" else "out")
    args = ["convert", str(path), "--root", str(tmp_path), "--to", to, "--out", str(out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AngoTorchWarning)
        assert main(args) == 2
    err = capsys.readouterr().err
    assert "max_canvas_pixels" in err and assets[0]["externalId"] in err
    assert f"{BIG}×{BIG}" in err


def test_evaluate_exits_2_on_a_declared_canvas_over_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assets = _claiming(BIG)
    path = _write(tmp_path, assets)
    results = tmp_path / "results.json"
    results.write_text("[]")
    # Semantic predictions of the declared size (zeros: small PNGs), where the
    # evaluation looks for them: <externalId with .png>.
    preds = tmp_path / "preds"
    preds.mkdir()
    for a in assets:
        Image.fromarray(np.zeros((BIG, BIG), np.uint8)).save(preds / a["externalId"])
    monkeypatch.setenv(ENV, f"max_canvas_pixels={LOW}")
    common = ["evaluate", str(path), "--root", str(tmp_path)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AngoTorchWarning)
        assert main([*common, "--predictions", str(results)]) == 2
        assert "max_canvas_pixels" in capsys.readouterr().err
        assert main([*common, "--task", "semantic", "--predictions", str(preds)]) == 2
        assert "max_canvas_pixels" in capsys.readouterr().err


def test_load_target_and_decode_refuse_images_over_the_limit(tmp_path: Path) -> None:
    assets = [make_asset([make_polygon([[1, 1], [9, 1], [5, 8]])])]
    images = write_images(tmp_path / "images", assets)
    with override(max_canvas_pixels=H * W - 1):  # 11 × 17 = 187 pixels: one too many
        ds = _quiet_dataset(assets, task="semantic", root=images)
    with pytest.raises(LimitError, match="187 pixels"):
        ds.load_target(0, (H, W))
    with pytest.raises(AngoTorchError, match="187"):
        ds[0]  # the decoder refuses the image itself first
    with override(max_canvas_pixels=H * W):
        ok = _quiet_dataset(assets, task="semantic", root=images)
    assert tuple(ok[0][1]["mask"].shape) == (H, W)


def test_instance_mask_stacks_over_the_byte_budget_are_refused(tmp_path: Path) -> None:
    polygons = [make_polygon([[1, 1], [9, 1], [5, 8]]) for _ in range(3)]
    assets = [make_asset(polygons)]
    images = write_images(tmp_path / "images", assets)
    need = 3 * H * W  # 3 uint8 masks of 11 × 17 = 561 bytes
    with override(max_mask_bytes=need - 1):
        ds = _quiet_dataset(assets, task="instance", root=images)
    with pytest.raises(LimitError, match="561 bytes"):
        ds[0]
    with override(max_mask_bytes=need):
        ds = _quiet_dataset(assets, task="instance", root=images)
    assert tuple(ds[0][1]["masks"].shape) == (3, H, W)


# ------------------------------------------------------------------------------- brush


def _brush_asset(tmp_path: Path, rgba: np.ndarray[Any, Any]) -> tuple[dict[str, Any], Path]:
    h, w = rgba.shape[:2]
    asset = make_asset([make_polygon([[1, 1], [9, 1], [5, 8]], "car")], width=w, height=h)
    asset["task"]["brushDataUrl"] = "https://bucket.s3.amazonaws.com/brush.png"
    images = write_images(tmp_path / "images", [asset])
    target = brush_path(images, asset)
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgba, "RGBA").save(target)
    return asset, images


def test_a_noisy_brush_png_without_an_ontology_is_refused(tmp_path: Path) -> None:
    rgba = np.random.default_rng(0).integers(0, 256, (64, 64, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    distinct = len({tuple(p) for p in rgba[..., :3].reshape(-1, 3).tolist()})
    assert distinct > 256  # ~4,096 random colours
    asset, images = _brush_asset(tmp_path, rgba)
    start = time.perf_counter()
    with pytest.raises(LimitError) as err:
        # default limit 256; (semantic maps would refuse over 254 classes anyway)
        _quiet_dataset([asset], task="instance", root=images, brush_instances="components")
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert f"'{asset['externalId']}' (#0)" in message and "brushDataUrl" in message
    assert f"{distinct:,} distinct brush colours" in message
    assert "max_brush_colors=256" in message
    assert "ontology" in message and "brush_colors" in message
    # raised to the image's own count, each colour becomes a class (as before)
    with override(max_brush_colors=distinct):
        ds = _quiet_dataset([asset], task="instance", root=images, brush_instances="components")
    assert len(ds.classes) == 1 + 1 + distinct  # background, car, one per colour


def _grid(n: int) -> np.ndarray[Any, Any]:
    """``n × n`` isolated RED pixels at even rows and columns of a ``2n × 2n`` image: no
    two touch, even at a corner, so ``n²`` components under 8-connectivity."""
    rgba = np.zeros((2 * n, 2 * n, 4), np.uint8)
    rgba[::2, ::2] = (0xF4, 0x43, 0x36, 255)
    return rgba


def test_brush_components_over_the_limit_are_refused(tmp_path: Path) -> None:
    asset, images = _brush_asset(tmp_path, _grid(20))  # 400 components
    kw: dict[str, Any] = {"task": "instance", "root": images, "ontology": ONTOLOGY}
    with override(max_brush_components=399):
        ds = _quiet_dataset([asset], brush_instances="components", **kw)
    with pytest.raises(LimitError) as err:
        ds[0]
    message = str(err.value)
    assert f"'{asset['externalId']}' (#0)" in message and "brushDataUrl" in message
    assert "400" in message and "max_brush_components=399" in message
    with pytest.raises(LimitError, match="max_brush_components"):
        to_coco(ds)
    with override(max_brush_components=400):
        ds = _quiet_dataset([asset], brush_instances="components", **kw)
    target = ds[0][1]
    assert (target["labels"] == ds.classes.index("road")).sum() == 400
    assert target["masks"].shape == (401, 40, 40)  # 400 dots and the car


def test_a_noisy_brush_png_with_an_ontology_and_components_is_refused_fast(
    tmp_path: Path,
) -> None:
    # Noise around RED (within the tolerance), alpha 255 on a random half of the pixels:
    # thousands of components of one class.
    rng = np.random.default_rng(1)
    rgba = np.zeros((200, 200, 4), np.uint8)
    rgba[..., :3] = (0xF4, 0x43, 0x36)
    rgba[..., 3] = np.where(rng.random((200, 200)) < 0.3, 255, 0)
    asset, images = _brush_asset(tmp_path, rgba)
    with override(max_brush_components=100):
        ds = _quiet_dataset(
            [asset], task="instance", root=images, ontology=ONTOLOGY, brush_instances="components"
        )
    start = time.perf_counter()
    with pytest.raises(LimitError, match="brushDataUrl"):
        ds[0]
    assert time.perf_counter() - start < 5


# -------------------------------------------------------------------------- crop → RLE


def _decode(rle: dict[str, Any]) -> np.ndarray[Any, Any]:
    from pycocotools import mask as mask_api

    h, w = rle["size"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pycocotools under numpy 2
        return np.asarray(mask_api.decode(mask_api.frPyObjects(dict(rle), h, w)), bool)


@pytest.mark.parametrize(
    ("canvas", "shape", "offset"),
    [
        ((7, 5), (7, 3), (0, 1)),  # full height: runs continue across columns
        ((7, 5), (7, 5), (0, 0)),  # the whole canvas, from pixel 0
        ((6, 9), (2, 3), (4, 6)),  # bottom-right corner
        ((6, 9), (3, 2), (1, 2)),  # inside
        ((6, 9), (0, 0), (0, 0)),  # empty crop
        ((1, 1), (1, 1), (0, 0)),
    ],
)
def test_crop_to_rle_decodes_to_the_placed_crop(
    canvas: tuple[int, int], shape: tuple[int, int], offset: tuple[int, int]
) -> None:
    from ango_torch.evaluation.coco import crop_to_rle

    rng = np.random.default_rng(sum(canvas) + sum(shape))
    for fill in (0.0, 0.5, 1.0):
        crop = rng.random(shape) < fill
        expected = np.zeros(canvas, bool)
        y0, x0 = offset
        expected[y0 : y0 + shape[0], x0 : x0 + shape[1]] = crop
        rle = crop_to_rle(crop, offset, canvas)
        assert rle["size"] == list(canvas) and sum(rle["counts"]) == canvas[0] * canvas[1]
        assert np.array_equal(_decode(rle), expected)


def test_to_coco_brush_components_and_holes_decode_to_their_pixels(tmp_path: Path) -> None:
    asset = make_asset([_holed()])
    asset["task"]["brushDataUrl"] = "https://bucket.s3.amazonaws.com/brush.png"
    images = write_images(tmp_path / "images", [asset])
    # a 3 × 4 block touching the top edge and a 2 × 2 block touching the bottom edge
    write_brush(
        brush_path(images, asset),
        (H, W),
        {RED: (slice(0, 3), slice(0, 4))},
    )
    rgba = np.asarray(Image.open(brush_path(images, asset))).copy()
    rgba[9:11, 15:17] = (0xF4, 0x43, 0x36, 255)
    Image.fromarray(rgba, "RGBA").save(brush_path(images, asset))
    onto = {"tools": [*ONTOLOGY["tools"], {"title": "building", "tool": "segmentation"}]}
    ds = _quiet_dataset(
        [asset], task="instance", root=images, ontology=onto, brush_instances="components"
    )
    anns = to_coco(ds)["annotations"]
    masks = [_decode(a["segmentation"]) for a in anns]
    holed = np.zeros((H, W), bool)
    holed[1:9, 1:15] = True  # pixel centres inside the outer ring x 1..15, y 1..9
    holed[3:6, 4:8] = False  # minus those inside the hole x 4..8, y 3..6
    top = np.zeros((H, W), bool)
    top[0:3, 0:4] = True
    corner = np.zeros((H, W), bool)
    corner[9:11, 15:17] = True
    assert [m.sum() for m in masks] == [holed.sum(), 12, 4]
    assert np.array_equal(masks[0], holed)
    assert np.array_equal(masks[1], top) and np.array_equal(masks[2], corner)


# ------------------------------------------------------------------- numbers out of range


@pytest.mark.parametrize(
    ("where", "value", "field"),
    [
        ("task", 2**64, "task.updatedAt"),
        ("task", -(2**63) - 1, "task.updatedAt"),
        ("task", 10**400, "task.updatedAt"),
        ("task", "9" * 25, "task.updatedAt"),
        ("task", "9" * 5000, "task.updatedAt"),  # beyond Python's int-from-str limit
        ("stage", 2**70, "stageHistory[0].completedAt"),
    ],
    ids=["2**64", "below-int64", "10**400", "25-digit-string", "5000-digits", "completedAt"],
)
def test_timestamps_beyond_64_bits_are_format_errors(where: str, value: Any, field: str) -> None:
    asset = make_asset([make_polygon([[1, 1], [9, 1], [5, 8]])])
    if where == "task":
        asset["task"]["updatedAt"] = value
    else:
        asset["task"]["stageHistory"] = [
            {"stage": "Label", "stageId": "Label", "completedAt": value, "tools": []}
        ]
    with pytest.raises(ExportFormatError) as err:
        load_export([asset])
    message = str(err.value)
    assert f"'{asset['externalId']}' (#0)" in message and f"field '{field}'" in message


def test_timestamps_within_64_bits_still_load() -> None:
    # 1700000000000 ms = 2023-11-14T22:13:20Z (epoch arithmetic by hand); 2**63 - 1 is
    # within 64 bits but no datetime: it reads as unknown (None), as before.
    a = make_asset([make_polygon([[1, 1], [9, 1], [5, 8]])], updatedAt=1_700_000_000_000)
    b = make_asset([make_polygon([[1, 1], [9, 1], [5, 8]])], updatedAt=2**63 - 1)
    c = make_asset([make_polygon([[1, 1], [9, 1], [5, 8]])], updatedAt="²")
    export = load_export([a, b, c])
    assert export[0].task.updated_at is not None
    assert export[0].task.updated_at.isoformat() == "2023-11-14T22:13:20+00:00"
    assert export[1].task.updated_at is None and export[2].task.updated_at is None


@pytest.mark.parametrize("value", [10**400, 10**5000], ids=["10**400", "10**5000"])
def test_coordinates_beyond_any_float_are_format_errors(value: int) -> None:
    asset = make_asset([make_polygon([[value, 1], [9, 1], [5, 8]])])
    with pytest.raises(ExportFormatError) as err:
        load_export([asset])
    assert "field 'polygon[0][0]'" in str(err.value) and "bits" in str(err.value)


def test_the_cli_exits_2_on_a_timestamp_beyond_64_bits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asset = make_asset([make_polygon([[1, 1], [9, 1], [5, 8]])], updatedAt="9" * 30)
    path = _write(tmp_path, [asset])
    out = tmp_path / "gt.json"
    assert main(["convert", str(path), "--to", "coco", "--out", str(out)]) == 2
    assert "task.updatedAt" in capsys.readouterr().err


def test_distinct_colors_top_is_the_head_of_the_full_list() -> None:
    from ango_torch.targets.brush import count_colors, distinct_colors

    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 4, (30, 30, 4), dtype=np.uint8) * 60  # 64 colours, many ties
    rgba[..., 3] = rng.integers(0, 2, (30, 30)) * 255
    # reference: a Counter of the painted pixels' (r, g, b) tuples, most frequent first,
    # ties by colour
    painted = [tuple(p[:3]) for row in rgba.tolist() for p in row if p[3] > 0]
    ref = sorted(Counter(painted).items(), key=lambda t: (-t[1], t[0]))
    assert distinct_colors(rgba) == ref
    for top in (0, 1, 5, 17, len(ref), len(ref) + 3):
        assert distinct_colors(rgba, top=top) == ref[:top]
    assert count_colors(rgba) == len(ref) == 64


def test_unlisted_colours_of_a_noisy_png_are_reported_bounded(tmp_path: Path) -> None:
    from ango_torch.targets.brush import BRUSH_TOLERANCE, OTHER_COLORS, REPORTED_COLORS

    rgba = np.random.default_rng(2).integers(0, 256, (64, 64, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    asset, images = _brush_asset(tmp_path, rgba)
    ds = _quiet_dataset([asset], task="semantic", root=images, ontology=ONTOLOGY)
    ds.load_target(0, (64, 64))
    # reference: pixels farther than the tolerance from RED in some channel are unlisted
    near = (np.abs(rgba[..., :3].astype(int) - (0xF4, 0x43, 0x36)).max(axis=2)) <= BRUSH_TOLERANCE
    unlisted = int((~near).sum())
    colors = ds.report.brush_unlisted_colors
    assert ds.report.brush_unlisted_pixels == unlisted == sum(colors.values())
    assert len(colors) == REPORTED_COLORS + 1 and colors[OTHER_COLORS] > 0


_DRAW = """
import resource, torch
from ango_torch.datasets.preview import draw_sample
n, side = 200, 1000
masks = torch.zeros((n, side, side), dtype=torch.uint8)
for k in range(n):
    masks[k, k : k + 50, 2 * k : 2 * k + 50] = 1
image = torch.zeros((3, side, side), dtype=torch.uint8)
boxes = torch.tensor([[2.0 * k, k, 2 * k + 50, k + 50] for k in range(n)])
target = {"masks": masks, "labels": torch.ones(n, dtype=torch.int64), "boxes": boxes}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = draw_sample(image, target, classes=["__background__", "car"], font_size=11)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(grown // 1024, int(out[:, 25, 25].ne(0).any()))
"""


def test_draw_sample_holds_one_mask_copy_at_a_time() -> None:
    import subprocess
    import sys

    # 200 uint8 masks of 1000 × 1000 = 200 MB: bool copies of them all (and of their
    # outlines) would add >= 400 MB to the peak; one at a time adds a few MB.
    done = subprocess.run(
        [sys.executable, "-c", _DRAW], capture_output=True, text=True, check=True, timeout=120
    )
    grown_mib, painted = (int(v) for v in done.stdout.split())
    assert painted == 1  # pixel (25, 25) lies in mask 0's square: it was drawn
    assert grown_mib < 150, grown_mib


def _even_odd(ring: list[float], h: int, w: int) -> np.ndarray[Any, Any]:
    """Pixels whose centre is inside the flat ``[x0, y0, x1, y1, ...]`` ring (ray casting,
    even-odd): a reference written here, independent of the package's rasterizer."""
    xs, ys = ring[0::2], ring[1::2]
    out = np.zeros((h, w), bool)
    for r in range(h):
        for c in range(w):
            px, py, inside = c + 0.5, r + 0.5, False
            for i in range(len(xs)):
                x1, y1, x2, y2 = xs[i], ys[i], xs[i - 1], ys[i - 1]
                if (y1 > py) != (y2 > py) and px < x1 + (py - y1) * (x2 - x1) / (y2 - y1):
                    inside = not inside
            out[r, c] = inside
    return out


def test_to_coco_clips_far_vertices_without_changing_the_pixels(tmp_path: Path) -> None:
    # Random (self-intersecting) polygons with vertices far outside the 11 × 17 canvas:
    # the written, clipped polygons cover the same pixel centres as the originals.
    rng = np.random.default_rng(5)
    shapes = [
        rng.uniform(-80, 100, (int(rng.integers(3, 9)), 2)).round(2).tolist() for _ in range(40)
    ]
    shapes.append([[1, 1], [1001, 1], [1, 11]])  # one far vertex
    flat = [[v for xy in p for v in xy] for p in shapes]
    expected = [_even_odd(f, H, W) for f in flat]
    asset = make_asset([make_polygon(p) for p in shapes])
    ds = _quiet_dataset([asset], task="instance", root=tmp_path)
    anns = to_coco(ds)["annotations"]
    kept = [m for m in expected if m.any()]  # objects with no pixel are left out
    assert len(anns) == len(kept) > 10
    for a, mask in zip(anns, kept, strict=True):
        (poly,) = a["segmentation"]
        assert all(-W <= v <= 2 * W for v in poly[0::2])  # coco.clip_box: (-W, -H, 2W, 2H)
        assert all(-H <= v <= 2 * H for v in poly[1::2])
        assert np.array_equal(_even_odd(poly, H, W), mask)
        assert a["area"] == mask.sum()


def test_to_coco_with_a_vertex_at_1e30_is_fast_and_bounded(tmp_path: Path) -> None:
    from ango_torch.evaluation.evaluate import evaluate_coco

    asset = make_asset([make_polygon([[1, 1], [1e30, 1], [5, 8]])])
    ds = _quiet_dataset([asset], task="instance", root=tmp_path)
    start = time.perf_counter()
    gt = to_coco(ds)
    (poly,) = gt["annotations"][0]["segmentation"]
    assert max(poly) <= 2 * W
    # pycocotools rasterized the unclipped edge point by point: gigabytes (or a crash)
    result = {"image_id": 0, "category_id": 1, "bbox": [1, 1, 16, 7], "score": 1.0}
    metrics = evaluate_coco(gt, [{**result, "segmentation": gt["annotations"][0]["segmentation"]}])
    assert metrics["segm"].ap == pytest.approx(1.0)
    assert time.perf_counter() - start < 5


_FAR = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))  # a regression crashes, alone
from ango_torch.evaluation.evaluate import evaluate_coco
gt, results = json.loads(sys.argv[1]), json.loads(sys.argv[2])
start = time.perf_counter()
metrics = evaluate_coco(gt, results, iou_types=["segm"])
print(metrics["segm"].ap, time.perf_counter() - start)
"""


def test_evaluate_clips_far_polygons_of_results_and_ground_truth() -> None:
    import subprocess
    import sys

    # A COCO file (not from to_coco) and a result, each with a vertex at 1e9 on a 100 × 100
    # image; the same polygon in both, so AP is 1.  pycocotools alone crashes on it.
    far = [10.0, 10.0, 50.0, 10.0, 1e9, 30.0, 50.0, 50.0, 10.0, 50.0]
    box = [10, 10, 90, 40]
    ann = {"id": 1, "image_id": 1, "category_id": 1, "bbox": box, "area": 1600.0}
    gt = {
        "images": [{"id": 1, "height": 100, "width": 100}],
        "categories": [{"id": 1, "name": "car"}],
        "annotations": [{**ann, "iscrowd": 0, "segmentation": [far]}],
    }
    result = {"image_id": 1, "category_id": 1, "score": 1.0, "bbox": box, "segmentation": [far]}
    done = subprocess.run(
        [sys.executable, "-c", _FAR, json.dumps(gt), json.dumps([result])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-500:]
    ap, seconds = (float(v) for v in done.stdout.split())
    assert ap == pytest.approx(1.0) and seconds < 5


def test_the_limits_travel_with_a_pickled_dataset(tmp_path: Path) -> None:
    import pickle

    assets = _claiming(BIG, n=1)
    with override(max_canvas_pixels=LOW):
        ds = _quiet_dataset(assets, task="semantic", root=tmp_path)
    clone = pickle.loads(pickle.dumps(ds))  # as a spawned DataLoader worker gets it
    with pytest.raises(LimitError, match="max_canvas_pixels=1,000,000"):
        clone.load_target(0, (BIG, BIG))


def test_brush_colours_are_capped_over_the_whole_export(tmp_path: Path) -> None:
    # two PNGs of 3 colours each, 5 distinct in all (one shared): over a cap of 4 at the
    # second asset, within a cap of 5
    def png(colors: list[tuple[int, int, int]]) -> np.ndarray[Any, Any]:
        rgba = np.zeros((H, W, 4), np.uint8)
        for k, c in enumerate(colors):
            rgba[k, :] = (*c, 255)
        return rgba

    first, images = _brush_asset(tmp_path / "a", png([(1, 0, 0), (2, 0, 0), (3, 0, 0)]))
    second, images2 = _brush_asset(tmp_path / "b", png([(3, 0, 0), (4, 0, 0), (5, 0, 0)]))
    for path in (images2 / "_brush").rglob("*.png"):  # one root holding both brush PNGs
        target = images / path.relative_to(images2)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    kw: dict[str, Any] = {"task": "instance", "root": images, "brush_instances": "components"}
    with override(max_brush_colors=4), pytest.raises(LimitError) as err:
        _quiet_dataset([first, second], **kw)
    assert f"'{second['externalId']}' (#1)" in str(err.value)
    with override(max_brush_colors=5):
        ds = _quiet_dataset([first, second], **kw)
    assert len(ds.classes) == 1 + 1 + 5  # background, car, 5 colours
