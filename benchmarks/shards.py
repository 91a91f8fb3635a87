"""Benchmark WebDataset shards (``write_shards`` + ``AngoShards``).

(a) samples/s of ``AngoShards`` from shards on local disk vs ``AngoDataset`` reading
    the same JPEGs from a folder (``root=``), detection task, one process, alternating;
(b) raw sample bytes/s streamed from shards over a loopback HTTP server with a fixed
    latency per request vs fetching the images one by one (``AssetStore.fetch``);
(c) full ``AngoShards`` samples/s over that server vs ``AngoDataset`` reading the
    export's URLs one by one from the same server;
(d) peak memory (RSS, a fresh process each) of indexing + sharding synthetic NDJSON
    exports of each size in ``--peak-assets``, split into torch's import, ango_torch's
    and the work itself, its growth per asset between sizes, and vs ``json.loads`` of
    every line of the smallest file (≤ 300k assets; held, as a naive reader would).

Usage: ``python benchmarks/shards.py [--smoke] [--assets N]
[--peak-assets 100000,300000,1000000] [--peak-shard-size 64MB] [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import _synth  # noqa: E402
from _server import loopback_server  # noqa: E402
from fetch import make_assets  # noqa: E402

from ango_torch import AngoDataset, AngoShards, write_shards  # noqa: E402
from ango_torch.assets.fetch import AssetStore, RetryPolicy  # noqa: E402


def make_export(n: int, folder: Path, url: str | None = None) -> Path:
    """``n`` synthetic assets on 256×256 canvases named like make_assets' JPEGs."""
    import random

    rng = random.Random(0)
    assets = []
    for i in range(n):
        a = _synth.make_asset(i, rng, n_objects=10, width=256, height=256)
        a["externalId"] = f"img_{i:05d}.jpg"
        a["asset"] = f"{url}img_{i:05d}.jpg?sig={i}" if url else a["externalId"]
        assets.append(a)
    path = folder / "export.json"
    path.write_text(json.dumps(assets))
    return path


def spread(ratios: list[float]) -> str:
    return f"min {min(ratios):.2f} / median {statistics.median(ratios):.2f} / max {max(ratios):.2f}"


def bench_local(n: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        make_assets(n, images)
        export = make_export(n, Path(tmp))
        write_shards(export, Path(tmp) / "sh", root=images, shard_size="2MB")
        ds = AngoDataset(export, task="detection", root=images)
        sh = AngoShards(Path(tmp) / "sh" / "index.json", task="detection", shuffle=False)
        base, new = [], []
        for _ in range(runs):  # alternating
            t0 = time.perf_counter()
            for i in range(len(ds)):
                ds[i]
            base.append(n / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            for _sample in sh:
                pass
            new.append(n / (time.perf_counter() - t0))
        ratios = [b / a for a, b in zip(base, new, strict=True)]
        print(f"local disk, {n} assets (256×256 JPEG, 10 objects), detection, {runs} runs")
        print(f"  AngoDataset(root=folder)  {statistics.median(base):8.1f} samples/s (baseline)")
        print(f"  AngoShards(local)         {statistics.median(new):8.1f} samples/s")
        print(
            f"(a) shards vs folder, samples/s   → {statistics.median(ratios):.2f}× "
            f"[{spread(ratios)}]   [goal ≥ 1×]"
        )


def bench_http(n: int, latency: float, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        served = Path(tmp) / "served"
        served.mkdir()
        make_assets(n, served)
        export = make_export(n, Path(tmp))
        write_shards(export, served, root=served, shard_size="2MB")
        with loopback_server(served, latency) as base_url:
            url_export = make_export(n, Path(tmp), url=base_url)
            store = AssetStore(retry=RetryPolicy(timeout=10))
            sh = AngoShards(f"{base_url}index.json", task="detection", shuffle=False)
            runs_raw: list[tuple[float, float]] = []
            runs_full: list[tuple[float, float]] = []
            for _ in range(runs):
                t0 = time.perf_counter()
                for i in range(n):
                    name = f"img_{i:05d}.jpg"
                    store.fetch(asset_id=f"id{i}", external_id=name, url=f"{base_url}{name}?s={i}")
                one = n / (time.perf_counter() - t0)
                plan = sh.plan(0, 1)
                t0 = time.perf_counter()
                got = sum(1 for _ in sh._raw(plan))
                raw = got / (time.perf_counter() - t0)
                runs_raw.append((one, raw))
                ds = AngoDataset(url_export, task="detection")
                t0 = time.perf_counter()
                for i in range(len(ds)):
                    ds[i]
                full_one = n / (time.perf_counter() - t0)
                t0 = time.perf_counter()
                got = sum(1 for _ in sh)
                full = got / (time.perf_counter() - t0)
                runs_full.append((full_one, full))
        print(f"loopback HTTP, {latency * 1000:.0f} ms latency per request, {n} assets")
        r = [b / a for a, b in runs_raw]
        print(
            f"  one by one (AssetStore.fetch)  {statistics.median([a for a, _ in runs_raw]):8.1f}/s"
        )
        print(
            f"  shard bytes (AngoShards._raw)  {statistics.median([b for _, b in runs_raw]):8.1f}/s"
        )
        med = statistics.median(r)
        print(f"(b) shard read vs one-by-one fetch → {med:.2f}× [{spread(r)}]   [goal ≥ 10×]")
        r = [b / a for a, b in runs_full]
        one_s = statistics.median([a for a, _ in runs_full])
        print(f"  AngoDataset(URLs) samples      {one_s:8.1f}/s")
        sh_s = statistics.median([b for _, b in runs_full])
        print(f"  AngoShards(http) samples       {sh_s:8.1f}/s")
        print(f"(c) shard samples vs URL samples  → {statistics.median(r):.2f}× [{spread(r)}]")


# ru_maxrss survives exec (it would count the parent's torch); VmHWM is the process's own.
PEAK = """
def PEAK():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
"""
CHILD_SHARD = (
    PEAK
    + """
import resource, sys, time
sys.path.insert(0, {root!r})
import torch
torch_kb = PEAK()
from ango_torch import write_shards
import_kb = PEAK()
t0 = time.perf_counter()
write_shards({export!r}, {out!r}, root={root_images!r}, shard_size={shard_size!r})
took = time.perf_counter() - t0
workers_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(torch_kb, import_kb, PEAK(), workers_kb, took)
"""
)
CHILD_JSON = (
    PEAK
    + """
import json
floor_kb = PEAK()
with open({export!r}) as f:
    data = [json.loads(line) for line in f]
print(floor_kb, PEAK())
"""
)
JSON_BASELINE_MAX = 300_000  # json.loads of every line held: ~13 GB at 1M assets


def make_big_export(n: int, folder: Path) -> tuple[Path, Path]:
    """An NDJSON export of ``n`` assets (5 objects each: boxes, polygons, a segmentation
    with a hole) and its image folder: one tiny PNG per asset, hard links of a few
    files (so sharding measures the writer, not the disk).  Reused when present."""
    import io
    import os
    import random

    from PIL import Image

    export, images = folder / f"export-{n}.ndjson", folder / f"images-{n}"
    if export.exists():
        return export, images
    images.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    sources: list[Path] = []
    tmp = export.with_suffix(".tmp")
    with tmp.open("w") as f:
        for i in range(n):
            if i % 60_000 == 0:  # a file has at most ~65k hard links (ext4)
                buf = io.BytesIO()
                Image.new("RGB", (16, 16), (len(sources) % 256, 120, 150)).save(buf, "PNG")
                sources.append(folder / f"source-{n}-{len(sources)}.png")
                sources[-1].write_bytes(buf.getvalue())
            a = _synth.make_asset(i, rng, n_objects=10, width=256, height=256)
            a["task"]["tools"] = a["task"]["tools"][::2]
            a["externalId"] = a["asset"] = f"img_{i:07d}.png"
            target = images / a["externalId"]
            if not target.exists():
                os.link(sources[-1], target)
            f.write(json.dumps(a) + "\n")
    tmp.rename(export)
    return export, images


def bench_memory(sizes: list[int], shard_size: str, workdir: str | None) -> None:
    import shutil

    rows = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        folder = Path(workdir) if workdir else Path(tmp)
        json_row = None
        for n in sizes:
            export, images = make_big_export(n, folder)
            out = Path(tmp) / f"sh-{n}"
            code = CHILD_SHARD.format(
                root=str(ROOT),
                export=str(export),
                out=str(out),
                root_images=str(images),
                shard_size=shard_size,
            )
            got = subprocess.check_output([sys.executable, "-c", code], text=True).split()
            torch_kb, import_kb, peak_kb, workers_kb = (int(v) for v in got[:4])
            index_b = sum(p.stat().st_size for p in (out / "index").glob("*.npz"))
            shards = len(list(out.glob("*.tar")))
            rows.append((n, export.stat().st_size, torch_kb, import_kb, peak_kb, workers_kb))
            print(
                f"NDJSON export of {n:>9,} assets ({export.stat().st_size / 1e6:5.0f} MB, "
                f"5 objects each) → {shards} shards of ≤ {shard_size}, {float(got[4]):.0f} s"
            )
            print(
                f"  peak RSS {peak_kb / 1024:7.0f} MiB = import torch {torch_kb / 1024:4.0f} MiB"
                f" + ango_torch {(import_kb - torch_kb) / 1024:4.0f} MiB + indexing and "
                f"sharding {(peak_kb - import_kb) / 1024:6.0f} MiB"
                f" ({(peak_kb - import_kb) * 1024 / n:5.0f} B/asset); "
                f"the index's columns {index_b / n:5.0f} B/asset; "
                f"largest child process {workers_kb / 1024:5.0f} MiB (forked: its pages "
                "are mostly this process's)"
            )
            if n <= JSON_BASELINE_MAX and json_row is None:
                code = CHILD_JSON.format(export=str(export))
                floor_kb, json_kb = (
                    int(v) for v in subprocess.check_output([sys.executable, "-c", code]).split()
                )
                json_row = (n, json_kb - floor_kb, peak_kb - import_kb)
            shutil.rmtree(out)
        for (n0, *_, p0, _w0), (n1, *_, p1, _w1) in itertools.pairwise(rows):
            per = (p1 - p0) * 1024 / (n1 - n0)
            print(f"  growth {n0:,} → {n1:,} assets: {per:5.0f} B of peak RSS per asset")
        if json_row is not None:
            n, json_kb, ours_kb = json_row
            held = json_kb / 1024
            print(f"  json.loads of every line of the {n:,}-asset file, held: {held:.0f} MiB")
            ratio = ours_kb / json_kb
            print(
                f"(d) peak memory of indexing + sharding vs json.load (both above their "
                f"imports), {n:,} assets → {ratio:.2f}× (lower is better)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds")
    parser.add_argument("--assets", type=int, default=300)
    parser.add_argument("--latency", type=float, default=0.020)
    parser.add_argument(
        "--peak-assets",
        default="100000",
        help="(d): comma-separated export sizes whose indexing + sharding peak RSS is "
        "measured, each in a fresh process (e.g. 100000,300000,1000000)",
    )
    parser.add_argument("--peak-shard-size", default="64MB", help="shard size for (d)")
    parser.add_argument("--workdir", help="(d): where exports are generated and kept")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.smoke:
        bench_local(12, 1)
        bench_http(12, 0.005, 1)
        bench_memory([200, 400], "64MB", None)
    else:
        bench_local(args.assets, args.runs)
        bench_http(args.assets, args.latency, args.runs)
        sizes = [int(v) for v in args.peak_assets.split(",")]
        bench_memory(sizes, args.peak_shard_size, args.workdir)


if __name__ == "__main__":
    main()
