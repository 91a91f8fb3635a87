"""Indexing one long video vs an image export holding the same objects.

A video is one asset whose ``tools[]`` hold one entry per track per frame: a one-hour,
30 fps video with 50 box tracks is 5,400,000 entries (about 1 GB of JSON) in one asset.
Issue 11 asks that it index like any other export; the baseline is an image export with
one asset per frame and the same boxes.  Each run is ``load_export`` +
``AngoDataset(task="detection")`` in a fresh process (default limits, default workers),
alternating video and images over ``--repeat`` runs; prints min/median/max of both,
their ratio, and the runs' peak memory (resident set of the process, and of the process
and its indexing workers together)::

    python benchmarks/video_index.py                    # 18,000 frames × 50 tracks
    python benchmarks/video_index.py --frames 108000    # one hour at 30 fps
    python benchmarks/video_index.py --smoke
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HEAD = {"taskId": "t", "stage": "Complete", "stageId": "Complete"}
TAIL = ', "classifications": [], "relations": []}'


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


def _asset_head(url: str, aid: str, ext: str, meta: dict[str, Any], tid: str) -> str:
    """An asset's JSON up to the ``[`` of its ``task.tools``."""
    head = {"asset": url, "assetId": aid, "externalId": ext, "metadata": meta}
    return json.dumps(head)[:-1] + ', "task": ' + json.dumps({**HEAD, "taskId": tid})[:-1]


def write_exports(folder: Path, frames: int, tracks: int) -> tuple[Path, Path]:
    """``(video.json, images.json)`` with the same boxes, written entry by entry."""
    video, images = folder / "video.json", folder / "images.json"
    meta = {"width": 640, "height": 480, "frameTotal": frames, "frameRate": 30}
    with video.open("w") as fh:
        fh.write("[" + _asset_head("https://bucket.s3.amazonaws.com/v.mp4", "v1", "v.mp4",
                                   meta, "t") + ', "tools": [')  # fmt: skip
        for f in range(frames):
            entries = (json.dumps({**_box(f, t), "page": f}) for t in range(tracks))
            fh.write(("," if f else "") + ",".join(entries))
        fh.write("]" + TAIL + "}]")
    with images.open("w") as fh:
        fh.write("[")
        for f in range(frames):
            head = _asset_head(f"https://bucket.s3.amazonaws.com/{f}.jpg", f"a{f}", f"{f}.jpg",
                               {"width": 640, "height": 480}, f"t{f}")  # fmt: skip
            tools = ",".join(json.dumps(_box(f, t)) for t in range(tracks))
            fh.write(("," if f else "") + head + ', "tools": [' + tools + "]" + TAIL + "}")
        fh.write("]")
    return video, images


def _child(path: Path, root: Path) -> None:
    """One timed run (in its own process): seconds, the peak resident memory of this
    process, the number of samples."""
    import warnings

    import ango_torch

    def run(p: Path, r: Path) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ango_torch.AngoDataset(ango_torch.load_export(p), task="detection", root=r)

    with tempfile.TemporaryDirectory() as tmp:  # warm-up: modules load on first use
        tiny = write_exports(Path(tmp), 2, 1)
        run(tiny[0] if path.name == "video.json" else tiny[1], Path(tmp))
    t0 = time.perf_counter()
    ds = run(path, root)
    seconds = time.perf_counter() - t0
    assert len(ds) > 0
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps([seconds, own, len(ds)]))


def _run(path: Path, root: Path) -> tuple[float, int, int, int]:
    """A run in a fresh process; its resident memory and that of its indexing workers
    is sampled from here every 50 ms (a thread in the process would stop it forking
    workers), summed: pages a forked worker shares with its parent count in both."""
    import psutil

    cmd = [sys.executable, __file__, "--child", str(path), str(root)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak, child = 0, psutil.Process(proc.pid)
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            procs = [child, *child.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in procs))
        time.sleep(0.05)
    out, _ = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{path.name}: the run exited {proc.returncode}")
    seconds, own, n = json.loads(out.strip().splitlines()[-1])
    return float(seconds), int(own), peak, int(n)


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=18_000)
    ap.add_argument("--tracks", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (test suite)")
    ap.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(*args.child)
        return
    if args.smoke:
        args.frames, args.tracks, args.repeat = 40, 3, 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        video, images = write_exports(folder, args.frames, args.tracks)
        made = time.perf_counter() - t0
        runs: dict[str, list[tuple[float, int, int, int]]] = {"video": [], "images": []}
        for _ in range(args.repeat):  # alternating, so drift hits both alike
            runs["video"].append(_run(video, folder))
            runs["images"].append(_run(images, folder))
        sizes = {"video": video.stat().st_size, "images": images.stat().st_size}
    entries = args.frames * args.tracks
    print(f"video: {args.frames} frames × {args.tracks} tracks = {entries} entries in one "
          f"asset, {sizes['video'] / 1e6:.0f} MB (images: {sizes['images'] / 1e6:.0f} MB; "
          f"written in {made:.0f} s)")  # fmt: skip
    for name, label in (("video", "video"), ("images", "images (baseline)")):
        t = [r[0] for r in runs[name]]
        own = max(r[1] for r in runs[name])
        total = max(r[2] for r in runs[name])
        print(f"{label:18s} min {min(t):.2f} s  median {statistics.median(t):.2f} s  "
              f"max {max(t):.2f} s  samples {runs[name][0][3]}  peak RSS {_gib(own)} "
              f"(with its workers {_gib(total)})")  # fmt: skip
    ratio = statistics.median(r[0] for r in runs["images"]) / statistics.median(
        r[0] for r in runs["video"]
    )
    print(f"(a) index + dataset, one video vs images of the same objects  →  {ratio:.2f}× "
          f"[goal: like any other export, ≈ 1×]")  # fmt: skip


if __name__ == "__main__":
    main()
