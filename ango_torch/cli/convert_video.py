"""``ango-torch convert --to ytvis`` and ``--to mot``: video tracks for VIS/MOT trainers.

YouTube-VIS JSON (``videos``, ``annotations`` with one ``bboxes``/``segmentations``/
``areas`` entry per frame, ``null`` where the track is absent; ``segmentations`` as
COCO RLE for area shapes, ``null`` for box tracks) and MOTChallenge ``gt.txt`` (one
folder per video: ``<name>/gt/gt.txt`` and ``seqinfo.ini``).  Frames between key frames
follow ``AngoDataset``'s interpolation (``interpolate="auto"``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..errors import MissingDependencyError
from ._common import _dataset, _report

__all__ = ["convert_mot", "convert_ytvis"]


def _videos(ds: Any) -> list[tuple[int, str, int, int, int]]:
    """``(asset, externalId, frames, height, width)`` of each video asset with tracks."""
    video = ds._video
    idx = ds.export.index
    out = []
    for a in sorted(video.tracks):
        n = video.frame_total(a)
        h, w = int(idx.asset_height[a]), int(idx.asset_width[a])
        if n <= 0 or h <= 0 or w <= 0:
            reader = video.reader(ds.store, a)
            n, h, w = reader.num_frames, reader.height, reader.width
        out.append((a, idx.string(idx.asset_external_id[a]) or str(a), n, h, w))
    return out


def _rle(crop: Any, offset: tuple[int, int], canvas: tuple[int, int]) -> dict[str, Any]:
    try:
        from pycocotools import mask as mask_utils
    except ImportError as exc:
        raise MissingDependencyError(
            f"--to ytvis writes masks as RLE with pycocotools ({exc}): "
            "pip install 'ango-torch[eval]'"
        ) from exc
    from ..targets.geometry import crop_to_mask

    full = crop_to_mask(crop, offset, canvas_size=canvas)
    rle = mask_utils.encode(np.asfortranarray(full.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def convert_ytvis(args: argparse.Namespace) -> int:
    """Write a YouTube-VIS JSON of the export's videos to ``args.out``."""
    ds = _dataset(args, task="detection", brush=False)
    video = ds._video
    videos: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for vid, (a, name, n, h, w) in enumerate(_videos(ds), start=1):
        stem = PurePosixPath(name).stem
        videos.append(
            {
                "id": vid,
                "file_names": [f"{stem}/{f:05d}.jpg" for f in range(n)],
                "height": h,
                "width": w,
                "length": n,
            }
        )
        tracks: dict[int, dict[str, Any]] = {}
        for f in video.frames(a).tolist():
            if f >= n:
                continue
            boxes = video.instances(a, f, ds._obj_label, (h, w), masks=False)
            shapes = video.instances(a, f, ds._obj_label, (h, w), masks=True)
            rles = {
                int(k): _rle(c, o, (h, w))
                for k, c, o in zip(
                    shapes.track_ids.tolist(), shapes.inst.crops, shapes.inst.offsets, strict=True
                )
            }
            for k, box, label in zip(
                boxes.track_ids.tolist(),
                boxes.inst.boxes.tolist(),
                boxes.inst.labels.tolist(),
                strict=True,
            ):
                t = tracks.setdefault(
                    k,
                    {
                        "category_id": int(label),
                        "bboxes": [None] * n,
                        "segmentations": [None] * n,
                        "areas": [None] * n,
                    },
                )
                x1, y1, x2, y2 = box
                t["bboxes"][f] = [x1, y1, x2 - x1, y2 - y1]
                t["segmentations"][f] = rles.get(k)
                t["areas"][f] = (x2 - x1) * (y2 - y1)
        for k in sorted(tracks):
            annotations.append(
                {"id": len(annotations) + 1, "video_id": vid, "iscrowd": 0, **tracks[k]}
            )
    categories = [{"id": k, "name": c} for k, c in enumerate(ds.classes) if k > 0]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"videos": videos, "annotations": annotations, "categories": categories}
    out.write_text(json.dumps(doc) + "\n", encoding="utf-8")
    print(
        f"{out}: YouTube-VIS, {len(videos)} videos, {len(annotations)} tracks, "
        f"{len(categories)} categories (file_names name frames as <video>/<frame:05d>.jpg)"
    )
    _report(ds)
    return 0


def convert_mot(args: argparse.Namespace) -> int:
    """Write MOTChallenge ``gt.txt`` files (one folder per video) under ``args.out``."""
    ds = _dataset(args, task="detection", brush=False)
    video = ds._video
    out = Path(args.out)
    lines_written = 0
    videos = _videos(ds)
    for a, name, n, h, w in videos:
        stem = PurePosixPath(name).stem
        lines = []
        for f in video.frames(a).tolist():
            if f >= n:
                continue
            found = video.instances(a, f, ds._obj_label, (h, w), masks=False)
            for k, (x1, y1, x2, y2), label in zip(
                found.track_ids.tolist(),
                found.inst.boxes.tolist(),
                found.inst.labels.tolist(),
                strict=True,
            ):
                # frame, id (both 1-based), left, top, width, height, conf, class, visibility
                lines.append(
                    f"{f + 1},{k + 1},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},1,{label},1\n"
                )
        folder = out / stem
        (folder / "gt").mkdir(parents=True, exist_ok=True)
        (folder / "gt" / "gt.txt").write_text("".join(lines), encoding="utf-8")
        fps = ds.export.index.extra(int(ds.export.index.asset_extra[a])).get("m", {})
        rate = fps.get("frameRate", 30) if isinstance(fps, dict) else 30
        (folder / "seqinfo.ini").write_text(
            f"[Sequence]\nname={stem}\nimDir=img1\nframeRate={rate}\nseqLength={n}\n"
            f"imWidth={w}\nimHeight={h}\nimExt=.jpg\n",
            encoding="utf-8",
        )
        lines_written += len(lines)
    names = "".join(f"{k} {c}\n" for k, c in enumerate(ds.classes) if k > 0)
    out.mkdir(parents=True, exist_ok=True)
    (out / "classes.txt").write_text(names, encoding="utf-8")
    print(f"{len(videos)} videos, {lines_written} boxes written to {out}/<video>/gt/gt.txt")
    _report(ds)
    return 0
