"""AngoDataset: target layout, class and stage selection, drops, brush, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
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
from torchvision import tv_tensors

import ango_torch
from ango_torch import AngoDataset, AngoTorchWarning
from ango_torch.errors import OntologyError, SizeMismatchError

SQUARE = [[2, 2], [8, 2], [8, 7], [2, 7]]  # covers pixels x 2..7, y 2..6 exactly


def _ds(tmp_path: Path, assets: list[dict[str, Any]], **kw: Any) -> AngoDataset:
    write_images(tmp_path / "images", assets)
    return AngoDataset(assets, root=tmp_path / "images", **kw)


def test_instance_target_layout(tmp_path: Path) -> None:
    assets = [make_asset([make_polygon(SQUARE, "car"), make_box(1, 1, 3, 3, "person")])]
    ds = _ds(tmp_path, assets, task="instance")
    image, target = ds[0]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8
    assert image.shape == (3, H, W)
    assert set(target) == {"boxes", "labels", "masks", "image_id", "area", "iscrowd", "asset_id"}
    boxes, masks = target["boxes"], target["masks"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.dtype == torch.float32
    assert boxes.format == tv_tensors.BoundingBoxFormat.XYXY and boxes.canvas_size == (H, W)
    assert isinstance(masks, tv_tensors.Mask) and masks.shape == (1, H, W)
    assert masks.dtype == torch.uint8
    assert target["labels"].dtype == torch.int64 and target["labels"].tolist() == [1]
    assert ds.classes == ["__background__", "car"]  # boxes have no mask: not an instance here
    expected = torch.zeros(H, W, dtype=torch.uint8)
    expected[2:7, 2:8] = 1
    assert torch.equal(masks[0], expected)
    assert boxes.tolist() == [[2, 2, 8, 7]]
    assert target["area"].tolist() == [30.0] and target["area"].dtype == torch.float32
    assert target["iscrowd"].tolist() == [0] and target["iscrowd"].dtype == torch.int64
    assert target["image_id"] == 0 and target["asset_id"] == assets[0]["assetId"]
    assert ds.report.ignored_objects == {"bounding-box": 1}


def test_detection_target_and_classes_sorted(tmp_path: Path) -> None:
    assets = [
        make_asset(
            [
                make_box(1, 1, 3, 3, "zebra"),
                make_polygon(SQUARE, "ant"),
                make_box(9, 9, -4, -2, "zebra"),
            ]
        )
    ]
    _image, target = _ds(tmp_path, assets, task="detection")[0]
    assert "masks" not in target
    assert target["labels"].tolist() == [2, 1, 2]  # classes sorted: ant, zebra
    assert target["boxes"].tolist() == [[1, 1, 4, 4], [2, 2, 8, 7], [5, 7, 9, 9]]
    assert target["area"].tolist() == [9, 30, 8]


def test_every_key_present_without_instances(tmp_path: Path) -> None:
    assets = [make_asset([make_polygon(SQUARE)]), make_asset([])]
    for task in ("detection", "instance"):
        _, target = _ds(tmp_path, assets, task=task)[1]
        assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)
        assert target["area"].shape == (0,) and target["iscrowd"].shape == (0,)
        if task == "instance":
            assert target["masks"].shape == (0, H, W)


def test_segmentation_holes_are_cleared_and_zones_unioned(tmp_path: Path) -> None:
    seg = make_segmentation(
        [
            {
                "region": [[0, 0], [10, 0], [10, 10], [0, 10]],
                "holes": [[[3, 3], [6, 3], [6, 6], [3, 6]]],
            },
            {"region": [[12, 1], [16, 1], [16, 4], [12, 4]], "holes": []},
        ]
    )
    ds = _ds(tmp_path, [make_asset([seg])], task="instance")
    mask = ds[0][1]["masks"][0]
    assert mask[3:6, 3:6].sum() == 0  # the hole
    assert mask[0:3, 0:10].all() and mask[6:10, 0:10].all()
    assert mask[1:4, 12:16].all()  # the second zone
    assert ds[0][1]["labels"].tolist() == [1]  # one instance
    sem = AngoDataset(ds.export, task="semantic", root=tmp_path / "images")[0][1]["mask"]
    assert sem.dtype == torch.int64 and sem[4, 4] == 0 and sem[0, 0] == 1


def test_classes_subset_and_ontology_order(tmp_path: Path) -> None:
    assets = [
        make_asset(
            [make_polygon(SQUARE, "car"), make_polygon(SQUARE, "bike"), make_polygon(SQUARE, "bus")]
        )
    ]
    ds = _ds(tmp_path, assets, task="instance", classes=["bus", "car"])
    assert ds.classes == ["__background__", "bus", "car"]
    assert ds[0][1]["labels"].tolist() == [2, 1]
    assert ds.report.ignored_objects["other classes"] == 1
    onto = {
        "tools": [{"title": t, "tool": "polygon", "schemaId": t} for t in ("car", "bus", "bike")]
        + [{"title": "kp", "tool": "point"}]
    }
    ds = AngoDataset(assets, root=tmp_path / "images", ontology=onto)
    assert ds.classes == ["__background__", "car", "bus", "bike"]
    with pytest.raises(OntologyError, match="not in the ontology"):
        AngoDataset(assets, root=tmp_path / "images", ontology=onto, classes=["truck"])


def test_stage_selection_skips_and_reports(tmp_path: Path) -> None:
    label = {"stage": "Label", "stageId": "L", "tools": [make_polygon(SQUARE, "car")]}
    assets = [
        make_asset([make_polygon(SQUARE), make_polygon(SQUARE)], stage_history=[label]),
        make_asset([make_polygon(SQUARE)]),
    ]
    write_images(tmp_path / "images", assets)
    with pytest.warns(AngoTorchWarning, match="1 assets skipped"):
        ds = AngoDataset(assets, root=tmp_path / "images", stage="Label")
    assert len(ds) == 1 and len(ds[0][1]["labels"]) == 1
    assert ds.report.skipped_assets[0][0] == 1
    assert len(AngoDataset(assets, root=tmp_path / "images")[0][1]["labels"]) == 2


def test_degenerate_and_outside_objects_are_dropped_and_counted(tmp_path: Path) -> None:
    assets = [
        make_asset(
            [
                make_polygon(SQUARE),
                make_polygon([[1, 1], [5, 1]]),
                make_polygon([[100, 100], [120, 100], [110, 120]]),
                make_box(3, 3, 0, 5),
                # a sliver between pixel centres: non-empty box, empty mask
                make_polygon([[2.6, 1], [2.9, 1], [2.9, 9]]),
            ]
        )
    ]
    write_images(tmp_path / "images", assets)
    with pytest.warns(AngoTorchWarning, match="objects dropped"):
        ds = AngoDataset(assets, root=tmp_path / "images", task="instance")
    assert ds.report.dropped_objects == {"degenerate geometry": 1, "outside the image": 1}
    assert ds.report.ignored_objects == {"bounding-box": 1}
    target = ds[0][1]
    assert len(target["labels"]) == 1 and ds.report.empty_after_clipping == 1


def test_semantic_overlap_policies(tmp_path: Path) -> None:
    a = make_polygon([[0, 0], [6, 0], [6, 6], [0, 6]], "a")
    b = make_polygon([[3, 3], [9, 3], [9, 9], [3, 9]], "b")
    assets = [make_asset([a, b])]
    last = _ds(tmp_path, assets, task="semantic")[0][1]["mask"]
    assert last[4, 4] == 2 and last[1, 1] == 1 and last[8, 8] == 2
    ignore = AngoDataset(assets, root=tmp_path / "images", task="semantic", overlap="ignore")
    m = ignore[0][1]["mask"]
    assert m[4, 4] == 255 and m[1, 1] == 1 and m[8, 8] == 2


def test_brush_semantic_and_components(tmp_path: Path) -> None:
    asset = make_asset([make_polygon([[10, 0], [17, 0], [17, 11], [10, 11]], "car")])
    asset["task"]["brushDataUrl"] = "https://bucket.s3.amazonaws.com/brush.png"
    images = write_images(tmp_path / "images", [asset])
    write_brush(
        brush_path(images, asset),
        (H, W),
        {"#f44336": (slice(0, 3), slice(0, 4)), "#00ff00": (slice(5, 8), slice(0, 3))},
    )
    onto = {
        "tools": [
            {"title": "car", "tool": "polygon"},
            {"title": "road", "tool": "brush", "color": "#F44336"},
            {"title": "grass", "tool": "brush", "color": "#00ff00"},
        ]
    }
    ds = AngoDataset([asset], root=images, ontology=onto, task="semantic")
    assert ds.classes == ["__background__", "car", "road", "grass"]
    m = ds[0][1]["mask"]
    assert (m[0:3, 0:4] == 2).all() and (m[5:8, 0:3] == 3).all() and (m[:, 10:] == 1).all()
    assert int((m == 0).sum()) == H * W - 12 - 9 - 7 * H
    # brush_colors instead of an ontology
    ds2 = AngoDataset([asset], root=images, brush_colors={"#f44336": "road"}, task="semantic")
    assert ds2.classes == ["__background__", "car", "road"]
    # one instance per connected component, boxes from the component
    inst = AngoDataset(
        [asset], root=images, ontology=onto, task="instance", brush_instances="components"
    )
    t = inst[0][1]
    assert t["labels"].tolist() == [1, 2, 3]
    assert t["boxes"].tolist()[1:] == [[0, 0, 4, 3], [0, 5, 3, 8]]
    assert t["masks"][1].sum() == 12 and t["area"].tolist()[1:] == [12, 9]
    # no ontology, no colours: one class per colour, announced
    with pytest.warns(AngoTorchWarning, match="2 brush colours became classes"):
        ds3 = AngoDataset([asset], root=images, task="semantic")
    assert ds3.classes == ["__background__", "#00ff00", "#f44336", "car"]


def test_brush_of_another_size_is_resized_with_a_warning(tmp_path: Path) -> None:
    asset = make_asset([])
    asset["task"]["brushDataUrl"] = "https://b/x.png"
    images = write_images(tmp_path / "images", [asset])
    write_brush(
        brush_path(images, asset),
        (2 * H, 2 * W),
        {"#ff0000": (slice(0, 4), slice(0, 4))},
    )
    ds = AngoDataset([asset], root=images, task="semantic", brush_colors={"#ff0000": "x"})
    with pytest.warns(AngoTorchWarning, match="resized nearest-neighbour"):
        m = ds[0][1]["mask"]
    assert (m[0:2, 0:2] == 1).all() and m.sum() == 4 and ds.report.brush_resized == 1


def test_size_mismatch_is_an_error(tmp_path: Path) -> None:
    asset = make_asset([make_polygon(SQUARE)])
    write_images(tmp_path / "images", [asset])
    asset["metadata"] = {"width": 34, "height": 22}
    ds = AngoDataset([asset], root=tmp_path / "images")
    with pytest.raises(SizeMismatchError, match=r"is 17×11 but the export says 34×22"):
        ds[0]
    assert ds.get_height_and_width(0) == (22, 34)  # from metadata, no decode


def test_missing_size_reads_the_header(tmp_path: Path) -> None:
    asset = make_asset([make_polygon(SQUARE)], width=None, height=None)
    ds = _ds(tmp_path, [asset])
    assert ds.get_height_and_width(0) == (H, W)
    assert ds[0][1]["masks"].shape == (1, H, W)


def test_multi_page_assets_give_one_sample_per_annotated_page(tmp_path: Path) -> None:
    asset = make_asset(
        [make_polygon(SQUARE, page=0), make_polygon(SQUARE, page=2), make_polygon(SQUARE, page=2)]
    )
    asset["dataset"] = ["https://x/p0.png", "https://x/p1.png", "https://x/p2.png"]
    folder = tmp_path / "images" / f"{asset['externalId']}.pages"
    write_images(folder, [{"externalId": str(p), "metadata": {}} for p in range(3)])
    ds = AngoDataset([asset], root=tmp_path / "images")
    assert len(ds) == 2
    assert [len(ds[i][1]["labels"]) for i in range(2)] == [1, 2]


def test_attributes_and_image_classifications(tmp_path: Path) -> None:
    c = {"objectId": "c", "schemaId": "k", "tool": "radio", "title": "occluded", "answer": "no"}
    asset = make_asset([make_polygon(SQUARE, classifications=[c])])
    asset["task"]["classifications"] = [
        {"title": "weather", "tool": "checkbox", "answer": ["rain"]}
    ]
    _, t = _ds(tmp_path, [asset], attributes=True)[0]
    assert t["attributes"] == [{"occluded": "no"}]
    assert t["classifications"] == {"weather": ("rain",)}


def test_on_error_skip_and_bad_arguments(tmp_path: Path) -> None:
    good = make_asset([make_polygon(SQUARE)])
    write_images(tmp_path / "images", [good])
    with pytest.warns(AngoTorchWarning, match="unreadable"):
        ds = AngoDataset(
            [good, {"externalId": "broken.png"}], root=tmp_path / "images", on_error="skip"
        )
    assert len(ds) == 1 and ds.report.skipped_assets[0][1] == "broken.png"
    with pytest.raises(ango_torch.ExportFormatError):
        AngoDataset([good, {"externalId": "broken.png"}], root=tmp_path / "images")
    with pytest.raises(ValueError, match="task must be one of"):
        AngoDataset([good], task="panoptic")  # type: ignore[arg-type]
    with pytest.raises(IndexError, match="out of range"):
        ds[3]


def test_expired_urls_warn_without_root() -> None:
    asset = make_asset([])
    asset["asset"] = (
        "https://b.s3.amazonaws.com/a.png?X-Amz-Date=20200101T000000Z"
        "&X-Amz-Expires=3600&X-Amz-Signature=x"
    )
    with pytest.warns(AngoTorchWarning, match="expired"):
        AngoDataset([asset])


def test_collate_fn_and_transforms(tmp_path: Path) -> None:
    from torchvision.transforms import v2

    assets = [make_asset([make_polygon(SQUARE)]) for _ in range(2)]
    ds = _ds(tmp_path, assets, transforms=v2.RandomHorizontalFlip(p=1.0))
    images, targets = ango_torch.collate_fn([ds[0], ds[1]])
    assert len(images) == 2 and targets[1]["image_id"] == 1
    # flipped: box and mask move together
    assert targets[0]["boxes"].tolist() == [[W - 8, 2, W - 2, 7]]
    assert targets[0]["masks"][0, 2:7, W - 8 : W - 2].all()
    assert np.asarray(targets[0]["masks"]).sum() == 30
