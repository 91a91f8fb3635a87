"""Benchmark: instance masks and brush decoding on a 1080p canvas.

Instance masks for 20 polygons of 64 vertices on a 1920x1080 canvas, assembled into a
``[20, H, W]`` stack, by

* ``ango_torch``: :func:`rasterize_crop` per instance (work ~ the instance's box) then
  :func:`masks_from_crops`, plus ``torch.from_numpy`` (free) to get a tensor;
* ``torchvision-v2-wrapper``: what ``torchvision.datasets.wrap_dataset_for_transforms_v2``
  does for COCO polygons, per instance ``torch.from_numpy(decode(merge(frPyObjects)))``
  then ``torch.stack`` (its ``segmentation_to_mask``, copied here because it is nested);
* ``pycocotools-numpy``: the same pycocotools calls kept in numpy, ``np.stack`` at the end
  (the ``convert_coco_poly_to_mask`` pattern without its torch conversions).

Also times :func:`brush_to_class_map`, :func:`distinct_colors` and
:func:`connected_components` on a synthetic 1080p brush PNG (5 classes, 40 antialiased
round strokes).

Run: ``python benchmarks/raster.py`` (``--smoke`` for a ~2 s check, ``--repeat N``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ango_torch.targets import brush as br
from ango_torch.targets import geometry as g

SIZE = (1080, 1920)  # (height, width)
PALETTE = ["#f44336", "#2196f3", "#4caf50", "#ffeb3b", "#9c27b0"]


def make_polygons(n: int, vertices: int, seed: int = 0) -> list[npt.NDArray[np.float64]]:
    """Star-shaped polygons, radius 40-250 px (boxes ~80-500 px), fully on the canvas."""
    rng = np.random.default_rng(seed)
    h, w = SIZE
    polys = []
    for _ in range(n):
        cx, cy = rng.uniform([260, 260], [w - 260, h - 260])
        t = np.sort(rng.uniform(0, 2 * np.pi, vertices))
        r = rng.uniform(40, 250) * rng.uniform(0.6, 1.0, vertices)
        polys.append(np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1))
    return polys


def make_brush(strokes: int, seed: int = 0) -> npt.NDArray[np.uint8]:
    """A 1080p RGBA brush: opaque discs in class colours with antialiased rims."""
    rng = np.random.default_rng(seed)
    h, w = SIZE
    colours = np.array([br.parse_hex_color(c) for c in PALETTE], dtype=np.int64)
    img = np.zeros((h, w, 4), dtype=np.uint8)
    for k in range(strokes):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(10, 150)
        y0, y1 = int(max(cy - r - 2, 0)), int(min(cy + r + 2, h))
        x0, x1 = int(max(cx - r - 2, 0)), int(min(cx + r + 2, w))
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d = np.hypot(xx + 0.5 - cx, yy + 0.5 - cy)
        patch = img[y0:y1, x0:x1]
        colour = colours[k % len(colours)]
        patch[d < r] = (*colour, 255)
        rim = (d >= r) & (d < r + 1.5)
        patch[rim] = (*np.clip(colour + rng.integers(-20, 21, 3), 0, 255), 128)
    return img


def ours(polys: Sequence[npt.NDArray[np.float64]]) -> Any:
    import torch

    pairs = [g.rasterize_crop([p], canvas_size=SIZE) for p in polys]
    masks = g.masks_from_crops([c for c, _ in pairs], [o for _, o in pairs], canvas_size=SIZE)
    return torch.from_numpy(masks)


def torchvision_wrapper(polys: Sequence[npt.NDArray[np.float64]]) -> Any:
    import torch
    from pycocotools import mask

    def segmentation_to_mask(segmentation: list[list[float]]) -> Any:
        # torchvision/tv_tensors/_dataset_wrapper.py, polygon branch
        return torch.from_numpy(mask.decode(mask.merge(mask.frPyObjects(segmentation, *SIZE))))

    return torch.stack([segmentation_to_mask([p.ravel().tolist()]) for p in polys])


def pycocotools_numpy(polys: Sequence[npt.NDArray[np.float64]]) -> Any:
    from pycocotools import mask

    out = []
    for p in polys:
        rles = mask.frPyObjects([p.ravel().tolist()], *SIZE)
        out.append(mask.decode(rles).any(axis=2))
    return np.stack(out)


def timeit(fn: Callable[[], Any], repeat: int) -> float:
    """Best-of-``repeat`` seconds (robust against a noisy, shared machine)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run (~2 s) for the tests")
    parser.add_argument("--repeat", type=int, default=20, help="timed repeats (best of)")
    args = parser.parse_args(argv)
    repeat = 2 if args.smoke else args.repeat
    n_polys = 4 if args.smoke else 20

    polys = make_polygons(n_polys, 64)
    a, b = ours(polys).numpy(), torchvision_wrapper(polys).numpy().astype(bool)
    iou = [float((x & y).sum() / (x | y).sum()) for x, y in zip(a, b, strict=True)]
    print(f"instance masks: {n_polys} polygons x 64 vertices on {SIZE[1]}x{SIZE[0]}")
    print(f"  IoU vs pycocotools: min {min(iou):.4f}, median {np.median(iou):.4f}")
    t_ours = timeit(lambda: ours(polys), repeat)
    print(f"  ango_torch (crops + masks_from_crops): {t_ours * 1e3:8.2f} ms")
    for name, fn in [
        ("torchvision-v2-wrapper (pycocotools)", torchvision_wrapper),
        ("pycocotools-numpy (frPyObjects+decode)", pycocotools_numpy),
    ]:
        t = timeit(lambda fn=fn: fn(polys), repeat)  # type: ignore[misc]
        print(f"  {name}: {t * 1e3:8.2f} ms  -> ango_torch is {t / t_ours:5.1f}x faster")
    t_crops = timeit(lambda: [g.rasterize_crop([p], canvas_size=SIZE) for p in polys], repeat)
    print(f"  ango_torch crops only (no [N, H, W] stack): {t_crops * 1e3:8.2f} ms")

    brush = make_brush(6 if args.smoke else 40)
    colours = [br.parse_hex_color(c) for c in PALETTE]
    painted = float((brush[..., 3] > 0).mean())
    class_map, inexact = br.brush_to_class_map(brush, colors=colours)
    print(f"brush {SIZE[1]}x{SIZE[0]}: {painted:.1%} painted, {inexact} inexact pixels")
    t = timeit(lambda: br.brush_to_class_map(brush, colors=colours), repeat)
    print(f"  brush_to_class_map: {t * 1e3:8.2f} ms")
    t = timeit(lambda: br.distinct_colors(brush), repeat)
    print(f"  distinct_colors:    {t * 1e3:8.2f} ms")
    k = int(np.bincount(np.maximum(class_map, 0).ravel(), minlength=2)[1:].argmax()) + 1
    mask = class_map == k
    _, n = br.connected_components(mask)
    t = timeit(lambda: br.connected_components(mask), repeat)
    print(f"  connected_components (class {k}, {n} components): {t * 1e3:8.2f} ms")
    noise = np.random.default_rng(1).random(SIZE) < 0.3
    t = timeit(lambda: br.connected_components(noise), max(1, repeat // 4))
    print(f"  connected_components (30% random noise, worst case): {t * 1e3:8.2f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
