"""Targets against independent references: torchvision's own COCO wrapper and pycocotools.

The bundled sample (real photographs) is converted to COCO with ``write_coco`` and read
back through ``torchvision.datasets.CocoDetection`` + ``wrap_dataset_for_transforms_v2``,
which rasterizes every polygon with pycocotools: keys, dtypes, tv_tensor types, box
format and canvas must match ours, and each mask must agree at IoU ≥ 0.95 (median ≥ 0.98).
"""

from __future__ import annotations

import statistics
import warnings
from pathlib import Path

import pytest
import torch
from torchvision import tv_tensors
from torchvision.datasets import CocoDetection, wrap_dataset_for_transforms_v2

import ango_torch

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[ango_torch.AngoDataset, object]:
    ds = ango_torch.AngoDataset(
        SAMPLE / "sample_export.json",
        task="instance",
        root=SAMPLE / "images",
        ontology=SAMPLE / "ontology.json",
    )
    ann = tmp_path_factory.mktemp("coco") / "gt.json"
    ango_torch.write_coco(ds, ann)
    with warnings.catch_warnings():  # pycocotools prints and may warn under numpy 2
        warnings.simplefilter("ignore", DeprecationWarning)
        coco = CocoDetection(str(SAMPLE / "images"), str(ann))
    ref = wrap_dataset_for_transforms_v2(coco, target_keys={"boxes", "labels", "masks", "image_id"})
    return ds, ref


def _ref_item(ref: object, i: int) -> tuple[object, dict]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*__array__ implementation.*")
        return ref[i]  # type: ignore[index, no-any-return]


def test_target_layout_equals_torchvision_wrapper(pair: tuple) -> None:
    ds, ref = pair
    for i in range(len(ds)):
        _, ours = ds[i]
        _, theirs = _ref_item(ref, i)
        for key in ("boxes", "labels", "masks", "image_id"):
            assert type(ours[key]) is type(theirs[key]), key
        for key in ("boxes", "labels", "masks"):
            assert ours[key].dtype == theirs[key].dtype, key
            assert ours[key].shape == theirs[key].shape, key
        assert ours["boxes"].format == theirs["boxes"].format == tv_tensors.BoundingBoxFormat.XYXY
        assert ours["boxes"].canvas_size == theirs["boxes"].canvas_size
        assert ours["image_id"] == theirs["image_id"] == i
        assert torch.equal(ours["labels"], theirs["labels"])
        torch.testing.assert_close(
            ours["boxes"].as_subclass(torch.Tensor),
            theirs["boxes"].as_subclass(torch.Tensor),
            atol=1e-3,
            rtol=0,
        )


def test_masks_agree_with_pycocotools(pair: tuple) -> None:
    """IoU per instance, ours vs pycocotools' rasterization of the same polygons/RLE."""
    ds, ref = pair
    ious = []
    for i in range(len(ds)):
        ours = ds[i][1]["masks"].bool()
        theirs = _ref_item(ref, i)[1]["masks"].bool()
        inter = (ours & theirs).flatten(1).sum(1).double()
        union = (ours | theirs).flatten(1).sum(1).double()
        ious += (inter / union).tolist()
    assert len(ious) == 30
    assert min(ious) >= 0.95 and statistics.median(ious) >= 0.98, (
        min(ious),
        statistics.median(ious),
    )
