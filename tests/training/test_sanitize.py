"""``sanitize_labels_getter`` with torchvision's own ``v2.SanitizeBoundingBoxes``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from builders import make_asset, make_box, make_polygon, write_images
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

import ango_torch


def _square(x0: float, y0: float, x1: float, y1: float, title: str) -> dict:
    return make_polygon([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], title)


@pytest.mark.parametrize("task", ["instance", "detection"])
def test_sanitize_keeps_every_per_instance_key_aligned(tmp_path: Path, task: str) -> None:
    # 17×11 image; CenterCrop((5, 7)) keeps x 5..12, y 3..8 (torchvision: top = (11-5)//2,
    # left = (17-7)//2).  By hand: square 0 (x 0..3) and square 2 (x 14..17) fall outside and
    # become zero-width boxes; squares 1 and 3 keep ≥ 1 pixel of width and height.
    tools = [
        _square(0, 0, 3, 3, "a"),
        _square(6, 3, 11, 8, "b"),
        _square(14, 8, 17, 11, "c"),
        _square(4, 4, 7, 7, "d"),
    ]
    if task == "detection":
        tools.append(make_box(0, 8, 2, 2, "e"))  # outside the crop too
    assets = [make_asset(tools)]
    write_images(tmp_path / "images", assets)
    ds = ango_torch.AngoDataset(assets, root=tmp_path / "images", task=task)  # type: ignore[arg-type]
    image, target = ds[0]
    kept = [1, 3]
    crop = v2.CenterCrop((5, 7))
    sanitize = v2.SanitizeBoundingBoxes(labels_getter=ango_torch.sanitize_labels_getter)
    out_image, out = sanitize(*crop(image, target))
    assert out_image.shape[-2:] == (5, 7)
    n = len(out["boxes"])
    assert n == len(kept)
    assert {k: len(out[k]) for k in ("labels", "area", "iscrowd")} == dict.fromkeys(
        ("labels", "area", "iscrowd"), n
    )
    torch.testing.assert_close(out["labels"], target["labels"][kept])
    torch.testing.assert_close(out["area"], target["area"][kept])
    torch.testing.assert_close(out["iscrowd"], target["iscrowd"][kept])
    if task == "instance":
        # torchvision's own crop of the uncropped masks, rows of the kept instances
        cropped = F.center_crop(target["masks"], [5, 7])
        torch.testing.assert_close(out["masks"].as_subclass(torch.Tensor), cropped[kept])
    # torchvision's default getter filters "labels" alone: area/iscrowd keep every row
    default = v2.SanitizeBoundingBoxes()(*crop(image, target))[1]
    assert len(default["labels"]) == n and len(default["area"]) == len(target["area"])


def test_getter_accepts_the_target_dict_and_refuses_others() -> None:
    target = {"labels": torch.tensor([1]), "area": torch.tensor([2.0]), "asset_id": "x"}
    got = ango_torch.sanitize_labels_getter(target)
    assert [t.tolist() for t in got] == [[1], [2.0]]
    with pytest.raises(ValueError, match="labels"):
        ango_torch.sanitize_labels_getter((torch.zeros(1), {"boxes": torch.zeros(0, 4)}))
