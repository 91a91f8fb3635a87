"""Brush labels: colour tolerance, unlisted and excluded colours, ontologies without brush
colours, the semantic 255 rule, and per-instance keys of equal length in every task.

Every expected value here is hand-computed from the synthetic RGBA PNGs each test writes
(rectangles of known size on the 17×11 canvas of ``builders``), never from the package.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from builders import H, W, make_asset, make_box, make_polygon, sample_dataset, write_images
from PIL import Image

from ango_torch import AngoDataset, AngoTorchWarning, to_coco
from ango_torch.errors import OntologyError
from ango_torch.targets import brush as br
from ango_torch.targets.arrays import IGNORE

RED, BLUE, GREEN = (244, 67, 54), (33, 150, 243), (0, 255, 0)
NEAR_RED = (240, 70, 50)  # max per-channel difference 4 from RED: antialiasing
CAR = [[10, 0], [17, 0], [17, 11], [10, 11]]  # covers x 10..16, every row: 7 × 11 = 77 px
ROAD = (slice(0, 3), slice(0, 4))  # 3 × 4 = 12 px of RED
GRASS = (slice(5, 8), slice(0, 3))  # 3 × 3 = 9 px of GREEN
ONTOLOGY = {
    "tools": [
        {"title": "car", "tool": "polygon"},
        {"title": "road", "tool": "brush", "color": "#F44336"},
        {"title": "grass", "tool": "brush", "color": "#00ff00"},
    ]
}


def _brush(path: Path, *, near: bool = True) -> str:
    """RED road (12 px), GREEN grass (9 px), and with ``near`` one NEAR_RED pixel at
    (y=3, x=0), touching the road: 13 road-ish pixels whose box is x 0..4, y 0..4."""
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[ROAD] = (*RED, 255)
    rgba[GRASS] = (*GREEN, 255)
    if near:
        rgba[3, 0] = (*NEAR_RED, 255)
    Image.fromarray(rgba, "RGBA").save(path)
    return str(path)


def _setup(tmp_path: Path, *, near: bool = True) -> tuple[dict[str, Any], Path]:
    asset = make_asset([make_polygon(CAR, "car")])
    # A local path as brushDataUrl: read (with allow_local_urls=True, the opt-in) when root
    # has no brush file.
    asset["task"]["brushDataUrl"] = _brush(tmp_path / "brush.png", near=near)
    return asset, write_images(tmp_path / "images", [asset])


def _local(asset: dict[str, Any], images: Path, **kw: Any) -> AngoDataset:
    """``asset`` read from the local folder ``images`` (``allow_local_urls``); ``kw`` as given."""
    return AngoDataset([asset], root=images, allow_local_urls=True, **kw)


def _expected_semantic(road: int, grass: int, car: int, *, near_label: int) -> torch.Tensor:
    m = torch.zeros(H, W, dtype=torch.int64)
    m[ROAD] = road
    m[3, 0] = near_label
    m[GRASS] = grass
    m[:, 10:17] = car
    return m


# ----------------------------------------------------------------------- brush_to_class_map


def test_tolerance_maps_near_colours_and_leaves_far_ones_unlisted() -> None:
    tol = br.BRUSH_TOLERANCE
    img = np.zeros((1, 7, 4), np.uint8)
    img[0, 0] = (*RED, 255)  # exact: class 1
    img[0, 1] = (RED[0] - tol, RED[1] + tol, RED[2], 255)  # at the tolerance: class 1
    img[0, 2] = (RED[0] - tol - 1, RED[1], RED[2], 255)  # one beyond it: unlisted
    img[0, 3] = (*GREEN, 255)  # far from both (was "nearest": BLUE): unlisted
    img[0, 4] = (*RED, 0)  # transparent: not painted
    img[0, 5] = (*BLUE, 1)  # faint but painted: class 2
    img[0, 6] = (BLUE[0] + 1, BLUE[1], BLUE[2], 255)  # 1 off: class 2
    class_map, inexact = br.brush_to_class_map(img, colors=[RED, BLUE])
    assert class_map.tolist() == [[1, 1, -1, -1, 0, 2, 2]]
    assert inexact == 2  # pixels 1 and 6: within tolerance, not exact
    # Explicitly unbounded: the nearest colour at any distance (pixel 3 is nearer BLUE).
    nearest, inexact = br.brush_to_class_map(img, colors=[RED, BLUE], tolerance=None)
    assert nearest.tolist() == [[1, 1, 1, 2, 0, 2, 2]] and inexact == 4


def test_within_tolerance_the_nearest_colour_wins() -> None:
    # (238, 67, 54) is 6 from RED and 2 from (236, 67, 54): both within, the second nearer;
    # (200, 67, 54) is 36 from the nearer one: beyond the tolerance, unlisted.
    img = np.array([[[238, 67, 54, 255], [200, 67, 54, 255]]], np.uint8)
    class_map, inexact = br.brush_to_class_map(img, colors=[RED, (236, 67, 54)])
    assert class_map.tolist() == [[2, -1]] and inexact == 1


# ------------------------------------------------------------------- unlisted and excluded


def test_classes_leaving_out_a_brush_class_excludes_its_pixels(tmp_path: Path) -> None:
    asset, images = _setup(tmp_path)
    ds = _local(
        asset,
        images,
        ontology=ONTOLOGY,
        classes=["car", "road"],
        task="semantic",
    )
    assert ds.classes == ["__background__", "car", "road"]
    m = ds[0][1]["mask"]
    # grass (9 px) is a known class left out: ignored, not "nearest kept" (road)
    assert torch.equal(m, _expected_semantic(2, IGNORE, 1, near_label=2))
    assert ds.report.brush_excluded_pixels == 9
    assert dict(ds.report.brush_excluded_classes) == {"grass": 9}
    assert ds.report.brush_unlisted_pixels == 0 and ds.report.brush_inexact_pixels == 1
    assert "brush excluded pixels: 9" in ds.report.summary()
    bg = _local(
        asset,
        images,
        ontology=ONTOLOGY,
        classes=["car", "road"],
        task="semantic",
        brush_unlisted="background",
    )
    assert torch.equal(bg[0][1]["mask"], _expected_semantic(2, 0, 1, near_label=2))
    assert bg.report.brush_excluded_pixels == 9


def test_brush_colors_naming_some_colours_leaves_the_others_unlisted(tmp_path: Path) -> None:
    asset, images = _setup(tmp_path)
    ds = _local(
        asset,
        images,
        brush_colors={"#f44336": "road"},
        task="semantic",
    )
    assert ds.classes == ["__background__", "car", "road"]
    assert torch.equal(ds[0][1]["mask"], _expected_semantic(2, IGNORE, 1, near_label=2))
    assert ds.report.brush_unlisted_pixels == 9
    assert dict(ds.report.brush_unlisted_colors) == {"#00ff00": 9}
    assert ds.report.brush_excluded_pixels == 0 and ds.report.brush_inexact_pixels == 1
    assert "brush unlisted pixels: 9" in ds.report.summary()
    bg = _local(
        asset,
        images,
        brush_colors={"#f44336": "road"},
        task="semantic",
        brush_unlisted="background",
    )
    assert torch.equal(bg[0][1]["mask"], _expected_semantic(2, 0, 1, near_label=2))


@pytest.mark.parametrize("task", ["detection", "instance"])
def test_unlisted_and_excluded_pixels_give_no_instance(tmp_path: Path, task: str) -> None:
    asset, images = _setup(tmp_path)
    options: list[dict[str, Any]] = [
        {"brush_colors": {"#f44336": "road"}},
        {"ontology": ONTOLOGY, "classes": ["car", "road"]},
    ]
    for kw in options:
        ds = _local(
            asset,
            images,
            task=task,
            brush_instances="components",
            **kw,
        )
        t = ds[0][1]
        # car polygon, then one road component (12 RED + the NEAR_RED pixel below them);
        # no grass instance, neither as grass nor relabelled as road.
        assert t["labels"].tolist() == [1, 2]
        assert t["boxes"].tolist() == [[10, 0, 17, 11], [0, 0, 4, 4]]
        # detection: box areas (README); instance: mask pixels
        assert t["area"].tolist() == ([77, 16] if task == "detection" else [77, 13])
        assert t["iscrowd"].tolist() == [0, 0]
        if task == "instance":
            assert t["masks"].sum(dim=(1, 2)).tolist() == [77, 13]
        assert ds.report.brush_unlisted_pixels + ds.report.brush_excluded_pixels == 9
        # to_coco agrees instance for instance (same hand-computed areas)
        coco = to_coco(ds)
        assert [a["area"] for a in coco["annotations"]] == t["area"].tolist()
        assert [a["category_id"] for a in coco["annotations"]] == [1, 2]


def test_brush_unlisted_is_checked() -> None:
    with pytest.raises(ValueError, match="brush_unlisted"):
        AngoDataset([make_asset([])], brush_unlisted="nearest")  # type: ignore[arg-type]


# ----------------------------------------------------------- ontology without brush colours

_NO_COLOUR = {"tools": [{"title": "car", "tool": "polygon"}, {"title": "road", "tool": "brush"}]}
_NO_BRUSH = {"tools": [{"title": "car", "tool": "polygon"}]}


@pytest.mark.parametrize("onto", [_NO_COLOUR, _NO_BRUSH], ids=["colourless-brush", "no-brush"])
def test_ontology_without_brush_colours_falls_back_to_discovered(
    tmp_path: Path, onto: dict[str, Any]
) -> None:
    asset, images = _setup(tmp_path, near=False)
    with pytest.warns(AngoTorchWarning, match="the ontology names no brush colours") as rec:
        ds = _local(asset, images, ontology=onto, task="semantic")
    message = str(rec[0].message)
    assert "#00ff00, #f44336" in message and "no ontology" not in message
    if onto is _NO_COLOUR:
        assert "'road'" in message  # the colourless brush class is named
    # ontology classes first, then one class per discovered colour, sorted
    assert ds.classes == ["__background__", "car", "#00ff00", "#f44336"]
    expected = _expected_semantic(3, 2, 1, near_label=0)
    assert torch.equal(ds[0][1]["mask"], expected)
    assert ds.report.brush_unlisted_pixels == 0 and ds.report.brush_excluded_pixels == 0
    # classes= leaving a discovered colour out: its pixels are excluded and counted
    with pytest.warns(AngoTorchWarning, match="the ontology names no brush colours"):
        kept = _local(
            asset,
            images,
            ontology=onto,
            classes=["car", "#f44336"],
            task="semantic",
        )
    assert torch.equal(kept[0][1]["mask"], _expected_semantic(2, IGNORE, 1, near_label=0))
    assert dict(kept.report.brush_excluded_classes) == {"#00ff00": 9}


# ------------------------------------------------------------------------ semantic 255 rule


def test_semantic_refuses_a_class_labelled_255(tmp_path: Path) -> None:
    # Labels are 0 (background) and 1..len(classes): 254 classes end at label 254, 255
    # classes would give one class the label 255, the ignore value.
    asset = make_asset([make_polygon([[2, 2], [8, 2], [8, 7], [2, 7]], "c253")])
    images = write_images(tmp_path / "images", [asset])
    ok = _local(
        asset,
        images,
        task="semantic",
        classes=[f"c{k}" for k in range(254)],
    )
    m = ok[0][1]["mask"]
    assert m[2:7, 2:8].eq(254).all() and int(m.eq(254).sum()) == 30 and m.max() == 254
    too_many = [f"c{k}" for k in range(255)]
    with pytest.raises(OntologyError, match="255"):
        _local(asset, images, task="semantic", classes=too_many)
    # detection and instance labels never meet the ignore value: allowed
    det = _local(asset, images, task="detection", classes=too_many)
    assert det[0][1]["labels"].tolist() == [254]


# ------------------------------------------------------- per-instance keys of equal length

PER_INSTANCE = ("boxes", "labels", "masks", "area", "iscrowd", "attributes")
OPTIONS = list(
    itertools.product(
        ["detection", "instance", "semantic"],
        [None, "components"],
        [False, True],
        ["last", "ignore"],
    )
)


def _check_lengths(ds: AngoDataset) -> int:
    """Asserts every per-instance key has len(labels) rows; returns the instance count."""
    total = 0
    for i in range(len(ds)):
        image, t = ds[i]
        if ds.task == "semantic":
            assert not set(PER_INSTANCE) & set(t) and t["mask"].shape == image.shape[-2:]
            continue
        n = len(t["labels"])
        lengths = {k: len(t[k]) for k in PER_INSTANCE if k in t}
        assert lengths == dict.fromkeys(lengths, n), (i, lengths)
        total += n
    return total


@pytest.mark.parametrize(("task", "brush", "attributes", "overlap"), OPTIONS)
def test_per_instance_keys_have_equal_lengths_on_the_sample(
    task: str, brush: str | None, attributes: bool, overlap: str
) -> None:
    ds = sample_dataset(
        task,
        brush_instances=brush,  # type: ignore[arg-type]
        attributes=attributes,
        overlap=overlap,  # type: ignore[arg-type]
    )
    _check_lengths(ds)


@pytest.mark.parametrize(("task", "brush", "attributes", "overlap"), OPTIONS)
def test_per_instance_keys_have_equal_lengths_with_brush(
    tmp_path: Path, task: str, brush: str | None, attributes: bool, overlap: str
) -> None:
    asset, images = _setup(tmp_path)
    asset["task"]["tools"].append(make_box(1, 8, 3, 2, "car"))  # box-only: no mask
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = _local(
            asset,
            images,
            ontology=ONTOLOGY,
            task=task,  # type: ignore[arg-type]
            brush_instances=brush,  # type: ignore[arg-type]
            attributes=attributes,
            overlap=overlap,  # type: ignore[arg-type]
        )
    # Hand count: detection has the polygon and the box, instance the polygon alone;
    # components add road (one component with the NEAR_RED pixel) and grass.
    expected = {"detection": 2, "instance": 1, "semantic": 0}[task] + (
        2 if brush and task != "semantic" else 0
    )
    assert _check_lengths(ds) == expected


def test_no_brush_colour_at_all_leaves_every_pixel_unlisted(tmp_path: Path) -> None:
    # brush_colors={} names no colour: all 12 + 1 + 9 painted pixels are unlisted (were
    # silently background), by colour.
    asset, images = _setup(tmp_path)
    ds = _local(asset, images, brush_colors={}, task="semantic")
    assert ds.classes == ["__background__", "car"]
    assert torch.equal(ds[0][1]["mask"], _expected_semantic(IGNORE, IGNORE, 1, near_label=IGNORE))
    assert ds.report.brush_unlisted_pixels == 22
    assert dict(ds.report.brush_unlisted_colors) == {"#f44336": 12, "#00ff00": 9, "#f04632": 1}
