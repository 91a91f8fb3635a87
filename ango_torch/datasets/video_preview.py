"""Animated GIF previews of video clips: boxes and masks per frame, track ids, and
interpolated instances drawn dashed (key-frame instances solid)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw

from .preview import draw_sample
from .video import AngoVideoDataset, split_clip_target

__all__ = ["clip_frames_drawn", "preview_clips", "write_gif"]


def _dashed(draw: ImageDraw.ImageDraw, box: Sequence[float], color: str, dash: int = 4) -> None:
    x1, y1, x2, y2 = (float(v) for v in box)
    for a, b, horizontal in (
        ((x1, y1), (x2, y1), True),
        ((x1, y2), (x2, y2), True),
        ((x1, y1), (x1, y2), False),
        ((x2, y1), (x2, y2), False),
    ):
        start, end = (a[0], b[0]) if horizontal else (a[1], b[1])
        pos = start
        while pos < end:
            stop = min(pos + dash, end)
            if horizontal:
                draw.line([(pos, a[1]), (stop, a[1])], fill=color, width=1)
            else:
                draw.line([(a[0], pos), (a[0], stop)], fill=color, width=1)
            pos += 2 * dash


def clip_frames_drawn(
    clip: torch.Tensor, target: Mapping[str, Any], *, classes: Sequence[str]
) -> list[Image.Image]:
    """One PIL image per clip frame: key instances drawn by :func:`draw_sample` (filled
    masks, solid labelled boxes), interpolated ones as dashed boxes, every instance
    tagged ``#<track id>``, the source frame index in the corner."""
    out = []
    for frame, one in zip(clip, split_clip_target(target), strict=True):
        key = one["keyframe"]
        shown: dict[str, Any] = {k: one[k][key] for k in ("boxes", "labels", "masks") if k in one}
        image = Image.fromarray(
            draw_sample(torch.as_tensor(frame), shown, classes=classes, width=1)
            .permute(1, 2, 0)
            .numpy()
        )
        draw = ImageDraw.Draw(image)
        for box, track, is_key in zip(
            one["boxes"].tolist(), one["track_ids"].tolist(), key.tolist(), strict=True
        ):
            if not is_key:
                _dashed(draw, box, "yellow")
            draw.text((box[0] + 2, box[3] - 12), f"#{track}", fill="yellow")
        draw.text((2, image.height - 12), f"frame {one['frame']}", fill="white")
        out.append(image)
    return out


def write_gif(frames: Sequence[Image.Image], path: str | os.PathLike[str], fps: float) -> Path:
    """Save ``frames`` as a looping animated GIF."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(
        path,
        save_all=True,
        append_images=list(frames[1:]),
        duration=max(int(1000 / max(fps, 1e-3)), 20),
        loop=0,
    )
    return path


def preview_clips(
    vds: AngoVideoDataset,
    out: str | os.PathLike[str],
    *,
    indices: Sequence[int] | None = None,
    fps: float = 8.0,
) -> list[Path]:
    """Write clip ``i`` of ``vds`` as ``out/<i>_<externalId stem>.gif`` for each index."""
    idx = vds.frames.export.index
    paths = []
    for i in indices if indices is not None else range(len(vds)):
        clip, target = vds[i]
        a = int(vds._clips[i, 0])
        stem = Path(idx.string(idx.asset_external_id[a]) or str(a)).stem
        frames = clip_frames_drawn(clip, target, classes=vds.classes)
        paths.append(write_gif(frames, Path(out) / f"{i:05d}_{stem}.gif", fps))
    return paths
