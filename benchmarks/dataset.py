"""Benchmark: AngoDataset end to end, each figure against a baseline timed in the same run.

(a) Instance masks, 20 polygons x 64 vertices on a 1920x1080 canvas, vs pycocotools:
    :mod:`raster`'s own measurement functions (``make_polygons``, ``ours``,
    ``torchvision_wrapper``, ``pycocotools_numpy``, ``timeit``), imported, not copied.
    The headline ratio is against the *faster* of its two pycocotools baselines.
(b) DataLoader throughput on real JPEGs (crops of the bundled sample photos, resized),
    instance task with masks, vs torchvision ``CocoDetection`` +
    ``wrap_dataset_for_transforms_v2`` (+ ``v2.ToImage()`` so that both deliver
    ``tv_tensors.Image`` uint8 [3, H, W]) over the same images and the same annotations
    (``ango_torch.write_coco`` of the dataset).  Same DataLoader settings for both
    (``collate_fn``, workers, batch size, ``persistent_workers=False``), for 2, 4 and 8
    workers: one warm-up epoch each, then ``--runs`` runs of one epoch per side, the
    order alternating (ours, theirs; theirs, ours; ...) so that a noisy neighbour hits
    both alike; the ratio of each run is printed as min/median/max (goal: ≥ 1.5× in
    every run). Also per batch: the main process's CPU time (``time.process_time`` from
    the first batch on: unpickling, the shared-memory hand-over, collation), for ours,
    for ours with ``masks="packed"`` (crops instead of full masks: not the same output,
    so not the headline) and for theirs; and the rate of plain ``ds[i]`` in the main
    process.
(c) Private memory (USS) per forked DataLoader worker after an epoch over a large
    export, vs a dataset holding ``json.load``'s list of dicts (the copy-on-read problem
    of pytorch/pytorch#13246).  Each side runs in its own fresh subprocess.  Every
    ``__getitem__`` touches its sample's annotations without fetching the image:
    ``ds.sample_objects(i)`` (object rows and labels from the index) for ango_torch,
    every tool dict's ``title`` of the asset for the baseline.  The batch sampler puts one
    marker batch per worker before and after the data batches (the DataLoader deals
    batches round-robin and each worker runs its queue in order), so the last marker runs
    in a worker after it touched every sample it was given; it returns that worker's
    ``psutil`` USS.

Run::

    python benchmarks/dataset.py            # full: (b) 128 JPEGs 1024x768, (c) 100,000 assets
    python benchmarks/dataset.py --smoke    # tiny sizes, a few seconds (the test suite)
    python benchmarks/dataset.py --only b --runs 5 --loader-workers 2 4

The full run takes ~8 minutes on 2 cores ((b) ~5: 3 worker counts x 3 runs x 3 sides)
and needs ~1 GiB of disk in the temp dir; its peak memory is (c)'s baseline: the
``json.load`` tree (~5.7 GiB for 100,000 assets x 20 objects) plus what each worker
copies of it (~1.1 GiB each), ~8 GiB in all; reduce ``--assets`` on a smaller machine.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import random
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synth
import raster

# pycocotools (2.0.x, the baselines' mask decoder) hands numpy 2 an ``__array__`` without
# a ``copy`` keyword: numpy warns on every ``mask.decode``.  Not ours to fix, and only
# visible when warnings are errors (as in the test suite), so exactly that one is muted.
warnings.filterwarnings(
    "ignore",
    message=r"__array__ implementation doesn't accept a copy keyword",
    category=DeprecationWarning,
)

PHOTOS = Path(__file__).resolve().parent.parent / "examples" / "data" / "images"
MiB = 2**20


# -- (a) rasterization ---------------------------------------------------------------------
def bench_raster(*, n_polys: int, repeat: int) -> None:
    polys = raster.make_polygons(n_polys, 64)
    t_ours = raster.timeit(lambda: raster.ours(polys), repeat)
    baselines = {
        "torchvision-v2-wrapper": raster.timeit(lambda: raster.torchvision_wrapper(polys), repeat),
        "pycocotools-numpy": raster.timeit(lambda: raster.pycocotools_numpy(polys), repeat),
    }
    name, t_base = min(baselines.items(), key=lambda kv: kv[1])
    others = ", ".join(f"{k} {v * 1e3:.2f} ms ({v / t_ours:.1f}×)" for k, v in baselines.items())
    h, w = raster.SIZE
    print(f"(a) instance masks, {n_polys} polygons x 64 vertices on {w}x{h} ({others})")
    print(
        f"(a) masks          ango_torch {t_ours * 1e3:8.2f} ms   {name} {t_base * 1e3:8.2f} ms"
        f"   → {t_base / t_ours:6.2f}× faster   [goal ≥ 10×]"
    )


# -- (b) DataLoader throughput -------------------------------------------------------------
def make_jpegs(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> list[str]:
    """``n`` JPEGs of ``size`` (H, W): random crops of the sample photos, resized."""
    from PIL import Image, ImageOps

    rng = random.Random(seed)
    photos = [Image.open(p).convert("RGB") for p in sorted(PHOTOS.glob("*.png"))]
    h, w = size
    names = []
    for i in range(n):
        im = photos[i % len(photos)]
        cw, ch = int(im.width * rng.uniform(0.6, 1.0)), int(im.height * rng.uniform(0.6, 1.0))
        x0, y0 = rng.randrange(im.width - cw + 1), rng.randrange(im.height - ch + 1)
        out = im.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            out = ImageOps.mirror(out)
        name = f"img_{i:07d}.jpg"
        out.save(folder / name, quality=90)
        names.append(name)
    return names


def polygon_asset(
    i: int, rng: random.Random, *, n_objects: int, vertices: int, size: tuple[int, int]
) -> dict[str, Any]:
    """``_synth.make_asset`` with every object turned into a ``vertices``-gon."""
    h, w = size
    asset = _synth.make_asset(i, rng, n_objects=n_objects, width=w, height=h)
    for tool in asset["task"]["tools"]:
        for key in ("bounding-box", "polygon", "segmentation", "point"):
            tool.pop(key, None)
        r = rng.uniform(0.03, 0.2) * min(h, w)
        cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
        tool["polygon"] = _synth._ring(rng, cx, cy, r, vertices)
    return asset


def _epoch(loader: Any) -> tuple[int, float, int]:
    """Images, main-process CPU seconds per batch (after the first) and batches."""
    n = batches = 0
    cpu = 0.0
    start = None
    for images, _targets in loader:
        if start is None:  # from the first batch on: the workers' start-up is not per batch
            start = time.process_time()
        else:
            batches += 1
        n += len(images)
    if start is not None:
        cpu = time.process_time() - start
    return n, cpu / max(batches, 1), batches


def _check_same(ours: Any, theirs: Any) -> str:
    """Both pipelines deliver the same sample: a sanity line, raises if they do not."""
    (img_a, tgt_a), (img_b, tgt_b) = ours, theirs
    if img_a.shape != img_b.shape or not (tgt_a["labels"] == tgt_b["labels"]).all():
        raise RuntimeError(
            f"sample 0 differs: image {tuple(img_a.shape)} vs {tuple(img_b.shape)}, labels "
            f"{tgt_a['labels'].tolist()} vs {tgt_b['labels'].tolist()}"
        )
    a, b = tgt_a["masks"].bool(), tgt_b["masks"].bool()
    iou = ((a & b).sum((1, 2)) / (a | b).sum((1, 2)).clamp(min=1)).min().item()
    pixels = (img_a.int() - img_b.int()).abs().max().item()
    return f"{len(a)} instances, min mask IoU {iou:.4f}, max pixel difference {pixels}"


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    return "/".join(fmt.format(v) for v in (min(values), _median(values), max(values)))


def bench_loader(
    *,
    n_images: int,
    size: tuple[int, int],
    n_objects: int,
    vertices: int,
    workers: Sequence[int],
    batch_size: int,
    runs: int,
) -> None:
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets
    from torchvision.transforms import v2

    import ango_torch

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        images = folder / "images"
        images.mkdir()
        make_jpegs(images, n_images, size)
        rng = random.Random(1)
        assets = [
            polygon_asset(i, rng, n_objects=n_objects, vertices=vertices, size=size)
            for i in range(n_images)
        ]
        (folder / "ango.json").write_text(json.dumps(assets))
        ours = ango_torch.AngoDataset(folder / "ango.json", task="instance", root=images)
        packed = ango_torch.AngoDataset(
            folder / "ango.json", task="instance", root=images, masks="packed"
        )
        ango_torch.write_coco(ours, folder / "coco.json")
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its timings
            coco = datasets.CocoDetection(
                str(images), str(folder / "coco.json"), transforms=v2.ToImage()
            )
        theirs = datasets.wrap_dataset_for_transforms_v2(
            coco, target_keys={"boxes", "labels", "masks", "image_id"}
        )
        print(
            f"(b) {n_images} JPEGs {size[1]}x{size[0]}, {n_objects} polygons x {vertices} "
            f"vertices each; batch {batch_size}; {runs} alternating runs (one epoch of each "
            f"side per run) per worker count; sample 0: {_check_same(ours[0], theirs[0])}"
        )
        sides = {"ours": ours, "theirs": theirs, "packed": packed}
        for n_workers in workers:

            def loader(ds: Any, n_workers: int = n_workers) -> Any:
                return DataLoader(
                    ds,
                    batch_size=batch_size,
                    num_workers=n_workers,
                    collate_fn=ango_torch.collate_fn,
                    persistent_workers=False,
                )

            loaders = {k: loader(ds) for k, ds in sides.items()}
            for dl in loaders.values():  # warm-up: page cache, lazy imports, allocator
                _epoch(dl)
            rate: dict[str, list[float]] = {k: [] for k in loaders}
            main_cpu: dict[str, list[float]] = {k: [] for k in loaders}
            for run in range(runs):
                # Alternate the order too, so neither side always follows the other.
                order = list(loaders) if run % 2 == 0 else list(reversed(loaders))
                for name in order:
                    start = time.perf_counter()
                    n, cpu, _ = _epoch(loaders[name])
                    rate[name].append(n / (time.perf_counter() - start))
                    main_cpu[name].append(cpu)
            ratios = [a / b for a, b in zip(rate["ours"], rate["theirs"], strict=True)]
            packed_ratios = [a / b for a, b in zip(rate["packed"], rate["theirs"], strict=True)]
            ms = {k: [v * 1e3 for v in vs] for k, vs in main_cpu.items()}
            print(
                f"(b)   {n_workers} workers: main-process CPU per batch (min/median/max ms): "
                f"ango_torch {_spread(ms['ours'], '{:.1f}')}, masks='packed' "
                f"{_spread(ms['packed'], '{:.1f}')}, torchvision {_spread(ms['theirs'], '{:.1f}')}"
                f"; masks='packed' vs torchvision {_spread(packed_ratios)}× (crops, not full masks)"
            )
            print(
                f"(b) DataLoader {n_workers} workers  ango_torch {_median(rate['ours']):6.1f} img/s"
                f"   CocoDetection+v2 wrapper {_median(rate['theirs']):6.1f} img/s   → "
                f"{_median(ratios):5.2f}× faster (min/median/max {_spread(ratios)} over {runs} "
                f"runs)   [goal ≥ 1.5× every run]"
            )
        inline = {}
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as in DataLoader workers (and no OpenMP spinning)
        for name, ds in (("ours", ours), ("theirs", theirs)):
            start = time.perf_counter()
            for i in range(len(ds)):
                ds[i]
            inline[name] = len(ds) / (time.perf_counter() - start)
        torch.set_num_threads(threads)
        print(
            f"(b)   for reference, in the main process, 1 thread, no DataLoader: "
            f"{inline['ours']:.1f} vs {inline['theirs']:.1f} img/s "
            f"({inline['ours'] / inline['theirs']:.2f}×)"
        )


# -- (c) worker memory ---------------------------------------------------------------------
def write_export(path: Path, n_assets: int, *, n_objects: int, seed: int = 0) -> None:
    """Stream ``_synth.make_asset`` records into one JSON array (never all in memory)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        f.write("[")
        for i in range(n_assets):
            if i:
                f.write(",")
            f.write(json.dumps(_synth.make_asset(i, rng, n_objects=n_objects)))
        f.write("]")


class _Touch:
    """A map-style dataset of ``n`` samples plus USS markers at indices ``>= n``."""

    n: int

    def __len__(self) -> int:
        return self.n

    def touch(self, i: int) -> int:
        raise NotImplementedError

    def __getitem__(self, i: int) -> Any:
        if i < self.n:
            return self.touch(i)
        import psutil
        import torch.utils.data

        info = torch.utils.data.get_worker_info()
        phase = "end" if (i - self.n) // max(info.num_workers, 1) else "start"
        uss = psutil.Process().memory_full_info().uss
        return {"marker": phase, "worker": info.id, "uss": uss}


class _AngoTouch(_Touch):
    def __init__(self, ds: Any) -> None:
        self.ds, self.n = ds, len(ds)

    def touch(self, i: int) -> int:
        return len(self.ds.sample_objects(i)[0])


class _JsonTouch(_Touch):
    def __init__(self, assets: list[dict[str, Any]]) -> None:
        self.assets, self.n = assets, len(assets)

    def touch(self, i: int) -> int:
        return sum(1 for t in self.assets[i]["task"]["tools"] if t["title"])


def _batches(n: int, batch_size: int, workers: int) -> Iterator[list[int]]:
    yield from ([n + w] for w in range(workers))  # "start" markers, one per worker
    for start in range(0, n, batch_size):
        yield list(range(start, min(start + batch_size, n)))
    # Pad so that the end markers start a round-robin cycle: one lands on each worker.
    n_batches = math.ceil(n / batch_size)
    yield from ([] for _ in range(-n_batches % workers))
    yield from ([n + workers + w] for w in range(workers))


def _identity(batch: list[Any]) -> list[Any]:
    return batch


def child_memory(kind: str, path: str, workers: int, batch_size: int) -> None:
    """In a fresh process: build the dataset, run one epoch, print the markers as JSON."""
    import psutil
    from torch.utils.data import DataLoader

    data: _Touch
    if kind == "ango":
        import ango_torch

        ds = ango_torch.AngoDataset(path, task="instance", root=str(Path(path).parent))
        data, extra = _AngoTouch(ds), {"index_mib": ds.export.index.nbytes / MiB}
    else:
        with open(path, encoding="utf-8") as f:
            data, extra = _JsonTouch(json.load(f)), {}
    batches = list(_batches(len(data), batch_size, workers))
    loader = DataLoader(
        data,  # type: ignore[arg-type]
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=_identity,
        multiprocessing_context="fork",
        persistent_workers=False,
    )
    start = time.perf_counter()
    markers, touched = [], 0
    for batch in loader:
        for item in batch:
            if isinstance(item, dict):
                markers.append(item)
            else:
                touched += item
    seconds = time.perf_counter() - start
    main = psutil.Process().memory_info().rss / MiB
    print(
        json.dumps(
            {"markers": markers, "objects": touched, "seconds": seconds, "main_rss_mib": main}
            | extra
        )
    )


def _run_child(kind: str, path: Path, workers: int, batch_size: int) -> dict[str, Any]:
    args = [sys.executable, __file__, "--child", kind, str(path)]
    args += ["--workers", str(workers), "--batch-size", str(batch_size)]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    by = {(m["marker"], m["worker"]): m["uss"] / MiB for m in result["markers"]}
    if sorted(w for p, w in by if p == "end") != list(range(workers)):
        raise RuntimeError(f"{kind}: expected an end marker from each worker, got {sorted(by)}")
    result["start"] = [by.get(("start", w), math.nan) for w in range(workers)]
    result["end"] = [by[("end", w)] for w in range(workers)]
    return result


def bench_memory(*, n_assets: int, n_objects: int, workers: int, batch_size: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ango.json"
        t0 = time.perf_counter()
        write_export(path, n_assets, n_objects=n_objects)
        print(
            f"(c) export: {n_assets:,} assets x {n_objects} objects, "
            f"{path.stat().st_size / MiB:.0f} MiB (written in {time.perf_counter() - t0:.0f} s); "
            f"{workers} fork workers, batch {batch_size}"
        )
        res = {k: _run_child(k, path, workers, batch_size) for k in ("ango", "json")}
    for k, name in (("ango", "ango_torch index"), ("json", "json.load list of dicts")):
        r = res[k]
        per = ", ".join(f"{a:.1f} → {b:.1f}" for a, b in zip(r["start"], r["end"], strict=True))
        index = f", index {r['index_mib']:.1f} MiB" if "index_mib" in r else ""
        print(
            f"(c)   {name}: worker USS start → end [{per}] MiB; main RSS "
            f"{r['main_rss_mib']:.0f} MiB{index}; epoch {r['seconds']:.1f} s, "
            f"{r['objects']:,} objects"
        )
    ours = sum(res["ango"]["end"]) / workers
    theirs = sum(res["json"]["end"]) / workers
    print(
        f"(c) worker USS     ango_torch {ours:8.1f} MiB   json.load dicts {theirs:8.1f} MiB"
        f"   → {theirs / ours:6.2f}× smaller   [goal ≥ 10×; mean of {workers} workers]"
    )


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds")
    ap.add_argument("--repeat", type=int, default=20, help="(a) timed repeats (best of)")
    ap.add_argument("--images", type=int, default=128, help="(b) JPEGs (one epoch)")
    ap.add_argument("--size", type=int, nargs=2, default=(768, 1024), metavar=("H", "W"))
    ap.add_argument("--objects", type=int, default=12, help="(b) polygons per image")
    ap.add_argument("--vertices", type=int, default=32, help="(b) vertices per polygon")
    ap.add_argument("--runs", type=int, default=3, help="(b) alternating runs per worker count")
    ap.add_argument(
        "--loader-workers", type=int, nargs="+", default=[2, 4, 8], help="(b) worker counts"
    )
    ap.add_argument("--batch-size", type=int, default=None, help="(b) 4, (c) 256")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--assets", type=int, default=100_000, help="(c) assets in the export")
    ap.add_argument("--asset-objects", type=int, default=20, help="(c) objects per asset")
    ap.add_argument("--only", choices=["a", "b", "c"], nargs="+", default=["a", "b", "c"])
    ap.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child_memory(*args.child, workers=args.workers, batch_size=args.batch_size)
        return
    if args.smoke:
        args.repeat, args.images, args.size, args.runs = 2, 8, (192, 256), 1
        args.loader_workers = [2]
        args.assets, args.asset_objects = 200, 5
    steps: dict[str, Callable[[], None]] = {
        "a": lambda: bench_raster(n_polys=4 if args.smoke else 20, repeat=args.repeat),
        "b": lambda: bench_loader(
            n_images=args.images,
            size=tuple(args.size),
            n_objects=args.objects,
            vertices=args.vertices,
            workers=args.loader_workers,
            batch_size=args.batch_size or 4,
            runs=args.runs,
        ),
        "c": lambda: bench_memory(
            n_assets=args.assets,
            n_objects=args.asset_objects,
            workers=args.workers,
            batch_size=args.batch_size or 256,
        ),
    }
    for key in args.only:
        steps[key]()


if __name__ == "__main__":
    main(sys.argv[1:])
