"""``ango-torch evaluate``: COCO mAP of a results JSON, or mIoU of label PNGs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import AngoTorchError
from ..evaluation.coco import to_coco
from ._common import _dataset, _report
from .convert import output_paths

__all__ = ["ImageIds", "run_evaluate", "semantic_metrics"]


class ImageIds:
    """assetId (and page) → sample index, refusing what names no single sample.

    A multi-page asset gives one sample per annotated page, so its assetId alone does not
    say which page a prediction belongs to: such results carry ``"page"`` (0-based, as
    in the export's ``dataset``).  An assetId shared by two assets is refused too.
    """

    def __init__(self, ds: Any) -> None:
        self.samples: dict[tuple[str, int], int] = {}
        self.assets: dict[str, set[int]] = {}
        self.pages: dict[str, list[int]] = {}
        for i in range(len(ds)):
            a, page, _ = ds.sample_location(i)
            asset_id = ds.asset_id(i)
            self.samples[(asset_id, page)] = i
            self.assets.setdefault(asset_id, set()).add(a)
            if page >= 0:
                self.pages.setdefault(asset_id, []).append(page)

    def resolve(self, asset_id: str, page: Any, where: str) -> int:
        """The sample index of ``asset_id`` (and ``page``, for a multi-page asset)."""
        if asset_id not in self.assets:
            raise AngoTorchError(
                f"predictions {where}: image_id {asset_id!r} is no assetId of the export"
            )
        if len(self.assets[asset_id]) > 1:
            raise AngoTorchError(
                f"predictions {where}: image_id {asset_id!r} is the assetId of "
                f"{len(self.assets[asset_id])} assets (#{sorted(self.assets[asset_id])}): "
                "ambiguous, use the sample index as image_id"
            )
        if asset_id in self.pages:
            pages = self.pages[asset_id]
            if isinstance(page, bool) or not isinstance(page, int):
                raise AngoTorchError(
                    f"predictions {where}: image_id {asset_id!r} is a multi-page asset "
                    f"(annotated pages {pages}): ambiguous without an integer 'page' "
                    f"(got {page!r}), or use the sample index as image_id"
                )
            if (asset_id, page) not in self.samples:
                raise AngoTorchError(
                    f"predictions {where}: page {page} of {asset_id!r} is no sample "
                    f"(annotated pages {pages})"
                )
            return self.samples[(asset_id, page)]
        if page is not None:
            raise AngoTorchError(
                f"predictions {where}: image_id {asset_id!r} has no pages, got page {page!r}"
            )
        return self.samples[(asset_id, -1)]


def _results(path: str, ds: Any) -> list[dict[str, Any]]:
    try:
        results = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AngoTorchError(f"predictions {path!r}: cannot read a JSON list ({exc})") from exc
    if isinstance(results, dict) and "annotations" in results:
        results = results["annotations"]  # a COCO file holding its results as annotations
    if not isinstance(results, list):
        raise AngoTorchError(f"predictions {path!r}: expected a JSON list of results")
    ids = ImageIds(ds)
    for k, r in enumerate(results):
        if not isinstance(r, dict) or "image_id" not in r:
            raise AngoTorchError(
                f"predictions {path!r}, result #{k}: expected an object with image_id"
            )
        if isinstance(r["image_id"], str):  # assetIds are accepted too
            r["image_id"] = ids.resolve(r["image_id"], r.get("page"), f"{path!r}, result #{k}")
    return results


def _semantic(args: argparse.Namespace) -> dict[str, Any]:
    ds = _dataset(args, task="semantic", brush=False)
    metrics = semantic_metrics(ds, args.predictions)
    print(metrics.table())
    _report(ds)
    return {"task": "semantic", "images": len(ds), **metrics.to_dict()}


def semantic_metrics(ds: Any, predictions: str) -> Any:
    """``evaluate --task semantic`` on a built dataset (e.g. one with a class mapping).

    Args:
        ds: A semantic ``AngoDataset``; its ``classes`` are the label values.
        predictions: A folder of uint8 label PNGs, one per sample at the sample's full
            ``H × W``, named as ``ango-torch convert --to masks`` names them.

    Returns:
        The ``SegmentationMeter``'s metrics (``miou``, ``iou`` per class, ``table()``).
    """
    from PIL import Image

    from ..evaluation.metrics import SegmentationMeter

    meter = SegmentationMeter(len(ds.classes), class_names=ds.classes)
    folder = Path(predictions)
    paths = output_paths(ds, str(folder), ".png")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise AngoTorchError(
            f"predictions {str(folder)!r}: {len(missing)} of {len(paths)} label PNGs are "
            f"missing, e.g. {missing[0]}"
        )
    for i, path in enumerate(paths):
        canvas = ds._check_canvas(i, ds.get_height_and_width(i))  # before any allocation
        try:
            with Image.open(path) as im:
                # the header's size first: a prediction is decoded only at the canvas size
                if (im.height, im.width) != canvas:
                    raise AngoTorchError(
                        f"{path}: a {im.height}×{im.width} label map, expected {canvas}"
                    )
                pred = np.asarray(im)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise AngoTorchError(f"{path}: not a readable label PNG ({exc})") from exc
        if pred.shape != canvas:
            raise AngoTorchError(f"{path}: a {pred.shape} label map, expected {canvas}")
        target = ds.load_target(i, canvas)["mask"]
        meter.update(torch.from_numpy(pred.astype(np.int64)), target.as_subclass(torch.Tensor))
    return meter.compute()


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``ango-torch evaluate``; the metrics go to stdout and ``--out``."""
    from ..evaluation.evaluate import evaluate_coco

    if args.task == "semantic":
        out = _semantic(args)
    else:
        ds = _dataset(args, task=args.task, brush=args.brush_components)
        gt = to_coco(ds)
        results = _results(args.predictions, ds)
        iou_types = args.iou_types.split(",") if args.iou_types else None
        metrics = evaluate_coco(gt, results, iou_types=iou_types, backend=args.backend)
        print(metrics.table())
        _report(ds)
        out = {"task": args.task, **metrics.to_dict()}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        print(f"metrics written to {args.out}")
    return 0
