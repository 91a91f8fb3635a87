"""Overfit a tiny segmentation network on the bundled sample: proof that the pipeline learns.

    python examples/learn_sample.py --config configs/demo_semantic.toml

Three photographs are far too few to learn anything that generalizes, so this measures
what can be measured honestly: whether the targets the dataset produces are learnable.
A small U-Net (about 0.5 M parameters, GroupNorm, random init, no download) is trained on
the three images and scored on the *same* three images (the training set), at the
export's full resolution against the dataset's own masks: mean IoU per epoch. A broken
pipeline (misplaced masks, shuffled labels, a height/width swap) stays near chance; a
working one climbs towards 1.0. Writes ``curve.json`` (per epoch loss and mIoU) and
``predictions.png`` (image | ground truth | prediction per sample) and the final
predictions as label PNGs (``labels/``, as ``ango-torch evaluate --task semantic`` reads
them) to the output folder.

The classes come from the config's ``classes`` table, a mapping that merges the
ontology's classes into a few (see README, "Class mapping").
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c

import ango_torch
from ango_torch.cli.convert import output_paths
from ango_torch.datasets.preview import PALETTE
from ango_torch.evaluation.metrics import SegmentationMeter


def _block(i: int, o: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(i, o, 3, padding=1),
        nn.GroupNorm(8, o),
        nn.ReLU(inplace=True),
        nn.Conv2d(o, o, 3, padding=1),
        nn.GroupNorm(8, o),
        nn.ReLU(inplace=True),
    )


class TinyUNet(nn.Module):
    """A 4-level U-Net; GroupNorm, so batch statistics do not differ in eval mode."""

    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()
        w = width
        self.d1, self.d2, self.d3, self.d4 = (
            _block(3, w),
            _block(w, 2 * w),
            _block(2 * w, 4 * w),
            _block(4 * w, 8 * w),
        )
        self.u3, self.u2, self.u1 = _block(12 * w, 4 * w), _block(6 * w, 2 * w), _block(3 * w, w)
        self.head = nn.Conv2d(w, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def up(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, size=like.shape[-2:], mode="bilinear", align_corners=False)

        a = self.d1(x)
        b = self.d2(F.max_pool2d(a, 2))
        cc = self.d3(F.max_pool2d(b, 2))
        d = self.d4(F.max_pool2d(cc, 2))
        cc = self.u3(torch.cat([up(d, cc), cc], 1))
        b = self.u2(torch.cat([up(cc, b), b], 1))
        return self.head(self.u1(torch.cat([up(b, a), a], 1)))  # type: ignore[no-any-return]


def _predict(model: nn.Module, x: torch.Tensor, sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
    """Labels ``int64 [H, W]`` per image of the batch ``x`` (float ``[B, 3, h, w]``), each
    at its own full size ``sizes[i]``."""
    logits = model(x)
    return [
        F.interpolate(logits[i : i + 1], size=hw, mode="bilinear").argmax(1)[0]
        for i, hw in enumerate(sizes)
    ]


def _picture(
    samples: list[tuple[torch.Tensor, torch.Tensor]],
    preds: list[torch.Tensor],
    classes: list[str],
    path: Path,
) -> None:
    """Rows of image | ground truth | prediction (classes tinted, ignored pixels grey,
    background untouched), each scaled to a height of 240 px, with a legend."""
    from PIL import Image, ImageDraw

    colors = torch.tensor([(0, 0, 0), *PALETTE[: len(classes) - 1]], dtype=torch.uint8)
    rows = []
    for (image, gt), pred in zip(samples, preds, strict=True):
        tiles = []
        for labels in (None, gt, pred):
            if labels is None:
                rgb = image
            else:
                paint = colors[labels.clamp(max=len(classes) - 1)].permute(2, 0, 1)
                paint[:, labels == 255] = 128
                mixed = image * 0.35 + paint * 0.65
                rgb = torch.where(labels == 0, image, mixed).to(torch.uint8)  # background: as is
            tile = Image.fromarray(rgb.permute(1, 2, 0).numpy())
            h = 240
            tiles.append(tile.resize((round(tile.width * h / tile.height), h)))
        row = Image.new("RGB", (sum(t.width for t in tiles) + 8 * 2, 240), "white")
        x = 0
        for t in tiles:
            row.paste(t, (x, 0))
            x += t.width + 8
        rows.append(row)
    width = max(r.width for r in rows)
    canvas = Image.new("RGB", (width, 24 + sum(r.height + 8 for r in rows) + 24), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 6), "image | ground truth | prediction  (training set)", fill=(0, 0, 0))
    y = 24
    for r in rows:
        canvas.paste(r, (0, y))
        y += r.height + 8
    x = 4
    for k, name in enumerate(classes):
        draw.rectangle([x, y + 4, x + 12, y + 16], fill=tuple(colors[k].tolist()))
        draw.text((x + 16, y + 5), name, fill=(0, 0, 0))
        x += 24 + 7 * len(name)
    canvas.save(path, optimize=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = c.base_parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=None, help="overrides schedule.epochs")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop training after this long (overrides schedule.max_seconds)",
    )
    args = p.parse_args(argv)
    cfg = c.apply_cli(c.load_config(args.config, args.set), args)
    s = cfg.get("schedule", {})
    epochs = args.epochs if args.epochs is not None else int(s.get("epochs", 60))
    budget = args.max_seconds if args.max_seconds is not None else float(s.get("max_seconds", 0))
    torch.manual_seed(int(s.get("seed", 0)))
    size = tuple(int(v) for v in cfg.get("transforms", {}).get("size", (160, 160)))
    train_tf = v2.Compose(
        [
            v2.Resize(size, antialias=True),
            v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
        ]
    )
    cfg["data"]["task"] = "semantic"
    train_ds = c.build_dataset(cfg, train=True, transforms=train_tf)
    full_ds = c.build_dataset(cfg, train=True, transforms=None)  # full size, for scoring
    # (image uint8 [3, H, W], mask int64 [H, W]) at the export's size, loaded once.
    full = [
        (im.as_subclass(torch.Tensor), t["mask"].as_subclass(torch.Tensor)) for im, t in full_ds
    ]
    classes = full_ds.classes
    out = Path(cfg.get("output", {}).get("dir", "runs/learn_sample"))
    out.mkdir(parents=True, exist_ok=True)
    # Three images: decoded once, trained on as one batch (in the order of ``full``).
    loader = torch.utils.data.DataLoader(
        train_ds, batch_size=len(train_ds), collate_fn=ango_torch.collate_fn
    )
    images, targets = next(iter(loader))
    x = torch.stack(list(images))
    y = torch.stack([t["mask"].as_subclass(torch.Tensor) for t in targets])
    sizes = [tuple(gt.shape) for _, gt in full]
    counts = torch.bincount(y[y != 255].flatten(), minlength=len(train_ds.classes)).float()
    # Inverse-sqrt-frequency class weights: the small classes are a few hundred pixels.
    weight = (counts.sum() / counts.clamp(min=1)).sqrt()
    weight = weight / weight.mean()
    model = TinyUNet(len(train_ds.classes), width=int(cfg.get("model", {}).get("width", 16)))
    opt = torch.optim.AdamW(model.parameters(), lr=float(s.get("lr", 5e-3)))
    print(f"classes: {train_ds.classes[1:]} (mapped: {cfg['data'].get('classes')})")
    print(
        f"training a {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M-parameter U-Net "
        f"from random weights on the {len(train_ds)} sample images at {size[1]}×{size[0]}; "
        "mIoU is measured on the SAME images (the training set, full resolution): it shows "
        "that the targets are learnable, not that the model generalizes.",
        flush=True,
    )
    names = ", ".join(classes[1:])
    print(f"{'epoch':>5} {'loss':>8} {'train-set mIoU':>15}   IoU per class ({names})")
    history: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        loss = F.cross_entropy(model(x), y, ignore_index=255, weight=weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.eval()
        meter = SegmentationMeter(len(classes), class_names=classes)
        with torch.no_grad():
            for pred, (_, gt) in zip(_predict(model, x, sizes), full, strict=True):
                meter.update(pred, gt)
        m = meter.compute()
        history.append({"epoch": epoch, "loss": loss.item(), "miou": m.miou, "iou": list(m.iou)})
        per_class = " ".join(f"{v:.2f}" for v in m.iou[1:])
        print(f"{epoch:>5} {loss.item():>8.4f} {m.miou:>15.3f}   {per_class}", flush=True)
        if budget and time.perf_counter() - t0 > budget:
            print(f"stopped after {time.perf_counter() - t0:.0f} s (max_seconds={budget:g})")
            break
    (out / "curve.json").write_text(json.dumps(history, indent=1))
    with torch.no_grad():
        preds = _predict(model, x, sizes)
    _picture(full, preds, classes, out / "predictions.png")
    # The same predictions as label PNGs, named as `ango-torch evaluate --task semantic`
    # expects them (full size, uint8 class values): the demo scores them with it.
    for pred, path in zip(preds, output_paths(full_ds, str(out / "labels"), ".png"), strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pred.to(torch.uint8).numpy()).save(path)
    print(
        f"train-set mIoU {history[0]['miou']:.3f} after one step → {history[-1]['miou']:.3f} "
        f"after {len(history)} ({time.perf_counter() - t0:.0f} s); curve: {out / 'curve.json'}, "
        f"picture: {out / 'predictions.png'}"
    )
    return {"history": history, "output": str(out), "dataset": full_ds}


if __name__ == "__main__":
    main()
