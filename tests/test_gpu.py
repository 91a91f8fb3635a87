"""CUDA checks (skipped without a GPU): a bf16 Mask R-CNN step on collated targets,
and a DeepLabV3 step, with the targets moved by non-blocking copies from pinned memory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.transforms import v2

import ango_torch

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "data"
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _loader(task: str, transforms: v2.Transform) -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
    ds = ango_torch.AngoDataset(
        SAMPLE / "sample_export.json",
        task=task,  # type: ignore[arg-type]
        root=SAMPLE / "images",
        ontology=SAMPLE / "ontology.json",
        transforms=transforms,
        brush_instances=None,
    )
    return torch.utils.data.DataLoader(
        ds, batch_size=3, num_workers=2, pin_memory=True, collate_fn=ango_torch.collate_fn
    )


def test_mask_rcnn_bf16_step_on_cuda() -> None:
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    loader = _loader("instance", v2.ToDtype(torch.float32, scale=True))
    model = (
        maskrcnn_resnet50_fpn(
            weights=None, weights_backbone=None, num_classes=len(loader.dataset.classes)
        )
        .cuda()
        .train()
    )  # type: ignore[attr-defined]
    images, targets = next(iter(loader))
    assert all(im.is_pinned() for im in images)
    images = [im.cuda(non_blocking=True) for im in images]
    targets = [
        {k: v.cuda(non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in t.items()}
        for t in targets
    ]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        losses = model(images, targets)
    loss = sum(losses.values())
    loss.backward()
    assert torch.isfinite(loss) and losses["loss_mask"] > 0


def test_deeplabv3_step_on_cuda() -> None:
    from torchvision.models.segmentation import deeplabv3_resnet50

    loader = _loader(
        "semantic", v2.Compose([v2.Resize((256, 256)), v2.ToDtype(torch.float32, scale=True)])
    )
    model = (
        deeplabv3_resnet50(
            weights=None, weights_backbone=None, num_classes=len(loader.dataset.classes)
        )
        .cuda()
        .train()
    )  # type: ignore[attr-defined]
    images, targets = next(iter(loader))
    x = torch.stack(list(images)).cuda(non_blocking=True)
    y = torch.stack([t["mask"] for t in targets]).cuda(non_blocking=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(model(x)["out"], y, ignore_index=255)
    loss.backward()
    assert torch.isfinite(loss)
