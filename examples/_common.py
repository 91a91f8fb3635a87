"""Shared plumbing of the example scripts: config files, datasets, models, DDP, checkpoints.

Not part of the package: the examples show how to use ``ango_torch`` with plain
PyTorch, so each piece here is small and meant to be copied and changed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torchvision import tv_tensors
from torchvision.transforms import v2

import ango_torch
from ango_torch.evaluation.distributed import EvalSampler, get_rank, is_main_process

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HERE = Path(__file__).resolve().parent


# -- configuration ------------------------------------------------------------------------
def base_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", required=True, help="a configs/*.toml file")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set schedule.epochs=3 (TOML value)",
    )
    p.add_argument(
        "--weights",
        choices=["default", "none"],
        default=None,
        help="pretrained weights (download needed) or none; overrides the config",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: config/auto)")
    p.add_argument("--output", default=None, help="output folder (default: config)")
    return p


def load_config(path: str, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """A TOML config with ``section.key=value`` overrides (values parsed as TOML)."""
    with open(path, "rb") as f:
        cfg = tomllib.load(f)
    for item in overrides:
        key, _, raw = item.partition("=")
        *parents, leaf = key.strip().split(".")
        node = cfg
        for name in parents:
            node = node.setdefault(name, {})
        try:
            node[leaf] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            node[leaf] = raw
    base = Path(path).resolve().parent.parent  # configs/ sits in the project root
    for key in ("source", "root", "ontology", "val_source"):
        value = cfg.get("data", {}).get(key)
        if value and "://" not in value and not Path(value).is_absolute():
            cfg["data"][key] = str(base / value)
    return cfg


def apply_cli(cfg: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    if args.weights is not None:
        cfg.setdefault("model", {})["weights"] = args.weights
    if args.device is not None:
        cfg.setdefault("schedule", {})["device"] = args.device
    if args.output is not None:
        cfg.setdefault("output", {})["dir"] = args.output
    return cfg


# -- distributed --------------------------------------------------------------------------
def init_distributed(device: str) -> torch.device:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA)."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and not dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", 0))
        cuda = device != "cpu" and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if cuda else "gloo")
        return torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def log(*args: Any) -> None:
    if is_main_process():
        print(*args, flush=True)


def progress(items: Iterable[Any], desc: str, total: int | None = None) -> Iterator[Any]:
    if is_main_process() and sys.stderr.isatty():
        try:
            from tqdm import tqdm

            yield from tqdm(items, desc=desc, total=total, leave=False)
            return
        except ImportError:
            pass
    yield from items


# -- data ---------------------------------------------------------------------------------
def detection_transforms(cfg: dict[str, Any], *, train: bool) -> Any:
    """Augmentations for training; validation only converts to float.

    torchvision's detectors resize internally (``min_size``/``max_size``) and answer in
    the coordinates of their input, so validation images keep the export's size and the
    ground truth comes straight from the annotations (:func:`ango_torch.to_coco`).
    Images stay uint8 through the DataLoader (4× fewer bytes to pin and copy than
    float32); :func:`to_device` converts them on the device (``benchmarks/gpu_train.py``).
    """
    t = cfg.get("transforms", {})
    steps: list[v2.Transform] = []
    if train and t.get("hflip", 0):
        steps.append(v2.RandomHorizontalFlip(p=float(t["hflip"])))
    if train and t.get("scale_jitter"):
        lo, hi = t["scale_jitter"]
        steps.append(v2.RandomResize(int(t.get("size", 512) * lo), int(t.get("size", 512) * hi)))
    if train:
        # every per-instance key (labels, area, iscrowd) filtered with the boxes
        steps.append(v2.SanitizeBoundingBoxes(labels_getter=ango_torch.sanitize_labels_getter))
    return v2.Compose(steps) if steps else v2.Identity()


def segmentation_transforms(cfg: dict[str, Any], *, train: bool) -> v2.Transform:
    t = cfg.get("transforms", {})
    size = tuple(t.get("size", (256, 256)))
    steps: list[v2.Transform] = [v2.Resize(size)]  # a fixed size, so samples stack
    if train and t.get("hflip", 0):
        steps.append(v2.RandomHorizontalFlip(p=float(t["hflip"])))
    steps.append(v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True))
    return v2.Compose(steps)


def base(ds: Any) -> Any:
    """The dataset under a ``Subset`` (its ``classes``, ``task``)."""
    return base(ds.dataset) if isinstance(ds, torch.utils.data.Subset) else ds


def split_datasets(cfg: dict[str, Any], train_ds: Any, val_ds: Any) -> tuple[Any, Any]:
    """``(train, val)``: with ``data.val_fraction`` > 0, leak-free ``Subset``\\ s of the
    two datasets (same export, different transforms) by :func:`ango_torch.split`
    (``data.split_by``: asset, batch, video, metadata:KEY), the same groups on the same
    side for both; else the datasets as given."""
    d = cfg["data"]
    fraction = float(d.get("val_fraction", 0) or 0)
    if fraction <= 0:
        return train_ds, val_ds
    fractions = {"train": 1 - fraction, "val": fraction}
    seed, by = int(cfg.get("schedule", {}).get("seed", 0)), d.get("split_by", "asset")
    parts = ango_torch.split(train_ds, fractions, by=by, seed=seed)
    log(parts.report.summary())
    return parts["train"], ango_torch.split(val_ds, fractions, by=by, seed=seed)["val"]


def build_dataset(cfg: dict[str, Any], *, train: bool, transforms: Any) -> ango_torch.AngoDataset:
    d = cfg["data"]
    source = d["source"] if train or not d.get("val_source") else d["val_source"]
    task = d.get("task", "instance")
    return ango_torch.AngoDataset(
        source,
        task=task,
        root=d.get("root") or None,
        ontology=d.get("ontology") or None,
        classes=d.get("classes") or None,
        stage=d.get("stage") or None,
        cache_dir=d.get("cache_dir") or None,
        brush_instances="components" if d.get("brush_instances") else None,
        transforms=transforms,
        # "packed": workers hand over each mask's crop; to_device pastes them on the device
        masks=d.get("masks", "full") if task == "instance" else "full",
    )


def loader(
    ds: Any, cfg: dict[str, Any], *, train: bool, grouped: bool = False
) -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
    """The DataLoader of ``ds``.  ``grouped`` (detection training): batches of one
    aspect-ratio group from :class:`ango_torch.GroupedBatchSampler`, which also gives
    each torchrun rank a disjoint share with the same number of batches; its shuffle is
    seeded by ``schedule.seed`` + the epoch (``Run.epochs`` calls ``set_epoch``)."""
    s = cfg.get("schedule", {})
    workers = int(s.get("workers", 0))
    if train and grouped:
        sampler = ango_torch.GroupedBatchSampler(
            ds,
            int(s.get("batch_size", 2)),
            seed=int(s.get("seed", 0)),
            group_factor=int(s.get("group_factor", 0)),
            repeat_threshold=s.get("repeat_threshold"),
        )
        return torch.utils.data.DataLoader(
            ds,
            batch_sampler=sampler,
            num_workers=workers,
            collate_fn=ango_torch.collate_fn,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=workers > 0,
        )
    if train:
        sampler: Any = (
            torch.utils.data.DistributedSampler(ds, shuffle=True)
            if dist.is_initialized()
            else torch.utils.data.RandomSampler(ds)
        )
    else:
        sampler = EvalSampler(len(ds))  # every image exactly once across ranks, no padding
    return torch.utils.data.DataLoader(
        ds,
        batch_size=int(s.get("batch_size", 2)),
        sampler=sampler,
        num_workers=workers,
        collate_fn=ango_torch.collate_fn,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
        # A last batch of one breaks BatchNorm layers in training (segmentation heads).
        drop_last=train and len(ds) > int(s.get("batch_size", 2)),
    )


# -- training helpers ---------------------------------------------------------------------
def autocast(device: torch.device, enabled: bool) -> Any:
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def to_device(
    images: Iterable[torch.Tensor], targets: Iterable[dict[str, Any]], device: torch.device
) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    # uint8 → float after the copy: on a GPU the conversion is free, the copy 4× smaller.
    images = [im.to(device, non_blocking=True).float().div_(255) for im in images]
    # Moves every tensor; packed masks (data.masks = "packed") become full [N, H, W]
    # masks on the device, pasted in one batched call.
    return images, ango_torch.unpack_masks(list(targets), device)


def make_optimizer(model: torch.nn.Module, cfg: dict[str, Any], steps: int) -> tuple[Any, Any]:
    s = cfg.get("schedule", {})
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(
        params,
        lr=float(s.get("lr", 0.01)),
        momentum=float(s.get("momentum", 0.9)),
        weight_decay=float(s.get("weight_decay", 1e-4)),
    )
    warmup = max(1, min(int(s.get("warmup_steps", 50)), steps // 2 or 1))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def save_checkpoint(path: Path, **state: Any) -> None:
    if is_main_process():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)  # type: ignore[no-any-return]


def write_json(path: Path, data: Any) -> None:
    if is_main_process():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2))


class Run:
    """Checkpoints, ``--resume``, per-epoch ``metrics.json`` and the DDP teardown."""

    def __init__(
        self,
        out: Path,
        *,
        model: torch.nn.Module,
        optimizer: Any,
        scheduler: Any,
        cfg: dict[str, Any],
        classes: list[str],
        resume: bool,
    ) -> None:
        self.out, self.ckpt = out, out / "checkpoint.pt"
        self.parts = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
        self.cfg, self.classes = cfg, classes
        self.start, self.history = 0, []
        if resume and self.ckpt.exists():
            state = load_checkpoint(self.ckpt)
            for name, part in self.parts.items():
                part.load_state_dict(state[name])
            self.start, self.history = state["epoch"] + 1, state["history"]
            log(f"resumed from {self.ckpt} at epoch {self.start}")

    def epochs(self, loader: torch.utils.data.DataLoader, n: int) -> Iterator[int]:  # type: ignore[type-arg]
        for epoch in range(self.start, n):
            for sampler in (loader.sampler, loader.batch_sampler):  # a new shuffle each epoch
                if hasattr(sampler, "set_epoch"):
                    sampler.set_epoch(epoch)
            yield epoch

    def end_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        self.history.append(record)
        state = {name: part.state_dict() for name, part in self.parts.items()}
        save_checkpoint(
            self.ckpt,
            **state,
            epoch=epoch,
            history=self.history,
            config=self.cfg,
            classes=self.classes,
        )
        write_json(self.out / "metrics.json", self.history)

    def finish(self) -> dict[str, Any]:
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
        return {"history": self.history, "output": str(self.out)}


def prepare_training(
    cfg: dict[str, Any],
    args: argparse.Namespace,
    train_ds: Any,
    model: torch.nn.Module,
    out: Path,
    *,
    grouped: bool = False,
) -> tuple[torch.nn.Module, torch.utils.data.DataLoader, Any, Run, int]:  # type: ignore[type-arg]
    """DDP wrapper, training loader, optimizer + schedule, checkpoint/resume: the setup
    both training scripts share.  Returns ``(ddp, loader, optimizer, run, epochs)``."""
    log(f"{base(train_ds)!r}\nclasses: {base(train_ds).classes[1:]}\noutput: {out}")
    if isinstance(train_ds, torch.utils.data.Subset):
        log(f"training on {len(train_ds)} of {len(train_ds.dataset)} samples (data.val_fraction)")
    ddp = torch.nn.parallel.DistributedDataParallel(model) if dist.is_initialized() else model
    train_loader = loader(train_ds, cfg, train=True, grouped=grouped)
    epochs = int(cfg.get("schedule", {}).get("epochs", 1))
    steps = epochs * min(len(train_loader), args.max_steps or len(train_loader))
    opt, sched = make_optimizer(model, cfg, steps)
    run = Run(
        out,
        model=model,
        optimizer=opt,
        scheduler=sched,
        cfg=cfg,
        classes=base(train_ds).classes,
        resume=args.resume,
    )
    return ddp, train_loader, (opt, sched), run, epochs


class Meter:
    """Running means of named values (losses), for the progress line."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0
        self.start = time.perf_counter()
        self.images = 0

    def update(self, values: dict[str, float], images: int) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1
        self.images += images

    def means(self) -> dict[str, float]:
        return {k: v / max(1, self.count) for k, v in self.sums.items()}

    def rate(self) -> float:
        return self.images / max(1e-9, time.perf_counter() - self.start)


__all__ = ["get_rank"]
