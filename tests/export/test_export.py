"""Stage selection and the ontology's three wrappers."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builders import make_asset, make_box

import ango_torch
from ango_torch.errors import OntologyError, StageNotFoundError

SCHEMA = {
    "tools": [
        {"schemaId": "s1", "title": "road", "tool": "brush", "color": "#F44336"},
        {"schemaId": "s2", "title": "car", "tool": "bounding-box", "color": "#00ff00"},
        {"schemaId": "s3", "title": "bike", "tool": "polygon"},
    ],
    "classifications": [{"title": "weather"}],
    "relations": [],
}


def _staged() -> list[dict]:
    label = {"stage": "Label", "stageId": "st-label", "tools": [make_box(0, 0, 1, 1)]}
    review = {"stage": "Review", "stageId": "st-review", "tools": []}
    return [
        make_asset([make_box(0, 0, 2, 2)], stage_history=[label, review]),
        make_asset(
            [make_box(0, 0, 2, 2)],
            stage_history=[label, {**label, "tools": [make_box(0, 0, 1, 1), make_box(1, 1, 1, 1)]}],
        ),
        make_asset([make_box(0, 0, 2, 2)]),
    ]


def test_stage_selection_by_name_and_id() -> None:
    export = ango_torch.load_export(_staged())
    idx = export.index
    np.testing.assert_array_equal(export.snapshot_rows(None), idx.asset_snap_start)
    by_name, by_id = export.snapshot_rows("Label"), export.snapshot_rows("st-label")
    np.testing.assert_array_equal(by_name, by_id)
    assert by_name[2] == -1  # the third asset never went through Label
    # The second asset went through Label twice: the latest snapshot wins.
    s = int(by_name[1])
    assert idx.snap_obj_end[s] - idx.snap_obj_start[s] == 2
    review = export.snapshot_rows("Review")
    assert review.tolist()[1:] == [-1, -1]
    complete = export.snapshot_rows("Complete")  # the answer's own stage
    np.testing.assert_array_equal(complete, idx.asset_snap_start)
    assert export.stage_names() == {"Complete": 3, "Label": 3, "Review": 1}


def test_unknown_stage_lists_those_present() -> None:
    export = ango_torch.load_export(_staged())
    with pytest.raises(StageNotFoundError, match=r"'QA'.*stages present: Complete, Label, Review"):
        export.snapshot_rows("QA")


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,
        lambda s: {"categorySchema": s},
        lambda s: {"data": {"project": {"categorySchema": s, "name": "p"}}},
    ],
    ids=["bare", "categorySchema", "api-response"],
)
def test_ontology_wrappers(tmp_path: Path, wrap) -> None:  # type: ignore[no-untyped-def]
    for source in (wrap(SCHEMA), tmp_path / "o.json"):
        (tmp_path / "o.json").write_text(json.dumps(wrap(SCHEMA)))
        onto = ango_torch.load_ontology(source)
        assert onto.titles() == ["road", "car", "bike"]
        assert onto.brush_colors() == {"#f44336": "road"}
        assert onto.by_schema_id()["s2"].title == "car"


@pytest.mark.parametrize(
    "bad",
    [[], {"tools": "x"}, {"tools": [{"tool": "polygon"}]}, {"tools": [3]}],
    ids=["list", "tools-str", "no-title", "int"],
)
def test_bad_ontology(bad: object) -> None:
    with pytest.raises(OntologyError):
        ango_torch.load_ontology(bad)  # type: ignore[arg-type]


def test_bad_ontology_file(tmp_path: Path) -> None:
    (tmp_path / "o.json").write_text("{nope")
    with pytest.raises(OntologyError, match="invalid JSON"):
        ango_torch.load_ontology(tmp_path / "o.json")


# ------------------------------------------------- to_coco agrees with the targets


def _decode(segmentation: Any, h: int, w: int) -> np.ndarray:
    """pycocotools' own decoding of a COCO segmentation (polygons or uncompressed RLE)."""
    mask_api = pytest.importorskip("pycocotools.mask")
    with warnings.catch_warnings():  # pycocotools' Cython vs numpy 2, not our code
        warnings.simplefilter("ignore", DeprecationWarning)
        if isinstance(segmentation, list):
            rle = mask_api.merge(mask_api.frPyObjects(segmentation, h, w))
        else:
            rle = mask_api.frPyObjects(segmentation, h, w)
        return np.asarray(mask_api.decode(rle), bool)


def _datasets(tmp_path: Path, task: str) -> list[ango_torch.AngoDataset]:
    from builders import CLASSES, rich_assets

    sample = Path(__file__).resolve().parents[2] / "examples" / "data"

    rich = rich_assets(tmp_path / "images")
    with pytest.warns(ango_torch.AngoTorchWarning):
        synthetic = ango_torch.AngoDataset(
            rich,
            task=task,  # type: ignore[arg-type]
            root=tmp_path / "images",
            classes=CLASSES,
        )
    kw: dict[str, Any] = {"root": sample / "images", "ontology": sample / "ontology.json"}
    out = [synthetic, ango_torch.AngoDataset(sample / "sample_export.json", task=task, **kw)]  # type: ignore[arg-type]
    if task != "semantic":
        out.append(
            ango_torch.AngoDataset(
                sample / "sample_export.json",
                task=task,  # type: ignore[arg-type]
                brush_instances="components",
                **kw,
            )
        )
    return out


@pytest.mark.parametrize("task", ["detection", "instance", "semantic"])
def test_to_coco_agrees_with_the_targets_instance_for_instance(tmp_path: Path, task: str) -> None:
    """Per sample: COCO annotations (category, bbox) == target labels/boxes, in order;
    masks decoded by pycocotools == target masks (instance) or, painted in order, the
    semantic map."""
    for ds in _datasets(tmp_path, task):
        coco = ango_torch.to_coco(ds)
        by_image: dict[int, list[dict[str, Any]]] = {im["id"]: [] for im in coco["images"]}
        for a in coco["annotations"]:
            by_image[a["image_id"]].append(a)
        for i in range(len(ds)):
            h, w = ds.get_height_and_width(i)
            target = ds.load_target(i, (h, w))
            anns = by_image[i]
            decoded = [_decode(a["segmentation"], h, w) for a in anns]
            if task == "semantic":
                # brush pixels first (brush decoding is tested elsewhere), then the shapes
                brush = ds.brush_map(i, (h, w))
                painted = np.zeros((h, w), np.int64) if brush is None else brush.copy()
                for a, m in zip(anns, decoded, strict=True):
                    painted[m] = a["category_id"]
                _assert_close_masks(painted, target["mask"].numpy(), f"{ds!r} sample {i}")
                continue
            labels = target["labels"].tolist()
            assert [a["category_id"] for a in anns] == labels, f"{ds!r} sample {i}"
            xyxy = [[x, y, x + bw, y + bh] for x, y, bw, bh in (a["bbox"] for a in anns)]
            np.testing.assert_allclose(
                np.array(xyxy, np.float32).reshape(-1, 4), target["boxes"].numpy(), atol=1e-4
            )
            if task == "instance":
                for k, m in enumerate(decoded):
                    _assert_close_masks(m, target["masks"][k].numpy().astype(bool), f"{i}/{k}")


def _assert_close_masks(ours: np.ndarray, ref: np.ndarray, where: str) -> None:
    """Equal up to the boundary: pycocotools rasterizes polygons on a 5x supersampled
    outline, not by pixel centres, so edge pixels may differ (ties on an edge through
    pixel centres, up to 2 px at the sharp corners of rotated boxes).  Every differing
    pixel must lie within 2 px of a boundary of ``ours``, and at most 5% differ."""
    ours, ref = np.asarray(ours, np.int64), np.asarray(ref, np.int64)
    assert ours.shape == ref.shape, where
    differ = ours != ref

    def within2(m: np.ndarray, pred: np.ndarray) -> np.ndarray:
        h, w = m.shape
        padded = np.pad(pred, 2, constant_values=False)
        out = np.zeros(m.shape, bool)
        for dy in range(5):
            for dx in range(5):
                out |= padded[dy : dy + h, dx : dx + w]
        return out

    edge = np.zeros(ours.shape, bool)
    edge[:, 1:] |= ours[:, 1:] != ours[:, :-1]
    edge[1:, :] |= ours[1:, :] != ours[:-1, :]
    assert not (differ & ~within2(ours, edge)).any(), f"{where}: differences off the boundary"
    # a handful of outline pixels, never a misplaced or missing instance
    assert differ.sum() <= 8 + (ref != 0).sum() // 20, f"{where}: {int(differ.sum())} differ"
