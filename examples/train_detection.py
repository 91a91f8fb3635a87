"""Fine-tune torchvision Faster R-CNN or Mask R-CNN on an Ango export.

    python examples/train_detection.py --config configs/sample_maskrcnn.toml
    torchrun --nproc_per_node=2 examples/train_detection.py --config configs/sample_maskrcnn.toml

Every epoch: mean losses, images/s, and COCO bbox (and segm) mAP on the validation
export (each image evaluated exactly once, also under torchrun), a checkpoint
(``checkpoint.pt``, resumable with ``--resume``) and ``metrics.json`` in the output folder.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c

import ango_torch
from ango_torch.evaluation.distributed import gather_predictions, is_main_process
from ango_torch.evaluation.evaluate import evaluate_coco, predictions_to_coco

MODELS = {
    "maskrcnn_resnet50_fpn": "MaskRCNN_ResNet50_FPN_Weights",
    "maskrcnn_resnet50_fpn_v2": "MaskRCNN_ResNet50_FPN_V2_Weights",
    "fasterrcnn_resnet50_fpn": "FasterRCNN_ResNet50_FPN_Weights",
    "fasterrcnn_resnet50_fpn_v2": "FasterRCNN_ResNet50_FPN_V2_Weights",
    "fasterrcnn_mobilenet_v3_large_fpn": "FasterRCNN_MobileNet_V3_Large_FPN_Weights",
}


def build_model(cfg: dict[str, Any], num_classes: int) -> torch.nn.Module:
    """A torchvision detector for ``num_classes`` (background included)."""
    import torchvision.models.detection as det
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

    m = cfg.get("model", {})
    name = m.get("name", "maskrcnn_resnet50_fpn")
    if name not in MODELS:
        raise SystemExit(f"model {name!r}: choose one of {sorted(MODELS)}")
    kw = {k: m[k] for k in ("min_size", "max_size") if k in m}
    if m.get("weights", "none") == "default":
        # COCO weights, then new heads for our classes.
        model = getattr(det, name)(weights="DEFAULT", **kw)
        box = model.roi_heads.box_predictor
        model.roi_heads.box_predictor = FastRCNNPredictor(box.cls_score.in_features, num_classes)
        if getattr(model.roi_heads, "mask_predictor", None) is not None:
            mp = model.roi_heads.mask_predictor
            model.roi_heads.mask_predictor = MaskRCNNPredictor(
                mp.conv5_mask.in_channels, 256, num_classes
            )
        return model  # type: ignore[no-any-return]
    return getattr(det, name)(  # type: ignore[no-any-return]
        weights=None, weights_backbone=None, num_classes=num_classes, **kw
    )


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    ds: ango_torch.AngoDataset,
    cfg: dict[str, Any],
    device: torch.device,
    gt: dict[str, Any],
) -> dict[str, Any]:
    """COCO mAP of ``model`` on ``ds``; every rank predicts its own shard once.

    Each batch's outputs become COCO results at once (masks as compressed RLE, a few
    KB per instance): neither the ranks nor the gather hold full-image float masks
    (Mask R-CNN's ``[N, 1, H, W]`` float32 is ~300 MB for 100 detections at 1024×768).
    """
    model.eval()
    local: dict[int, list[dict[str, Any]]] = {}
    for images, targets in c.progress(c.loader(ds, cfg, train=False), "eval"):
        images, _ = c.to_device(images, [], device)
        with c.autocast(device, cfg.get("schedule", {}).get("amp", False)):
            outputs = model(images)
        for t, out in zip(targets, outputs, strict=True):
            image_id = int(t["image_id"])
            local[image_id] = predictions_to_coco([(image_id, out)])
    gathered = gather_predictions(local)
    if not is_main_process():
        return {}
    if len(gathered) != len(ds):
        raise RuntimeError(f"evaluated {len(gathered)} images, expected {len(ds)}")
    results = [r for image_id in sorted(gathered) for r in gathered[image_id]]
    iou_types = ("bbox", "segm") if c.base(ds).task == "instance" else ("bbox",)
    metrics = evaluate_coco(gt, results, iou_types=iou_types)
    c.log(metrics.table())
    return {"images": len(gathered), **metrics.to_dict()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = c.base_parser(__doc__.splitlines()[0])
    p.add_argument("--resume", action="store_true", help="continue from output/checkpoint.pt")
    p.add_argument("--max-steps", type=int, default=None, help="stop each epoch after N steps")
    args = p.parse_args(argv)
    cfg = c.apply_cli(c.load_config(args.config, args.set), args)
    s = cfg.get("schedule", {})
    device = c.init_distributed(s.get("device", "auto"))
    torch.manual_seed(int(s.get("seed", 0)) + c.get_rank())
    train_ds = c.build_dataset(cfg, train=True, transforms=c.detection_transforms(cfg, train=True))
    val_ds = c.build_dataset(cfg, train=False, transforms=c.detection_transforms(cfg, train=False))
    # Ground truth from annotations alone: the models resize internally and answer in
    # the input's coordinates, so validation images are not resized beforehand.
    gt = ango_torch.to_coco(val_ds)
    # data.val_fraction > 0: hold out whole groups (assets, Ango batches, ...) with
    # ango_torch.split. The bundled sample has 3 images, so its configs keep 0 and
    # evaluate on the training images (a smoke test of the pipeline, not a benchmark).
    train_ds, val_ds = c.split_datasets(cfg, train_ds, val_ds)
    if isinstance(val_ds, torch.utils.data.Subset):
        keep = set(val_ds.indices)
        gt = {
            **gt,
            "images": [im for im in gt["images"] if im["id"] in keep],
            "annotations": [a for a in gt["annotations"] if a["image_id"] in keep],
        }
    out = Path(cfg.get("output", {}).get("dir", "runs/detection"))
    model = build_model(cfg, len(c.base(train_ds).classes)).to(device)
    # Batches of one aspect-ratio group (GroupedBatchSampler; under torchrun a disjoint,
    # equal-length share per rank). On the sample all 3 images are landscape or square:
    # one group, so this only shuffles; on real exports it cuts padding in each batch.
    ddp, train_loader, (opt, sched), run, epochs = c.prepare_training(
        cfg, args, train_ds, model, out, grouped=True
    )
    for epoch in run.epochs(train_loader, epochs):
        ddp.train()
        meter = c.Meter()
        for step, (images, targets) in enumerate(c.progress(train_loader, f"epoch {epoch}")):
            if args.max_steps is not None and step >= args.max_steps:
                break
            images, targets = c.to_device(images, targets, device)
            with c.autocast(device, s.get("amp", False)):
                losses = ddp(images, targets)
            loss = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            meter.update(
                {k: float(v.detach()) for k, v in losses.items()} | {"loss": float(loss.detach())},
                len(images),
            )
        record = {"epoch": epoch, **meter.means(), "images_per_s": meter.rate()}
        record["eval"] = evaluate(model, val_ds, cfg, device, gt)
        c.log(
            f"epoch {epoch}: loss {record.get('loss', float('nan')):.4f}, "
            f"{record['images_per_s']:.1f} img/s"
        )
        run.end_epoch(epoch, record)
    return run.finish()


if __name__ == "__main__":
    main()
