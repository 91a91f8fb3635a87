"""Indexing one long video vs an image export holding the same objects.

A video is one asset whose ``tools[]`` hold one entry per track per frame: a 10-minute,
30 fps video with 50 box tracks is 900,000 entries in one asset.  Issue 11 asks that it
index like any other export; the baseline is an image export with one asset per frame
and the same boxes.  Prints, alternating over ``--repeat`` runs, min/median/max of
``load_export`` + ``AngoDataset(task="detection")`` for both, and their ratio::

    python benchmarks/video_index.py                    # 18,000 frames × 50 tracks
    python benchmarks/video_index.py --frames 108000    # one hour (raise max_asset_bytes)
    python benchmarks/video_index.py --smoke
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any


def _box(frame: int, track: int) -> dict[str, Any]:
    return {
        "bounding-box": {
            "x": 10.0 + track + frame * 0.01,
            "y": 20.0 + track,
            "width": 30.0,
            "height": 40.0,
        },
        "objectId": f"track{track:03d}",
        "schemaId": "s-car",
        "title": "car",
        "classifications": [],
    }


def _task(tools: list[dict[str, Any]], tid: str) -> dict[str, Any]:
    return {"taskId": tid, "stage": "Complete", "stageId": "Complete", "tools": tools,
            "classifications": [], "relations": []}  # fmt: skip


def write_exports(folder: Path, frames: int, tracks: int) -> tuple[Path, Path]:
    """``(video.json, images.json)`` with the same boxes."""
    video, images = folder / "video.json", folder / "images.json"
    tools = [{**_box(f, t), "page": f} for f in range(frames) for t in range(tracks)]
    asset = {
        "asset": "https://bucket.s3.amazonaws.com/v.mp4",
        "assetId": "v1",
        "externalId": "v.mp4",
        "metadata": {"width": 640, "height": 480, "frameTotal": frames, "frameRate": 30},
        "task": _task(tools, "t"),
    }
    video.write_text(json.dumps([asset]))
    with images.open("w") as fh:
        fh.write("[")
        for f in range(frames):
            image = {
                "asset": f"https://bucket.s3.amazonaws.com/{f}.jpg",
                "assetId": f"a{f}",
                "externalId": f"{f}.jpg",
                "metadata": {"width": 640, "height": 480},
                "task": _task([_box(f, t) for t in range(tracks)], f"t{f}"),
            }
            fh.write(("," if f else "") + json.dumps(image))
        fh.write("]")
    return video, images


def _index(path: Path, root: Path) -> float:
    import ango_torch
    from ango_torch.limits import override

    t0 = time.perf_counter()
    with warnings.catch_warnings(), override(max_asset_bytes=1 << 32):
        warnings.simplefilter("ignore")
        ds = ango_torch.AngoDataset(ango_torch.load_export(path), task="detection", root=root)
    assert len(ds) > 0
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=18_000)
    ap.add_argument("--tracks", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (test suite)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.frames, args.tracks, args.repeat = 40, 3, 1
    import ango_torch  # noqa: F401  (imports excluded from the timings)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        video, images = write_exports(folder, args.frames, args.tracks)
        _index(images, folder)  # warm-up: torch and the dataset modules load on first use
        ours: list[float] = []
        base: list[float] = []
        for _ in range(args.repeat):  # alternating, so drift hits both alike
            ours.append(_index(video, folder))
            base.append(_index(images, folder))
    entries = args.frames * args.tracks
    print(f"video: {args.frames} frames × {args.tracks} tracks = {entries} entries in one asset")
    for name, runs in (("video", ours), ("images (baseline)", base)):
        print(f"{name:18s} min {min(runs):.2f} s  median {statistics.median(runs):.2f} s  "
              f"max {max(runs):.2f} s")  # fmt: skip
    ratio = statistics.median(base) / statistics.median(ours)
    print(f"(a) index + dataset, one video vs images of the same objects  →  {ratio:.2f}× "
          f"[goal: like any other export, ≈ 1×]")  # fmt: skip


if __name__ == "__main__":
    main()
