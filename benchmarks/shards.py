"""Benchmark WebDataset shards (``write_shards`` + ``AngoShards``).

(a) samples/s of ``AngoShards`` from shards on local disk vs ``AngoDataset`` reading
    the same JPEGs from a folder (``root=``), detection task, one process, alternating;
(b) raw sample bytes/s streamed from shards over a loopback HTTP server with a fixed
    latency per request vs fetching the images one by one (``AssetStore.fetch``);
(c) full ``AngoShards`` samples/s over that server vs ``AngoDataset`` reading the
    export's URLs one by one from the same server;
(d) peak memory (RSS, child process) of indexing + sharding a synthetic NDJSON export
    vs ``json.load`` of the same file.

Usage: ``python benchmarks/shards.py [--smoke] [--assets N] [--big N]``.
"""

from __future__ import annotations

import argparse
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
import sys
sys.path.insert(0, {root!r})
from ango_torch import write_shards
write_shards({export!r}, {out!r}, root={root_images!r}, shard_size="64MB")
print(PEAK())
"""
)
CHILD_JSON = (
    PEAK
    + """
import json
with open({export!r}) as f:
    data = [json.loads(line) for line in f] if {ndjson} else json.load(f)
print(PEAK())
"""
)


def bench_memory(n: int) -> None:
    import io

    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        buf = io.BytesIO()
        Image.new("RGB", (256, 256), (90, 120, 150)).save(buf, "PNG")
        png = buf.getvalue()
        export = Path(tmp) / "export.ndjson"
        import random

        rng = random.Random(0)
        with export.open("w") as f:
            for i in range(n):
                a = _synth.make_asset(i, rng, n_objects=10, width=256, height=256)
                a["externalId"] = f"img_{i:07d}.png"
                a["asset"] = a["externalId"]
                (images / a["externalId"]).write_bytes(png)
                f.write(json.dumps(a) + "\n")
        size = export.stat().st_size
        code = CHILD_SHARD.format(
            root=str(ROOT), export=str(export), out=f"{tmp}/sh", root_images=str(images)
        )
        t0 = time.perf_counter()
        shard_kb = int(subprocess.check_output([sys.executable, "-c", code], text=True).split()[-1])
        took = time.perf_counter() - t0
        code = PEAK + "import ango_torch.datasets.shard_writer\nprint(PEAK())"
        floor_kb = int(subprocess.check_output([sys.executable, "-c", code], text=True).split()[-1])
        code = CHILD_JSON.format(export=str(export), ndjson=True)
        json_kb = int(subprocess.check_output([sys.executable, "-c", code], text=True).split()[-1])
        print(f"NDJSON export of {n} assets ({size / 1e6:.0f} MB), 10 objects each")
        print(f"  json.loads of every line (baseline)  peak RSS {json_kb / 1024:8.0f} MiB")
        print(f"  import ango_torch + torch (floor)    peak RSS {floor_kb / 1024:8.0f} MiB")
        print(f"  index + write_shards ({took:.0f} s)      peak RSS {shard_kb / 1024:8.0f} MiB")
        ratio = shard_kb / json_kb
        print(f"(d) peak memory of sharding vs json.load → {ratio:.2f}× (lower is better)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds")
    parser.add_argument("--assets", type=int, default=300)
    parser.add_argument("--latency", type=float, default=0.020)
    parser.add_argument("--big", type=int, default=100_000, help="assets for (d)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.smoke:
        bench_local(12, 1)
        bench_http(12, 0.005, 1)
        bench_memory(200)
    else:
        bench_local(args.assets, args.runs)
        bench_http(args.assets, args.latency, args.runs)
        bench_memory(args.big)


if __name__ == "__main__":
    main()
