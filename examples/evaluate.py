"""Evaluate a checkpoint of train_detection.py or train_segmentation.py on an export.

    python examples/evaluate.py --config configs/sample_maskrcnn.toml \
        --checkpoint runs/sample_maskrcnn/checkpoint.pt --out runs/sample_maskrcnn/eval.json

COCO bbox/segm mAP (detection and instance tasks) or mIoU (semantic), printed as a
table and written as JSON.  Works under torchrun: each image is evaluated exactly once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c
import train_detection
import train_segmentation

import ango_torch


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = c.base_parser(__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt written by training")
    p.add_argument("--out", default=None, help="metrics JSON (default: next to the checkpoint)")
    args = p.parse_args(argv)
    cfg = c.apply_cli(c.load_config(args.config, args.set), args)
    device = c.init_distributed(cfg.get("schedule", {}).get("device", "auto"))
    state = c.load_checkpoint(Path(args.checkpoint))
    semantic = cfg["data"].get("task") == "semantic"
    if semantic:
        ds = c.build_dataset(
            cfg, train=False, transforms=c.segmentation_transforms(cfg, train=False)
        )
        model = train_segmentation.build_model(cfg, len(ds.classes))
    else:
        ds = c.build_dataset(cfg, train=False, transforms=c.detection_transforms(cfg, train=False))
        model = train_detection.build_model(cfg, len(ds.classes))
    if state.get("classes") and state["classes"] != ds.classes:
        raise SystemExit(f"the checkpoint's classes {state['classes']} differ from {ds.classes}")
    cfg.setdefault("model", {})["weights"] = "none"
    model.load_state_dict(state["model"])
    model.to(device)
    if semantic:
        metrics = train_segmentation.evaluate(model, ds, cfg, device)
    else:
        metrics = train_detection.evaluate(model, ds, cfg, device, ango_torch.to_coco(ds))
    out = Path(args.out) if args.out else Path(args.checkpoint).with_name("eval.json")
    c.write_json(out, metrics)
    c.log(f"metrics written to {out}")
    if dist.is_initialized():
        dist.destroy_process_group()
    return metrics


if __name__ == "__main__":
    main()
