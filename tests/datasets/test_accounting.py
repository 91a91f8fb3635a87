"""Nothing is dropped silently: for a rich export, per task, every selected object of the
export ends either in a target or in the dataset's report.

The expected total is counted from the raw export JSON (objects of each asset's answer),
never from the dataset; the per-reason numbers of the synthetic export are hand-computed
from its geometry (comments next to each object).
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builders import (
    CLASSES,
    SLIVER,
    SQUARE,
    TWICE,
    make_asset,
    make_polygon,
    rich_assets,
    write_images,
)

import ango_torch
from ango_torch import AngoTorchWarning

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data"
TASKS = ("detection", "instance", "semantic")


def _raw_total(assets: list[dict[str, Any]]) -> int:
    return sum(len(a["task"]["tools"]) for a in assets)


def _dataset(which: str, task: str, tmp_path: Path) -> tuple[Any, list[dict[str, Any]]]:
    if which == "sample":
        assets = json.loads((SAMPLE / "sample_export.json").read_text())
        kw: dict[str, Any] = {"root": SAMPLE / "images", "ontology": SAMPLE / "ontology.json"}
    else:
        assets = rich_assets(tmp_path / "images")
        kw = {"root": tmp_path / "images", "classes": CLASSES}
    with pytest.warns(AngoTorchWarning) if which == "synthetic" else contextlib.nullcontext():
        ds = ango_torch.AngoDataset(assets, task=task, **kw)
    return ds, assets


def _painted(tool: dict[str, Any], hw: tuple[int, int]) -> bool:
    """Whether ``tool`` (polygon, rotated box or segmentation, raw JSON) covers ≥ 1 pixel
    of an ``hw`` canvas, as pycocotools rasterizes it (a zone: region less its holes)."""
    from pycocotools import mask as mask_utils

    def raster(rings: list[Any]) -> Any:
        flat = [[float(v) for p in ring for v in p] for ring in rings if len(ring) >= 3]
        if not flat:
            return np.zeros(hw, np.uint8)
        with warnings.catch_warnings():  # pycocotools' Cython vs numpy 2, not our code
            warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
            rle = mask_utils.merge(mask_utils.frPyObjects(flat, *hw))
            return mask_utils.decode(rle)

    if "polygon" in tool:
        return bool(raster([tool["polygon"]]).any())
    if "rotated-bounding-box" in tool:
        return bool(raster([tool["rotated-bounding-box"]["corners"]]).any())
    painted = np.zeros(hw, bool)
    for zone in tool["segmentation"]["zones"]:
        holes = np.zeros(hw, bool)
        for hole in zone.get("holes") or []:
            holes |= raster([hole]).astype(bool)
        painted |= raster([zone["region"]]).astype(bool) & ~holes
    return bool(painted.any())


def _in_targets(ds: Any, task: str, assets: list[dict[str, Any]]) -> int:
    n = 0
    idx = ds.export.index
    for i in range(len(ds)):
        hw = ds.get_height_and_width(i)
        target = ds.load_target(i, hw)
        if task == "semantic":
            # an object is in the semantic target iff its own mask, rasterized here by
            # pycocotools from the raw export, has a pixel (independent of the package)
            a, _page, s = ds.sample_location(i)
            tools = assets[a]["task"]["tools"]
            for row in ds.sample_objects(i)[0].tolist():
                tool = tools[row - int(idx.snap_obj_start[s])]
                assert tool["objectId"] == idx.object_extras(a)[row - idx.first_object(a)][0]
                n += _painted(tool, hw)
        else:
            n += int((target["labels"] > 0).sum())
    return n


def _in_report(ds: Any) -> int:
    r = ds.report
    return (
        sum(r.dropped_objects.values()) + sum(r.ignored_objects.values()) + (r.empty_after_clipping)
    )


# Hand-computed from the comments in rich_assets: (in targets, empty, dropped, ignored).
SYNTHETIC = {
    "detection": (
        # image: square, box, sliver, twice, segmentation; pages 0, 1, 2: 1 + 1 + 2
        9,
        0,
        {
            "outside the image": 1,
            "degenerate geometry": 1,
            "page outside the asset": 1,
            # video and clip: box, polygon, polygon, none with a frame (page)
            "video entry without a frame (page)": 3,
        },
        {"point": 1, "polyline": 1, "other classes": 1},
    ),
    "instance": (
        # image: square, segmentation; pages 0, 2: 1 + 2
        5,
        2,  # sliver and twice-traced triangle
        {
            "outside the image": 1,
            "degenerate geometry": 1,
            "page outside the asset": 1,
            "video entry without a frame (page)": 2,  # the video's box is ignored
        },
        {"bounding-box": 3, "point": 1, "polyline": 1, "other classes": 1},
    ),
}
# semantic reads video frames as instance does: the video's box is ignored (not an area
# class), its two polygons have no frame (page)
SYNTHETIC["semantic"] = SYNTHETIC["instance"]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("which", ["sample", "synthetic"])
def test_every_object_is_in_a_target_or_in_the_report(
    tmp_path: Path, which: str, task: str
) -> None:
    ds, assets = _dataset(which, task, tmp_path)
    total = _raw_total(assets)
    in_targets = _in_targets(ds, task, assets)
    assert in_targets + _in_report(ds) == total, ds.report.summary()
    if which == "synthetic":
        assert len(ds) == 4  # the image and pages 0, 1, 2; no video sample
        kept, empty, dropped, ignored = SYNTHETIC[task]
        assert (in_targets, ds.report.empty_after_clipping) == (kept, empty)
        assert dict(ds.report.dropped_objects) == dropped
        assert dict(ds.report.ignored_objects) == ignored
        assert ds.report.skipped_assets == []  # semantic reads videos too
        # loading again (a second epoch) counts nothing twice
        _in_targets(ds, task, assets)
        assert ds.report.empty_after_clipping == empty


def test_semantic_counts_empty_masks_like_instance(tmp_path: Path) -> None:
    assets = [make_asset([make_polygon(SQUARE), make_polygon(SLIVER), make_polygon(TWICE)])]
    write_images(tmp_path / "images", assets)
    counts = {}
    for task in ("instance", "semantic"):
        ds = ango_torch.AngoDataset(assets, task=task, root=tmp_path / "images")  # type: ignore[arg-type]
        ds[0]
        counts[task] = ds.report.empty_after_clipping
    # sliver and twice-traced triangle: no pixel centre inside (pycocotools agrees: 0 pixels)
    assert counts == {"instance": 2, "semantic": 2}


def test_brush_on_a_multi_page_asset_is_counted_not_guessed(tmp_path: Path) -> None:
    """One brush PNG per task, pages unknown: applied to no page, counted per asset.

    The brush URL is unreachable: fetching it would raise, so none is fetched."""
    asset = make_asset([make_polygon(SQUARE, page=1)], brushDataUrl="https://nowhere.invalid/b.png")
    asset["dataset"] = [f"https://x/p{p}.png" for p in range(2)]
    pages = tmp_path / "images" / f"{asset['externalId']}.pages"
    write_images(pages, [{"externalId": str(p), "metadata": {}} for p in range(2)])
    with pytest.warns(AngoTorchWarning, match="brush unplaced: 1"):
        ds = ango_torch.AngoDataset(
            [asset], task="semantic", root=tmp_path / "images", brush_colors={"#ff0000": "car"}
        )
    assert len(ds) == 1 and ds.sample_location(0)[1] == 1  # page 1 only: no brush-only page
    mask = ds[0][1]["mask"]
    # hand-computed: SQUARE covers x 2..7, y 2..6 → 30 pixels of "car" (label 1), no brush
    assert int((mask == 1).sum()) == 30 and int((mask != 0).sum()) == 30


@pytest.mark.parametrize("task", TASKS)
def test_unreadable_assets_are_counted_as_assets_not_objects(tmp_path: Path, task: str) -> None:
    """The rule for assets skipped as unreadable (README, "What is counted"): the asset
    is counted (``skipped_assets``/``skipped_count``); its objects are not, since a
    malformed asset's object list cannot be trusted. Every object of every readable
    asset still ends in a target or the report."""
    good = make_asset([make_polygon(SQUARE), make_polygon(SLIVER)])
    bad = make_asset([make_polygon(SQUARE)] * 3)
    bad["metadata"] = "not an object"  # malformed: the whole asset is unreadable
    write_images(tmp_path / "images", [good])
    with pytest.warns(AngoTorchWarning, match="1 assets skipped"):
        ds = ango_torch.AngoDataset(
            [good, bad], task=task, root=tmp_path / "images", on_error="skip"
        )
    assert ds.report.skipped_count == 1 and ds.report.skipped_assets[0][0] == 1
    in_targets = _in_targets(ds, task, [good])
    # hand-counted: SQUARE is in every target; SLIVER is a detection box, an empty mask
    # elsewhere (pycocotools: no pixel)
    assert in_targets == (2 if task == "detection" else 1)
    assert in_targets + _in_report(ds) == _raw_total([good])
