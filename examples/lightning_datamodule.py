"""A PyTorch Lightning ``LightningDataModule`` over an Ango export: dataset, split, sampler.

    pip install lightning        # not a dependency of ango_torch
    python examples/lightning_datamodule.py            # fits a tiny detector for 1 step

The module builds one :class:`ango_torch.AngoDataset` per stage's transforms, splits them
without leakage (:func:`ango_torch.split`: whole assets, Ango batches or metadata groups
on one side), and batches training images by aspect ratio with
:class:`ango_torch.GroupedBatchSampler`. Under Lightning's DDP strategy the sampler
reads the process group's rank and world size itself, so ``use_distributed_sampler=
False`` keeps Lightning from wrapping it; ``set_epoch`` is called from the training
epoch hook (shown in :class:`TinyDetector`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torchvision.transforms import v2

import ango_torch
from ango_torch.evaluation.distributed import EvalSampler

DATA = Path(__file__).resolve().parent / "data"


class AngoDataModule(L.LightningDataModule):
    """Train/val loaders of an Ango export, split by ``split_by`` groups.

    Args:
        export: anything :class:`ango_torch.AngoDataset` accepts.
        root, ontology, task, classes: passed to the dataset (``classes`` may be a
            mapping that merges and renames).
        val_fraction: the share of groups held out (``0``: validate on the training set).
        split_by: ``"asset"``, ``"batch"``, ``"video"``, ``"metadata:<key>"``.
        batch_size, num_workers, seed: loader settings; ``seed`` also fixes the split.
    """

    def __init__(
        self,
        export: Any,
        *,
        root: str | None = None,
        ontology: Any = None,
        task: str = "detection",
        classes: Any = None,
        val_fraction: float = 0.2,
        split_by: str = "asset",
        batch_size: int = 2,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.kw = {"root": root, "ontology": ontology, "task": task, "classes": classes}
        self.export = export
        self.val_fraction, self.split_by = val_fraction, split_by
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.sampler: ango_torch.GroupedBatchSampler | None = None

    def setup(self, stage: str | None = None) -> None:
        train_tf = v2.Compose(
            [
                v2.RandomHorizontalFlip(),
                v2.ToDtype(torch.float32, scale=True),
                v2.SanitizeBoundingBoxes(labels_getter=ango_torch.sanitize_labels_getter),
            ]
        )
        val_tf = v2.ToDtype(torch.float32, scale=True)
        train = ango_torch.AngoDataset(self.export, transforms=train_tf, **self.kw)
        val = ango_torch.AngoDataset(train.export, transforms=val_tf, **self.kw)
        self.classes = train.classes
        if self.val_fraction > 0:
            fractions = {"train": 1 - self.val_fraction, "val": self.val_fraction}
            parts = ango_torch.split(train, fractions, by=self.split_by, seed=self.seed)
            print(parts.report.summary())
            # The same export, by and seed: the same groups on the same side in both.
            self.train_set: Any = parts["train"]
            self.val_set: Any = ango_torch.split(val, fractions, by=self.split_by, seed=self.seed)[
                "val"
            ]
        else:
            self.train_set, self.val_set = train, val

    def train_dataloader(self) -> torch.utils.data.DataLoader[Any]:
        self.sampler = ango_torch.GroupedBatchSampler(
            self.train_set, self.batch_size, seed=self.seed
        )
        return torch.utils.data.DataLoader(
            self.train_set,
            batch_sampler=self.sampler,
            num_workers=self.num_workers,
            collate_fn=ango_torch.collate_fn,
        )

    def val_dataloader(self) -> torch.utils.data.DataLoader[Any]:
        # Every image once over all ranks (no DistributedSampler padding).
        return torch.utils.data.DataLoader(
            self.val_set,
            batch_size=self.batch_size,
            sampler=EvalSampler(len(self.val_set)),
            num_workers=self.num_workers,
            collate_fn=ango_torch.collate_fn,
        )


class TinyDetector(L.LightningModule):
    """torchvision's Faster R-CNN (MobileNetV3, random init, small input) as a module."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

        self.model = fasterrcnn_mobilenet_v3_large_320_fpn(
            weights=None, weights_backbone=None, num_classes=num_classes
        )

    def on_train_epoch_start(self) -> None:
        sampler = getattr(self.trainer.datamodule, "sampler", None)
        if sampler is not None:
            sampler.set_epoch(self.current_epoch)  # a new, rank-consistent shuffle

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, targets = batch
        losses = self.model(list(images), list(targets))
        loss = sum(losses.values())
        self.log("loss", loss, batch_size=len(images), prog_bar=True)
        return loss  # type: ignore[no-any-return]

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        images, _ = batch
        outputs = self.model(list(images))
        self.log("detections", float(sum(len(o["boxes"]) for o in outputs)), batch_size=1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.005, momentum=0.9)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-steps", type=int, default=1)
    p.add_argument("--val-fraction", type=float, default=0.0, help="0: the 3-image sample")
    p.add_argument("--output", default="runs/lightning")
    args = p.parse_args(argv)
    dm = AngoDataModule(
        str(DATA / "sample_export.json"),
        root=str(DATA / "images"),
        ontology=str(DATA / "ontology.json"),
        val_fraction=args.val_fraction,
    )
    dm.setup("fit")
    trainer = L.Trainer(
        max_steps=args.max_steps,
        limit_val_batches=1,
        accelerator="cpu",
        devices=1,
        use_distributed_sampler=False,  # GroupedBatchSampler shards per rank itself
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=args.output,
    )
    trainer.fit(TinyDetector(len(dm.classes)), datamodule=dm)
    print(f"fitted {trainer.global_step} step(s) on {len(dm.train_set)} training samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
