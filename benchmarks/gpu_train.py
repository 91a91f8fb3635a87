"""Mask R-CNN training throughput on a GPU: is the GPU ever waiting for our data?

Fine-tunes torchvision Mask R-CNN (R50-FPN, bf16 autocast) on the bundled sample's
photographs resized to about 1024×768 and repeated to a few hundred images, each with
12 polygon masks, and prints in one run:

- model-only images/s: one batch resident on the GPU, forward + backward + step;
- loader-only images/s: the DataLoader alone (8 workers, batch 8);
- end-to-end images/s: loader → GPU → forward + backward + step;

for ango_torch (uint8 images and masks built in shared memory by the workers, pinned,
copied with ``non_blocking=True``, converted to float on the GPU), for ango_torch with
``masks="packed"`` (the workers hand over each mask's crop; ``ango_torch.unpack_masks``
pastes the batch's crops into full masks on the GPU) and, as the named baseline,
torchvision's own pipeline (``CocoDetection`` + ``wrap_dataset_for_transforms_v2`` over
the same images and annotations, uint8 → float on the CPU in the training loop).
Goal: end-to-end ≥ 95% of model-only with packed masks.

Also printed per pipeline, the host side of each batch: the bytes the main process pins
(every tensor of the batch: what ``pin_memory`` copies) and the main process's CPU
seconds per batch while the loader runs alone (``time.process_time``: unpickling, the
shared-memory hand-over and, with CUDA, the pin thread's copy; without CUDA, one copy
of the batch's bytes stands in for pinning).

    python benchmarks/gpu_train.py                 # on a CUDA machine
    python benchmarks/gpu_train.py --host-only     # no model: the host-side figures (CPU)
    python benchmarks/gpu_train.py --smoke         # tiny, on CPU (the test suite)
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision.transforms import v2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ango_torch  # noqa: E402
from ango_torch.datasets.packed import PackedMasks  # noqa: E402

PHOTOS = ROOT / "examples" / "data" / "images"
CLASSES = ["coin", "cup", "flag", "spoon"]


def _polygon(rng: random.Random, w: int, h: int) -> list[list[float]]:
    r = rng.uniform(0.03, 0.12) * min(w, h)
    cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
    n = rng.randint(16, 32)
    return [
        [
            round(cx + r * rng.uniform(0.6, 1.0) * math.cos(2 * math.pi * k / n), 2),
            round(cy + r * rng.uniform(0.6, 1.0) * math.sin(2 * math.pi * k / n), 2),
        ]
        for k in range(n)
    ]


def make_data(folder: Path, n: int, size: tuple[int, int], masks: int) -> tuple[list[dict], Path]:
    """JPEGs of the sample photos at ``size`` (W, H) and an Ango export of ``n`` images."""
    w, h = size
    photos = [Image.open(p).convert("RGB").resize((w, h)) for p in sorted(PHOTOS.glob("*.png"))]
    rng = random.Random(0)
    assets = []
    for i in range(n):
        name = f"img_{i:05d}.jpg"
        photos[i % len(photos)].save(folder / name, quality=90)
        tools = [
            {
                "polygon": _polygon(rng, w, h),
                "objectId": f"o{i}_{k}",
                "title": CLASSES[rng.randrange(len(CLASSES))],
                "classifications": [],
            }
            for k in range(masks)
        ]
        assets.append(
            {
                "assetId": f"a{i:023d}",
                "externalId": name,
                "metadata": {"width": w, "height": h},
                "task": {"tools": tools},
            }
        )
    return assets, folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=320)
    p.add_argument("--size", default="1024x768", help="W×H of the images")
    p.add_argument("--masks", type=int, default=12, help="polygon masks per image")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--no-baseline", action="store_true", help="skip torchvision's pipeline")
    p.add_argument("--no-pin", action="store_true", help="DataLoader without pin_memory")
    p.add_argument("--json", default=None, help="also write the figures here")
    p.add_argument("--smoke", action="store_true", help="tiny run on CPU (test suite)")
    p.add_argument("--host-only", action="store_true", help="loader and host figures, no model")
    args = p.parse_args()
    if args.smoke:
        args.images, args.size, args.masks, args.batch = 6, "96x64", 3, 2
        args.workers, args.steps, args.warmup = 2, 1, 0
    w, h = (int(v) for v in args.size.lower().split("x"))
    cuda = torch.cuda.is_available() and not args.smoke
    device = torch.device("cuda" if cuda else "cpu")
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    with tempfile.TemporaryDirectory() as tmp:
        assets, folder = make_data(Path(tmp), args.images, (w, h), args.masks)
        ours = ango_torch.AngoDataset(assets, task="instance", root=folder)
        packed = ango_torch.AngoDataset(assets, task="instance", root=folder, masks="packed")
        ann = Path(tmp) / "coco.json"
        ango_torch.write_coco(ango_torch.AngoDataset(assets, task="instance", root=folder), ann)
        model = maskrcnn_resnet50_fpn(
            weights=None,
            weights_backbone=None,
            num_classes=len(ours.classes),
            min_size=min(w, h),
            max_size=max(w, h),
        ).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9)
        model.train()

        def step(images: list[torch.Tensor], targets: list[dict[str, Any]]) -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                losses = model(images, targets)
            loss = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        def sync() -> None:
            if cuda:
                torch.cuda.synchronize()

        def to_dev(images: Any, targets: Any, *, convert: str) -> tuple[list, list]:
            if convert == "host":  # the baseline: uint8 → float on the CPU, then copy
                images = [im.float().div_(255) for im in images]
            ims = [im.to(device, non_blocking=True) for im in images]
            if convert == "device":  # ours: copy uint8 (4× fewer bytes), convert on the GPU
                ims = [im.float().div_(255) for im in ims]
                # every tensor moved; packed masks pasted full-size on the device
                return ims, ango_torch.unpack_masks(targets, device)
            tgs = [
                {
                    k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                    for k, v in t.items()
                }
                for t in targets
            ]
            return ims, tgs

        def loader(ds: Any) -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
            return torch.utils.data.DataLoader(
                ds,
                batch_size=args.batch,
                shuffle=True,
                num_workers=args.workers,
                collate_fn=ango_torch.collate_fn,
                pin_memory=cuda and not args.no_pin,
                drop_last=True,
                persistent_workers=True,
                prefetch_factor=4,
            )

        def forever(dl: Any) -> Any:
            while True:
                yield from dl

        results: dict[str, dict[str, float]] = {}
        # model-only: one batch resident on the device
        images, targets = to_dev(
            *ango_torch.collate_fn([ours[i] for i in range(args.batch)]), convert="device"
        )

        def model_only_rate() -> float:
            for _ in range(args.warmup):
                step(images, targets)
            sync()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(images, targets)
            sync()
            return args.steps * args.batch / (time.perf_counter() - t0)

        model_only = model_only_rate() if not args.host_only else math.nan

        def measure(name: str, ds: Any, convert: str) -> None:
            it = forever(loader(ds))
            for _ in range(args.warmup):
                next(it)
            threads = torch.get_num_threads()
            if not cuda:  # one thread copies, as the pin thread does (and no OpenMP spinning)
                torch.set_num_threads(1)
            t0, cpu0, pinned = time.perf_counter(), time.process_time(), 0
            for _ in range(args.steps):
                batch = next(it)
                pinned += _nbytes(batch)
                if not cuda:  # no pin thread: one copy of the batch's bytes stands in for it
                    _copy(batch)
            loader_only = args.steps * args.batch / (time.perf_counter() - t0)
            torch.set_num_threads(threads)
            host = {
                "main_cpu_s_per_batch": (time.process_time() - cpu0) / args.steps,
                "pinned_mib_per_batch": pinned / args.steps / 2**20,
            }
            if args.host_only:
                results[name] = {"loader_only": loader_only, **host}
                return
            for _ in range(args.warmup):
                step(*to_dev(*next(it), convert=convert))
            sync()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(*to_dev(*next(it), convert=convert))
            sync()
            e2e = args.steps * args.batch / (time.perf_counter() - t0)
            results[name] = {
                "model_only": model_only,
                "loader_only": loader_only,
                "end_to_end": e2e,
                "fraction": e2e / model_only,
                **host,
            }

        measure("ango_torch", ours, convert="device")
        measure("ango_torch masks=packed", packed, convert="device")
        if not args.no_baseline:
            from torchvision.datasets import CocoDetection, wrap_dataset_for_transforms_v2

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                coco = CocoDetection(str(folder), str(ann))
            base = wrap_dataset_for_transforms_v2(
                coco, target_keys={"boxes", "labels", "masks", "image_id"}
            )
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*__array__ implementation.*")
                measure("torchvision CocoDetection (baseline)", _PIL(base), convert="host")
        # Model-only again, after everything is warm; the better of the two is the bar.
        again = model_only_rate() if not args.host_only else math.nan
        for r in results.values() if not args.host_only else ():
            r["model_only"] = max(model_only, again)
            r["fraction"] = r["end_to_end"] / r["model_only"]
    name = torch.cuda.get_device_name() if cuda else "cpu"
    print(
        f"Mask R-CNN R50-FPN, {'bf16 autocast, ' if cuda else ''}{name}; {args.images} images "
        f"{'(no pin_memory) ' if args.no_pin else ''}"
        f"{w}×{h}, {args.masks} polygon masks each, batch {args.batch}, {args.workers} workers"
    )
    print("host side per batch (main process):")
    for pipeline, r in results.items():
        print(
            f"  {pipeline:40s} pinned {r['pinned_mib_per_batch']:7.2f} MiB   main-process CPU "
            f"{1e3 * r['main_cpu_s_per_batch']:7.1f} ms   loader-only {r['loader_only']:.1f}/s"
        )
    if args.host_only:
        return
    print(
        f"{'pipeline':40s} {'model-only':>11s} {'loader-only':>12s} {'end-to-end':>11s}  e2e/model"
    )
    for pipeline, r in results.items():
        print(
            f"{pipeline:40s} {r['model_only']:9.1f}/s {r['loader_only']:10.1f}/s "
            f"{r['end_to_end']:9.1f}/s  {100 * r['fraction']:6.1f}%   [goal ≥ 95%]"
        )
    base = results.get("torchvision CocoDetection (baseline)")
    for name in ("ango_torch", "ango_torch masks=packed"):
        if base is not None and name in results:
            r = results[name]
            print(
                f"vs baseline, {name}: end-to-end {r['end_to_end'] / base['end_to_end']:.2f}×, "
                f"loader-only {r['loader_only'] / base['loader_only']:.2f}×"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def _tensors(batch: Any) -> list[Any]:
    """Every tensor (and packed mask) of a ``(images, targets)`` batch."""
    images, targets = batch
    out = list(images)
    for t in targets:
        out += [v for v in t.values() if isinstance(v, torch.Tensor | PackedMasks)]
    return out


def _nbytes(batch: Any) -> int:
    return sum(int(t.nbytes) for t in _tensors(batch))


_STAGING: list[torch.Tensor] = []


def _copy(batch: Any) -> None:
    """Copy the batch's bytes into one reused buffer: what pinning does, minus the page
    faults (torch's pinned-memory allocator caches and reuses its blocks)."""
    parts = [
        t
        for x in _tensors(batch)
        for t in ((x,) if isinstance(x, torch.Tensor) else (x.data, x.rects))
    ]
    need = sum(-(-int(t.nbytes) // 8) * 8 for t in parts)
    if not _STAGING or _STAGING[0].numel() < need:
        _STAGING[:] = [torch.ones(need, dtype=torch.uint8)]  # touched once, then reused
    start = 0
    for t in parts:
        n = int(t.nbytes)
        if n:
            view = _STAGING[0][start : start + n].view(t.dtype).view(t.shape)
            view.copy_(torch.as_tensor(t))
        start += -(-n // 8) * 8


class _PIL(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """The baseline's PIL images as uint8 tensors (what its users convert in the loop)."""

    def __init__(self, ds: Any) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> Any:
        image, target = self.ds[i]
        return v2.functional.pil_to_tensor(image), target


if __name__ == "__main__":
    main()
