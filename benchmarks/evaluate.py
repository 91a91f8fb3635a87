"""Benchmark: COCO evaluation with pycocotools vs faster-coco-eval.

A synthetic ground truth (default 500 images of 640x480, 20 polygon instances each, 8
categories, sizes spanning small/medium/large) and predictions made from it: each
instance found with probability 0.9 as a jittered copy (random score), plus 3 false
positives per image, and 5% of images with no prediction at all.  Masks are compressed
RLE, as :func:`ango_torch.evaluation.evaluate.predictions_to_coco` writes them.

Times :func:`ango_torch.evaluation.evaluate.evaluate_coco` end to end (results preparation,
``loadRes``, ``evaluate``, ``accumulate``, summary) per backend and IoU type, checks the
backends agree to 1e-6 on every summary number and per-class AP, and prints the ratio.

Run: ``python benchmarks/evaluate.py`` (``--smoke`` for a ~2 s check, ``--images N``,
``--repeat N``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from typing import Any

import numpy as np

from ango_torch.evaluation.evaluate import BACKENDS, CocoMetrics, evaluate_coco

SIZE = (480, 640)  # (height, width)
CATEGORIES = ["car", "person", "bike", "bus", "truck", "dog", "sign", "tree"]


def _polygon(rng: np.random.Generator, cx: float, cy: float, r: float) -> list[float]:
    t = np.sort(rng.uniform(0, 2 * np.pi, 12))
    rr = r * rng.uniform(0.7, 1.0, 12)
    h, w = SIZE
    xs = np.clip(cx + rr * np.cos(t), 0, w)
    ys = np.clip(cy + rr * np.sin(t), 0, h)
    out: list[float] = np.round(np.stack([xs, ys], axis=1).ravel(), 2).tolist()
    return out


def _box(poly: list[float]) -> list[float]:
    xs, ys = poly[0::2], poly[1::2]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def make_data(images: int, per_image: int, seed: int = 0) -> tuple[dict[str, Any], list[Any]]:
    """(COCO ground truth, COCO results with bbox and compressed-RLE segmentation)."""
    from pycocotools import mask as mask_api

    rng = np.random.default_rng(seed)
    h, w = SIZE
    gt_anns: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []

    def add_result(image_id: int, cat: int, poly: list[float], score: float) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "__array__", DeprecationWarning)
            rle = mask_api.merge(mask_api.frPyObjects([poly], h, w))
        rle["counts"] = rle["counts"].decode("ascii")
        results.append(
            {
                "image_id": image_id,
                "category_id": cat,
                "bbox": _box(poly),
                "score": score,
                "segmentation": rle,
            }
        )

    for i in range(images):
        silent = rng.random() < 0.05
        for _ in range(per_image):
            cat = int(rng.integers(1, len(CATEGORIES) + 1))
            r = float(np.exp(rng.uniform(np.log(4), np.log(120))))
            cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
            poly = _polygon(rng, cx, cy, r)
            box = _box(poly)
            gt_anns.append(
                {
                    "id": len(gt_anns) + 1,
                    "image_id": i,
                    "category_id": cat,
                    "bbox": box,
                    "area": box[2] * box[3] * 0.7,
                    "iscrowd": 0,
                    "segmentation": [poly],
                }
            )
            if not silent and rng.random() < 0.9:
                j = rng.normal(0, 0.08 * r, 2)
                moved = [v + j[k % 2] for k, v in enumerate(poly)]
                moved = [min(max(v, 0.0), w if k % 2 == 0 else h) for k, v in enumerate(moved)]
                add_result(i, cat, moved, float(rng.uniform(0.3, 1.0)))
        for _ in range(0 if silent else 3):
            r = float(rng.uniform(5, 60))
            poly = _polygon(rng, rng.uniform(r, w - r), rng.uniform(r, h - r), r)
            add_result(
                i, int(rng.integers(1, len(CATEGORIES) + 1)), poly, float(rng.uniform(0, 0.6))
            )
    gt = {
        "images": [
            {"id": i, "height": h, "width": w, "file_name": f"{i}.jpg"} for i in range(images)
        ],
        "annotations": gt_anns,
        "categories": [{"id": k + 1, "name": n} for k, n in enumerate(CATEGORIES)],
    }
    return gt, results


def _numbers(m: CocoMetrics, iou_type: str) -> list[float]:
    t = m[iou_type]
    return [*t.values(), *t.per_class_ap.values()]


def _agree(a: list[float], b: list[float], tol: float) -> float:
    diff = 0.0
    for x, y in zip(a, b, strict=True):
        if math.isnan(x) != math.isnan(y):
            return math.inf
        if not math.isnan(x):
            diff = max(diff, abs(x - y))
    return diff if diff <= tol else math.inf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--per-image", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="best of N")
    args = parser.parse_args(argv)
    images, repeat = (20, 1) if args.smoke else (args.images, args.repeat)
    per_image = 5 if args.smoke else args.per_image

    gt, results = make_data(images, per_image)
    print(
        f"COCO evaluation: {images} images x {per_image} instances, "
        f"{len(results)} results, best of {repeat}"
    )
    status = 0
    for iou_type in ("bbox", "segm"):
        times: dict[str, float] = {}
        numbers: dict[str, list[float]] = {}
        for backend in BACKENDS:
            best = math.inf
            for _ in range(repeat):
                t0 = time.perf_counter()
                m = evaluate_coco(gt, results, iou_types=(iou_type,), backend=backend)
                best = min(best, time.perf_counter() - t0)
            times[backend], numbers[backend] = best, _numbers(m, iou_type)
            print(f"  {iou_type:<5} {backend:<17} {best:8.3f} s   AP {m[iou_type].ap:.6f}")
        diff = _agree(numbers["pycocotools"], numbers["faster_coco_eval"], 1e-6)
        ratio = times["pycocotools"] / times["faster_coco_eval"]
        agree = f"agree (max |diff| {diff:.1e})" if math.isfinite(diff) else "DISAGREE"
        print(f"  {iou_type:<5} pycocotools / faster_coco_eval = {ratio:.2f}x, {agree}")
        status |= not math.isfinite(diff)
    return status


if __name__ == "__main__":
    sys.exit(main())
