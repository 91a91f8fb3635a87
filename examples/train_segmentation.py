"""Train torchvision DeepLabV3 / FCN / LR-ASPP for semantic segmentation on an Ango export.

    python examples/train_segmentation.py --config configs/sample_deeplabv3.toml
    torchrun --nproc_per_node=2 examples/train_segmentation.py \
        --config configs/sample_deeplabv3.toml

Pixels labelled 255 (ignored) do not count in the loss or in mIoU.  Every epoch: mean
loss, images/s, mIoU and per-class IoU on the validation export, a checkpoint and
``metrics.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c

import ango_torch
from ango_torch.evaluation.metrics import SegmentationMeter

MODELS = (
    "deeplabv3_mobilenet_v3_large",
    "deeplabv3_resnet50",
    "deeplabv3_resnet101",
    "fcn_resnet50",
    "fcn_resnet101",
    "lraspp_mobilenet_v3_large",
)


def build_model(cfg: dict[str, Any], num_classes: int) -> torch.nn.Module:
    import torchvision.models.segmentation as seg

    m = cfg.get("model", {})
    name = m.get("name", "deeplabv3_mobilenet_v3_large")
    if name not in MODELS:
        raise SystemExit(f"model {name!r}: choose one of {MODELS}")
    if m.get("weights", "none") == "default":
        model = getattr(seg, name)(weights="DEFAULT")
        head = model.classifier
        last = head[-1] if isinstance(head, torch.nn.Sequential) else head.high_classifier
        new = torch.nn.Conv2d(last.in_channels, num_classes, kernel_size=1)
        if isinstance(head, torch.nn.Sequential):
            head[-1] = new
        else:
            head.high_classifier = new
            head.low_classifier = torch.nn.Conv2d(head.low_classifier.in_channels, num_classes, 1)
        model.aux_classifier = None
        return model  # type: ignore[no-any-return]
    return getattr(seg, name)(  # type: ignore[no-any-return]
        weights=None, weights_backbone=None, num_classes=num_classes
    )


def batch(images: Any, targets: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.stack(list(images)).to(device, non_blocking=True)
    y = torch.stack([t["mask"] for t in targets]).to(device, non_blocking=True)
    return x, y


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, ds: ango_torch.AngoDataset, cfg: dict[str, Any], device: torch.device
) -> dict[str, Any]:
    model.eval()
    meter = SegmentationMeter(len(ds.classes), class_names=ds.classes)
    seen = torch.zeros((), dtype=torch.int64)
    for images, targets in c.progress(c.loader(ds, cfg, train=False), "eval"):
        x, y = batch(images, targets, device)
        with c.autocast(device, cfg.get("schedule", {}).get("amp", False)):
            logits = model(x)["out"]
        meter.update(logits.float().argmax(1).cpu(), y.cpu())
        seen += len(images)
    meter.all_reduce()
    if dist.is_initialized():
        dist.all_reduce(seen)
    metrics = meter.compute()
    c.log(metrics.table())
    return {"images": int(seen), **metrics.to_dict()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = c.base_parser(__doc__.splitlines()[0])
    p.add_argument("--resume", action="store_true", help="continue from output/checkpoint.pt")
    p.add_argument("--max-steps", type=int, default=None, help="stop each epoch after N steps")
    args = p.parse_args(argv)
    cfg = c.apply_cli(c.load_config(args.config, args.set), args)
    cfg["data"]["task"] = "semantic"
    s = cfg.get("schedule", {})
    device = c.init_distributed(s.get("device", "auto"))
    torch.manual_seed(int(s.get("seed", 0)) + c.get_rank())
    train_ds = c.build_dataset(
        cfg, train=True, transforms=c.segmentation_transforms(cfg, train=True)
    )
    val_ds = c.build_dataset(
        cfg, train=False, transforms=c.segmentation_transforms(cfg, train=False)
    )
    out = Path(cfg.get("output", {}).get("dir", "runs/segmentation"))
    model = build_model(cfg, len(train_ds.classes)).to(device)
    ddp, train_loader, (opt, sched), run, epochs = c.prepare_training(
        cfg, args, train_ds, model, out
    )
    for epoch in run.epochs(train_loader, epochs):
        ddp.train()
        meter = c.Meter()
        for step, (images, targets) in enumerate(c.progress(train_loader, f"epoch {epoch}")):
            if args.max_steps is not None and step >= args.max_steps:
                break
            x, y = batch(images, targets, device)
            with c.autocast(device, s.get("amp", False)):
                out_logits = ddp(x)
                loss = F.cross_entropy(out_logits["out"], y, ignore_index=255)
                if out_logits.get("aux") is not None:
                    loss = loss + 0.5 * F.cross_entropy(out_logits["aux"], y, ignore_index=255)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            meter.update({"loss": float(loss.detach())}, len(x))
        record = {"epoch": epoch, **meter.means(), "images_per_s": meter.rate()}
        record["eval"] = evaluate(model, val_ds, cfg, device)
        c.log(
            f"epoch {epoch}: loss {record.get('loss', float('nan')):.4f}, "
            f"mIoU {record['eval'].get('miou', float('nan')):.4f}"
        )
        run.end_epoch(epoch, record)
    return run.finish()


if __name__ == "__main__":
    main()
