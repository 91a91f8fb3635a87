"""Review of issues 8/9: an EXIF-rotated photo whose metadata gives its stored size,
objects on pages a single image lacks, unreadable assets beyond ``max_skipped``, and
runtime counts under real DataLoader workers."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from builders import SLIVER, SQUARE, TWICE, make_asset, make_box, make_polygon, write_images
from PIL import Image
from pycocotools import mask as mask_utils
from torch.utils.data import DataLoader

import ango_torch
from ango_torch import AngoTorchWarning, to_coco
from ango_torch.limits import override


def _rotated_photo(folder: Path) -> list[dict[str, Any]]:
    """A JPEG stored 17 wide × 11 tall with EXIF orientation 6 (rotate 90° clockwise):
    displayed 11 wide × 17 tall; the export's metadata says the stored 17×11."""
    folder.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    pixels = np.random.default_rng(0).integers(0, 255, (11, 17, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "phone.jpg", "JPEG", exif=exif)
    low = make_polygon([[1, 12], [9, 12], [9, 16], [1, 16]], "car")  # rows 12..16 only
    ring = [[1, 1], [9, 1], [9, 16], [1, 16]]
    tall = make_polygon(ring, "car")
    asset = make_asset([low, tall], external_id="phone.jpg", width=17, height=11)
    asset["asset"] = None
    return [asset]


@pytest.mark.parametrize("task", ["detection", "instance"])
def test_rotated_photo_with_stored_size_uses_the_displayed_size(tmp_path: Path, task: str) -> None:
    assets = _rotated_photo(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is dropped as "outside the image"
        ds = ango_torch.AngoDataset(assets, task=task, root=tmp_path)  # type: ignore[arg-type]
    assert not ds.report.dropped_objects
    image, target = ds[0]
    assert tuple(image.shape) == (3, 17, 11)  # displayed: 11 wide, 17 tall
    assert ds.get_height_and_width(0) == (17, 11)
    # hand-computed: pixel centres x 1.5..8.5 (8 columns), y 12.5..15.5 (4 rows) → 32;
    # the tall ring x 1..9, y 1..16 → 8 × 15 = 120
    assert target["boxes"].tolist() == [[1, 12, 9, 16], [1, 1, 9, 16]]
    coco = to_coco(ds)
    assert (coco["images"][0]["height"], coco["images"][0]["width"]) == (17, 11)
    sums = []
    for ann in coco["annotations"]:
        seg = ann["segmentation"]
        if isinstance(seg, list):
            seg = mask_utils.merge(mask_utils.frPyObjects(seg, 17, 11))
        assert tuple(seg["size"]) == (17, 11)
        with warnings.catch_warnings():  # pycocotools' Cython vs numpy 2, not our code
            warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
            sums.append(int(mask_utils.decode(seg).sum()))  # pycocotools rasterizes
    assert sums == [32, 120]
    if task == "instance":
        assert target["masks"].sum((1, 2)).tolist() == [32, 120]


def test_unrotated_image_object_beyond_the_canvas_is_counted_as_empty(tmp_path: Path) -> None:
    """The same polygon on a plain 17×11 PNG lies below the image: not dropped at
    construction (it would fit the transposed canvas), counted as empty at runtime."""
    low = make_polygon([[1, 12], [9, 12], [9, 16], [1, 16]], "car")
    assets = [make_asset([low, make_polygon(SQUARE)])]
    write_images(tmp_path, assets)
    ds = ango_torch.AngoDataset(assets, task="instance", root=tmp_path)  # type: ignore[arg-type]
    _, target = ds[0]
    assert ds.get_height_and_width(0) == (11, 17)  # from the header: a PNG without EXIF
    assert target["masks"].sum((1, 2)).tolist() == [30]  # SQUARE: x 2..7, y 2..6
    assert ds.report.empty_after_clipping == 1


@pytest.mark.parametrize("task", ["detection", "instance", "semantic"])
def test_pages_of_a_single_image_asset_are_counted(tmp_path: Path, task: str) -> None:
    """page 0 (or none) is the image; page 1 and 7 are outside it (hand-counted: 2)."""
    assets = [
        make_asset(
            [
                make_polygon(SQUARE, page=0),
                make_polygon(SQUARE, "person", page=1),
                make_polygon([[1, 1], [9, 1], [5, 8]], page=7),
            ]
        )
    ]
    write_images(tmp_path, assets)
    with pytest.warns(AngoTorchWarning, match="page outside the asset"):
        ds = ango_torch.AngoDataset(assets, task=task, root=tmp_path)  # type: ignore[arg-type]
    assert dict(ds.report.dropped_objects) == {"page outside the asset": 2}
    _, target = ds[0]
    if task == "semantic":
        assert int((target["mask"] != 0).sum()) == 30  # SQUARE only
    else:
        assert target["labels"].tolist() == [1]
        assert len(to_coco(ds)["annotations"]) == 1


def test_report_counts_unreadable_assets_beyond_max_skipped(tmp_path: Path) -> None:
    good = make_asset([make_polygon(SQUARE)])
    bad = [{"externalId": f"bad{k}.png", "metadata": "oops"} for k in range(7)]
    write_images(tmp_path, [good])
    with override(max_skipped=3), pytest.warns(AngoTorchWarning, match="7 assets skipped"):
        ds = ango_torch.AngoDataset([good, *bad], task="instance", root=tmp_path, on_error="skip")
    assert len(ds.report.skipped_assets) == 3  # the reasons kept
    assert ds.report.skipped_count == 7  # hand-counted: seven malformed assets
    assert "7 assets skipped ({'unreadable': 7})" in ds.report.summary()


def _empty_export(folder: Path) -> list[dict[str, Any]]:
    # per asset: SQUARE (30 pixels) and SLIVER, TWICE (no pixel centre inside: pycocotools
    # gives 0 pixels) → 2 empty masks per asset, 6 in all
    assets = [make_asset([make_polygon(SQUARE), make_polygon(SLIVER), make_polygon(TWICE)])]
    assets += [make_asset([make_polygon(SLIVER), make_polygon(TWICE)]) for _ in range(2)]
    write_images(folder, assets)
    return assets


@pytest.mark.parametrize("task", ["instance", "semantic"])
def test_runtime_counts_under_dataloader_workers(tmp_path: Path, task: str) -> None:
    ds = ango_torch.AngoDataset(_empty_export(tmp_path), task=task, root=tmp_path)  # type: ignore[arg-type]
    loader = DataLoader(ds, batch_size=1, num_workers=2, collate_fn=lambda b: b)
    seen = sum(1 for _ in loader)
    assert seen == 3
    # the workers' counts stay in the workers: the summary must not claim nothing dropped
    assert ds.report.empty_after_clipping == 0
    assert "nothing skipped or dropped" not in ds.report.summary()
    assert "ds.audit()" in ds.report.summary()
    report = ds.audit()
    assert report.runtime_complete and report.empty_after_clipping == 6
    assert report.empty_by_sample == {0: 2, 1: 2, 2: 2}
    ds.audit()  # once per sample: auditing again (or loading) counts nothing twice
    ds[0]
    assert ds.report.empty_after_clipping == 6
    assert "empty after clipping: 6" in ds.report.summary()


def test_audit_of_a_clean_dataset_says_nothing_dropped(tmp_path: Path) -> None:
    assets = [make_asset([make_polygon(SQUARE), make_box(1, 1, 3, 3)])]
    write_images(tmp_path, assets)
    ds = ango_torch.AngoDataset(assets, task="detection", root=tmp_path)  # type: ignore[arg-type]
    assert "nothing skipped or dropped" not in ds.report.summary()
    assert ds.audit().summary() == "nothing skipped or dropped"
    assert json.dumps(ds.report.empty_by_sample) == "{}"
    assert torch.is_tensor(ds[0][1]["boxes"])
