"""Real torchvision models (weights=None, offline) train a step on collated batches,
and transforms.v2 pipelines keep boxes and masks consistent."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

import ango_torch

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "data"


def _ds(task: str, transforms: object = None) -> ango_torch.AngoDataset:
    return ango_torch.AngoDataset(
        SAMPLE / "sample_export.json",
        task=task,  # type: ignore[arg-type]
        root=SAMPLE / "images",
        ontology=SAMPLE / "ontology.json",
        transforms=transforms,
    )  # type: ignore[arg-type]


@pytest.mark.slow
def test_mask_rcnn_forward_backward() -> None:
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    ds = _ds("instance", v2.Compose([v2.Resize(128), v2.ToDtype(torch.float32, scale=True)]))
    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=len(ds.classes), min_size=128, max_size=192
    )
    model.train()
    images, targets = ango_torch.collate_fn([ds[0], ds[2]])
    losses = model(list(images), list(targets))
    assert {"loss_classifier", "loss_box_reg", "loss_mask"} <= losses.keys()
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.slow
def test_deeplabv3_forward_backward() -> None:
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    ds = _ds("semantic", v2.Compose([v2.Resize((96, 128)), v2.ToDtype(torch.float32, scale=True)]))
    model = deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=len(ds.classes)
    )
    model.train()
    images, targets = ango_torch.collate_fn([ds[1], ds[2]])
    batch = torch.stack(list(images))
    masks = torch.stack([t["mask"] for t in targets])
    out = model(batch)["out"]
    assert out.shape == (2, len(ds.classes), 96, 128)
    loss = torch.nn.functional.cross_entropy(out, masks, ignore_index=255)
    loss.backward()
    assert torch.isfinite(loss)


PIPELINES = {
    "hflip": v2.RandomHorizontalFlip(p=1.0),
    "iou-crop": v2.Compose([v2.RandomIoUCrop(), v2.SanitizeBoundingBoxes()]),
    "scale-jitter": v2.Compose([v2.ScaleJitter((200, 300)), v2.SanitizeBoundingBoxes()]),
    "random-resize": v2.Compose([v2.RandomResize(100, 300), v2.SanitizeBoundingBoxes()]),
}


@pytest.mark.parametrize("name", list(PIPELINES))
def test_transforms_keep_boxes_and_masks_consistent(name: str) -> None:
    torch.manual_seed(3)
    ds = _ds("instance", PIPELINES[name])
    for i in range(len(ds)):
        image, target = ds[i]
        boxes, masks, labels = target["boxes"], target["masks"], target["labels"]
        assert isinstance(boxes, tv_tensors.BoundingBoxes) and isinstance(masks, tv_tensors.Mask)
        assert len(boxes) == len(masks) == len(labels)
        assert masks.shape[-2:] == image.shape[-2:] == boxes.canvas_size
        for box, mask in zip(boxes, masks, strict=True):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            if not len(xs):
                continue  # cropped away entirely; the box was sanitized in step
            x1, y1, x2, y2 = box.tolist()
            # Each mask lies inside its (transformed) box, up to a pixel of rounding.
            assert xs.min() >= x1 - 1 and xs.max() < x2 + 1, (name, i)
            assert ys.min() >= y1 - 1 and ys.max() < y2 + 1, (name, i)
