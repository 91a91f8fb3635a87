"""Video: frame-exact decoding, per-frame samples and clips of the bundled sample.

The sample (examples/data/video/make_video.py) is a 160×120 window over coffee.png that
moves by (+2, +1) px per frame from (100, 60), with the frame index stamped as 8 black or
white 8×8 blocks in row 0.  Expected values here come from that description, computed by
hand in this file (the window formula, the stamp bits) and from the source frames built
from the photograph, never from the dataset's own output.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import ango_torch
from ango_torch.datasets.video import AngoVideoDataset, clip_collate, split_clip_target
from ango_torch.errors import AngoTorchWarning

VIDEO = Path(__file__).resolve().parents[2] / "examples" / "data" / "video"
FULL, KEYS = VIDEO / "video_export.json", VIDEO / "video_keyframes.json"
PHOTO = VIDEO.parent / "images" / "coffee.png"


def _torchcodec_loads() -> bool:
    if importlib.util.find_spec("torchcodec") is None:
        return False
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except Exception:  # FFmpeg's shared libraries missing
        return False
    return True


DECODERS = [
    pytest.param(
        "torchcodec",
        marks=pytest.mark.skipif(not _torchcodec_loads(), reason="torchcodec/FFmpeg missing"),
    ),
    "pyav",
]


def source(t: int) -> np.ndarray:
    """Frame ``t`` as encoded: the photo's window at (100 + 2t, 60 + t), stamped."""
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    x, y = 100 + 2 * t, 60 + t
    f = photo[y : y + 120, x : x + 160].copy()
    for bit in range(8):
        f[0:8, bit * 8 : bit * 8 + 8] = 255 if (t >> (7 - bit)) & 1 else 0
    return f


def stamp(chw: torch.Tensor) -> int:
    """The index stamped in a decoded ``[3, H, W]`` frame (block centres, threshold 127)."""
    f = chw.numpy()
    return sum(1 << (7 - b) for b in range(8) if f[:, 2:6, b * 8 + 2 : b * 8 + 6].mean() > 127)


def psnr(chw: torch.Tensor, t: int) -> float:
    mse = ((chw.numpy().transpose(1, 2, 0).astype(float) - source(t)) ** 2).mean()
    return 10 * math.log10(255**2 / mse)


def cup(t: int) -> list[float]:
    """The cup's XYXY box on frame t: photo box (170, 100, 50×40) minus the window."""
    x, y = 170 - 100 - 2 * t, 100 - 60 - t
    return [x, y, x + 50, y + 40]


@pytest.fixture(params=DECODERS)
def decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ANGO_TORCH_VIDEO_DECODER", request.param)
    return str(request.param)


def test_per_frame_samples_are_frame_exact(decoder: str) -> None:
    ds = ango_torch.AngoDataset(FULL, root=VIDEO, task="detection")
    assert len(ds) == 32  # every frame of the 32 is annotated
    for i in [17, 0, 31, 5, 5, 30]:  # random access, backwards and repeated
        image, target = ds[i]
        assert image.shape == (3, 120, 160) and image.dtype == torch.uint8
        assert stamp(image) == i == target["frame"]
        assert psnr(image, i) >= 35
        assert target["boxes"][0].tolist() == cup(i)
        assert target["track_ids"][0] == 0 and bool(target["keyframe"][0])


def test_clips_are_frame_exact(decoder: str) -> None:
    vds = AngoVideoDataset(FULL, root=VIDEO, clip_len=5, frame_step=3, clips="all")
    # 'all': clips of span 12 every 15 frames from 0 while they fit in 32 frames
    assert [vds.clip_frames(i).tolist()[0] for i in range(len(vds))] == [0, 15]
    for i in (1, 0):
        clip, target = vds[i]
        assert clip.shape == (5, 3, 120, 160) and clip.dtype == torch.uint8
        frames = target["frames"].tolist()
        assert frames == [15 * i + 3 * k for k in range(5)]
        assert [stamp(f) for f in clip] == frames
        assert min(psnr(f, t) for f, t in zip(clip, frames, strict=True)) >= 35
        cups = target["boxes"][(target["track_ids"] == 0)].tolist()
        assert cups == [cup(t) for t in frames]
        assert target["frame_ids"][target["track_ids"] == 0].tolist() == list(range(5))


def _stamps(loader: Any) -> list[int]:
    out = []
    for images, targets in loader:
        for image, target in zip(images, targets, strict=True):
            assert stamp(image) == target["frame"]
            assert psnr(image, target["frame"]) >= 35
            out.append(target["frame"])
    return out


def _worker_decoder(worker_id: int) -> None:
    # worker 0 decodes with torchcodec (where it loads), worker 1 with PyAV
    names = ["torchcodec" if _torchcodec_loads() else "pyav", "pyav"]
    os.environ["ANGO_TORCH_VIDEO_DECODER"] = names[worker_id]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_workers_decode_their_own_frames(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANGO_TORCH_VIDEO_DECODER", "pyav")
    ds = ango_torch.AngoDataset(FULL, root=VIDEO, task="detection")
    ds[3]  # the parent opens a decoder first: a forked worker must not use it
    sub = torch.utils.data.Subset(ds, [2, 30, 7, 11])
    loader = torch.utils.data.DataLoader(
        sub,
        batch_size=2,  # batch 0 to worker 0 (torchcodec), batch 1 to worker 1 (PyAV)
        num_workers=2,
        multiprocessing_context=method,
        worker_init_fn=_worker_decoder,
        collate_fn=ango_torch.collate_fn,
    )
    assert _stamps(loader) == [2, 30, 7, 11]


def test_key_frames_interpolate_to_the_full_export() -> None:
    full = ango_torch.AngoDataset(FULL, root=VIDEO, task="detection")
    keys = ango_torch.AngoDataset(KEYS, root=VIDEO, task="detection")
    assert len(keys) == len(full) == 32
    interpolated = 0
    for i in range(32):
        a = full.load_target(i, (120, 160))
        b = keys.load_target(i, (120, 160))
        assert b["frame"] == a["frame"] == i
        assert b["track_ids"].tolist() == a["track_ids"].tolist()
        assert (b["boxes"] - a["boxes"]).abs().max() <= 0.5
        assert b["labels"].tolist() == a["labels"].tolist()
        interpolated += int((~b["keyframe"]).sum())
        # the spoon (track 2) stops on frame 20: present on 0..19 only
        assert (2 in b["track_ids"].tolist()) == (i < 20)
    # key entries: cup 0/16/31, plate 0/31, spoon 0/10 (20 is its stop): 7 key instances
    # of 32 + 32 + 20 instances in all
    assert interpolated == 84 - 7
    assert keys.report.ignored_objects["track stop (interpolationStopped)"] == 1


def test_polygon_masks_interpolate_to_the_full_export() -> None:
    full = ango_torch.AngoDataset(FULL, root=VIDEO, task="instance", classes=["plate"])
    keys = ango_torch.AngoDataset(KEYS, root=VIDEO, task="instance", classes=["plate"])
    for i in (1, 13, 29):
        a, b = full.load_target(i, (120, 160)), keys.load_target(i, (120, 160))
        assert not bool(b["keyframe"][0])
        assert torch.equal(a["masks"], b["masks"])  # lerped vertices land on the same pixels


def test_interpolate_false_keeps_key_frames_only() -> None:
    keys = ango_torch.AngoDataset(KEYS, root=VIDEO, task="detection", interpolate=False)
    # live key entries: cup 0/16/31, plate 0/31, spoon 0/10
    assert [keys.sample_location(i)[1] for i in range(len(keys))] == [0, 10, 16, 31]


@pytest.mark.slow
def test_faster_rcnn_trains_a_step_on_video_frames() -> None:
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn
    from torchvision.transforms import v2

    ds = ango_torch.AngoDataset(
        KEYS, root=VIDEO, task="detection", transforms=v2.ToDtype(torch.float32, scale=True)
    )
    torch.manual_seed(0)
    model = fasterrcnn_mobilenet_v3_large_fpn(
        weights=None, weights_backbone=None, num_classes=len(ds.classes), min_size=120, max_size=160
    )
    model.train()
    images, targets = ango_torch.collate_fn([ds[3], ds[12]])
    losses = model(list(images), [{k: t[k] for k in ("boxes", "labels")} for t in targets])
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.slow
def test_r3d_18_forward_backward_on_clip_batch() -> None:
    from torchvision.models.video import r3d_18

    vds = AngoVideoDataset(KEYS, root=VIDEO, clip_len=4, frame_step=2)
    clips, targets = clip_collate([vds[0], vds[1]])
    assert clips.shape == (2, 4, 3, 120, 160)
    x = clips[..., :64, :64].permute(0, 2, 1, 3, 4).float() / 255  # [B, 3, T, H, W]
    model = r3d_18(weights=None, num_classes=len(vds.classes))
    # a clip-level label: whether the clip shows the spoon (class 'spoon')
    y = torch.tensor([int(vds.classes.index("spoon") in t["labels"].tolist()) for t in targets])
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    per_frame = split_clip_target(targets[0])
    assert [f["frame"] for f in per_frame] == targets[0]["frames"].tolist()
    assert sum(len(f["labels"]) for f in per_frame) == len(targets[0]["labels"])


def test_clip_target_follows_a_v2_flip() -> None:
    from torchvision.transforms import v2

    vds = AngoVideoDataset(FULL, root=VIDEO, clip_len=3, transforms=v2.RandomHorizontalFlip(1.0))
    clip, target = vds[0]
    # a horizontal flip maps x to 160 - x on every frame
    expected = [[160 - b[2], b[1], 160 - b[0], b[3]] for b in (cup(0), cup(1), cup(2))]
    assert target["boxes"][target["track_ids"] == 0].tolist() == expected
    assert stamp(torch.flip(clip[1], dims=[-1])) == 1


def test_video_decoders_agree_with_the_stamps() -> None:
    from ango_torch.assets.video import open_video

    data = (VIDEO / "pan.mp4").read_bytes()
    names = ["pyav"] + (["torchcodec"] if _torchcodec_loads() else [])
    for name in names:
        reader = open_video(data, decoder=name)  # type: ignore[arg-type]
        assert (reader.num_frames, reader.height, reader.width) == (32, 120, 160)
        frames = reader.frames([9, 3, 31, 3])
        assert [stamp(torch.from_numpy(f)) for f in frames] == [9, 3, 31, 3]


def test_wrong_frame_total_warns_and_entries_past_it_are_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANGO_TORCH_VIDEO_DECODER", "pyav")
    export = json.loads(FULL.read_text())
    # say 30 frames (the file has 32): entries on frames 30 and 31 (cup, plate) are left
    # out and counted, and loading a frame warns that the decoder finds 32
    export[0]["metadata"]["frameTotal"] = 30
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    with pytest.warns(AngoTorchWarning, match="dropped"):
        ds = ango_torch.AngoDataset(path, root=VIDEO, task="detection")
    assert len(ds) == 30
    assert ds.report.dropped_objects["video entry past metadata.frameTotal"] == 4
    with pytest.warns(AngoTorchWarning, match="frameTotal is 30 but the .* decoder finds 32"):
        image, target = ds[29]
    assert stamp(image) == 29 == target["frame"]
    # the mismatch is in the report too, once, saying which count is used for what
    (entry,) = ds.report.video_metadata
    assert entry[:2] == (0, "pan.mp4") and "frameTotal is 30" in entry[2]
    assert "decoder numbers them" in entry[2] and "video metadata of pan.mp4" in (
        ds.report.summary()
    )
    ds[28]
    assert len(ds.report.video_metadata) == 1


def test_wrong_frame_rate_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANGO_TORCH_VIDEO_DECODER", "pyav")
    export = json.loads(FULL.read_text())
    # the file is encoded at 8 fps (make_video.py's FPS); the metadata says 30
    export[0]["metadata"]["frameRate"] = 30
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    ds = ango_torch.AngoDataset(path, root=VIDEO, task="detection")
    with pytest.warns(AngoTorchWarning, match=r"frameRate is 30 but the \w+ decoder finds 8 fps"):
        ds.load_image(3)
    assert [(a, n) for a, n, _ in ds.report.video_metadata] == [(0, "pan.mp4")]
    assert stamp(ds.load_image(3)) == 3  # frames still by index
