"""Semantic targets of video frames and clips: per-frame label maps, interpolated
shapes included.

Expected masks are pycocotools' rasterization (``frPyObjects`` + ``decode``) of the
square each track is at on that frame, its corners worked out by hand (linear between
the key entries), never the dataset's own output.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from builders import make_asset, make_polygon, write_images
from pycocotools import mask as mask_utils
from torchvision import tv_tensors

import ango_torch
from ango_torch.datasets.video import AngoVideoDataset, split_clip_target

W, H = 40, 30


def _square(x: float, y: float, side: float = 6) -> list[list[float]]:
    return [[x, y], [x + side, y], [x + side, y + side], [x, y + side]]


def _coco(points: list[list[float]]) -> np.ndarray:
    rle = mask_utils.frPyObjects([[c for p in points for c in p]], H, W)
    with warnings.catch_warnings():  # pycocotools' Cython vs numpy 2, not our code
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.asarray(mask_utils.decode(mask_utils.merge(rle)), bool)


def _asset(tools: list[dict[str, Any]], external_id: str) -> dict[str, Any]:
    asset = make_asset(tools, external_id=external_id, width=W, height=H)
    asset["metadata"].update(frameTotal=10, frameRate=10)
    return asset


def test_video_frames_give_semantic_masks_with_interpolated_shapes() -> None:
    # car: key squares at (2, 2) on frame 0 and (10, 6) on frame 4 → (6, 4) on frame 2;
    # person: one key square at (20, 20) on frame 2 only
    tools = [
        make_polygon(_square(2, 2), "car", objectId="c", page=0),
        make_polygon(_square(10, 6), "car", objectId="c", page=4),
        make_polygon(_square(20, 20), "person", objectId="p", page=2),
    ]
    ds = ango_torch.AngoDataset([_asset(tools, "v.mp4")], task="semantic", interpolate=True)
    assert [ds.sample_location(i)[1] for i in range(len(ds))] == [0, 1, 2, 3, 4]
    assert not ds.report.skipped_assets
    car, person = ds.classes.index("car"), ds.classes.index("person")
    mask = ds.load_target(2, (H, W))["mask"].numpy()
    expected = np.zeros((H, W), np.int64)
    expected[_coco(_square(6, 4))] = car
    expected[_coco(_square(20, 20))] = person
    assert np.array_equal(mask, expected)
    # frame 1: the car at (4, 3), the person absent (a single key entry)
    expected = np.where(_coco(_square(4, 3)), car, 0)
    assert np.array_equal(ds.load_target(1, (H, W))["mask"].numpy(), expected)


def test_clip_semantic_mask_is_t_h_w(tmp_path: Path) -> None:
    # a 3-page multi-image asset read as a clip: square at (0, 0) on page 0, (8, 4) on
    # page 2 → (4, 2) on page 1
    asset = make_asset(
        [
            make_polygon(_square(0, 0), "car", objectId="c", page=0),
            make_polygon(_square(8, 4), "car", objectId="c", page=2),
        ],
        width=W,
        height=H,
    )
    asset["dataset"] = [f"https://x/{asset['assetId']}/p{p}.png" for p in range(3)]
    write_images(
        tmp_path / f"{asset['externalId']}.pages",
        [{"externalId": str(p), "metadata": {"width": W, "height": H}} for p in range(3)],
    )
    vds = AngoVideoDataset([asset], root=tmp_path, clip_len=3, task="semantic")
    _, target = vds[0]
    car = vds.classes.index("car")
    assert target["mask"].shape == (3, H, W) and target["frames"].tolist() == [0, 1, 2]
    per_frame = split_clip_target(target)
    for t, corner in enumerate([(0, 0), (4, 2), (8, 4)]):
        expected = np.where(_coco(_square(*corner)), car, 0)
        assert np.array_equal(target["mask"][t].numpy(), expected)
        assert np.array_equal(per_frame[t]["mask"].numpy(), expected)
        assert per_frame[t]["frame"] == t and isinstance(per_frame[t]["mask"], tv_tensors.Mask)


def test_a_video_brush_is_applied_to_no_frame_and_counted() -> None:
    from ango_torch.targets.selection import unplaced_brush

    # one brush PNG per task: which frame it was painted on is unknown; the image
    # (not a video) with a brush is not counted
    video = _asset([make_polygon(_square(2, 2), "car", page=0)], "v.mp4")
    image = make_asset([], width=W, height=H)
    for a in (video, image):
        a["task"]["brushDataUrl"] = "https://x/brush.png"
    idx = ango_torch.load_export([video, image]).index
    assert unplaced_brush(idx, np.array([0, 1], np.int32)) == 1
