"""Benchmark video clip loading.

A synthetic video (a window panning over ``examples/data/images/astronaut.png``, H.264
CRF 18, key frame every 30 frames, encoded with PyAV) and an export with two box tracks
on every frame.  ``AngoVideoDataset`` (``clips="all"``, 16 frames, step 2, targets
included) is timed against, in the same run and alternating:

(a) raw torchcodec: ``VideoDecoder(path, seek_mode="exact").get_frames_at`` of the same
    frames, no targets (goal: ango_torch at ≥ 90% of its throughput);
(b) PyAV reading forward from the start of the video to each clip's frames (the naive
    way without an index; ango_torch's own PyAV fallback seeks to key frames instead).

Runs are alternated; min/median/max seconds over the runs are printed, and the ratio of
medians.  Usage: ``python benchmarks/video.py [--smoke] [--runs N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ango_torch.datasets.video import AngoVideoDataset  # noqa: E402

PHOTO = ROOT / "examples" / "data" / "images" / "astronaut.png"


def make_video(folder: Path, n: int, size: tuple[int, int]) -> Path:
    import av

    h, w = size
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    path = folder / "bench.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "18", "g": "30"}
        for t in range(n):
            x, y = (t * 3) % (photo.shape[1] - w), (t * 2) % (photo.shape[0] - h)
            frame = av.VideoFrame.from_ndarray(photo[y : y + h, x : x + w].copy(), "rgb24")
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    tools = [
        {
            "bounding-box": {"x": 10 + k * 40 + t % 50, "y": 20, "width": 30, "height": 30},
            "objectId": f"o{k}",
            "title": f"c{k}",
            "schemaId": f"c{k}",
            "classifications": [],
            "page": t,
        }
        for k in range(2)
        for t in range(n)
    ]
    export = [
        {
            "asset": "https://x/bench.mp4",
            "assetId": "b" * 24,
            "externalId": "bench.mp4",
            "metadata": {"width": w, "height": h, "frameTotal": n, "frameRate": 30},
            "task": {"tools": tools, "classifications": [], "relations": []},
        }
    ]
    (folder / "export.json").write_text(json.dumps(export))
    return path


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for the tests")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    n, size, runs = (64, (96, 128), 2) if args.smoke else (300, (240, 320), args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = make_video(folder, n, size)
        try:
            from torchcodec.decoders import VideoDecoder  # type: ignore[attr-defined]

            has_torchcodec = True
        except Exception:  # FFmpeg's libraries missing: both sides use PyAV for (a)
            has_torchcodec = False
        os.environ["ANGO_TORCH_VIDEO_DECODER"] = "torchcodec" if has_torchcodec else "pyav"
        ds = AngoVideoDataset(
            folder / "export.json", root=folder, clip_len=16, frame_step=2, clips="all"
        )
        clips = [ds.clip_frames(i).tolist() for i in range(len(ds))]

        def ours() -> None:
            for i in range(len(ds)):
                ds[i]

        # opened once, like ango_torch's per-process cached reader
        if has_torchcodec:
            dec = VideoDecoder(str(path), seek_mode="exact")
        else:
            from ango_torch.assets.video import open_video

            reader = open_video(path.read_bytes(), decoder="pyav")

        def raw() -> None:
            for c in clips:
                if has_torchcodec:
                    dec.get_frames_at(indices=c)
                else:
                    reader.frames(c)

        def forward() -> None:
            import av

            for c in clips:
                want, got = set(c), []
                with av.open(str(path)) as container:
                    for k, frame in enumerate(container.decode(video=0)):
                        if k in want:
                            got.append(frame.to_ndarray(format="rgb24"))
                        if k >= c[-1]:
                            break

        ours()  # warm: the decoder opens once per process (cached), as in a DataLoader
        times: dict[str, list[float]] = {"ours": [], "raw": [], "forward": []}
        for _ in range(runs):
            for name, fn in (("ours", ours), ("raw", raw), ("forward", forward)):
                times[name].append(timed(fn))

    def fmt(v: list[float]) -> str:
        return f"{min(v):.3f}/{statistics.median(v):.3f}/{max(v):.3f} s"

    med = {k: statistics.median(v) for k, v in times.items()}
    h, w = size
    base = "torchcodec get_frames_at" if has_torchcodec else "PyAV seek (torchcodec missing)"
    print(
        f"{len(clips)} clips x 16 frames (step 2) of a {n}-frame {w}x{h} H.264 video, "
        f"{runs} alternating runs, min/median/max"
    )
    print(f"  ango_torch clips + targets {fmt(times['ours'])}")
    print(f"  {base} {fmt(times['raw'])}")
    print(f"  PyAV decode forward to each clip {fmt(times['forward'])}")
    print(f"(a) vs raw {base}   → {med['raw'] / med['ours']:5.2f}× its throughput   [goal ≥ 0.9×]")
    print(f"(b) vs PyAV forward reads   → {med['forward'] / med['ours']:5.2f}× faster")


if __name__ == "__main__":
    main()
