"""COCO ground truth from a dataset, built from annotations alone (no image decode).

Category ids equal the dataset's labels.  Segmentations are polygons (one per zone)
where that is exact, and uncompressed RLE for segmentations with holes and for brush
components (a polygon cannot express a hole), encoded from each instance's crop without
a full-canvas mask.  Canvases over ``max_canvas_pixels`` and brush PNGs with more than
``max_brush_components`` components are refused (:mod:`ango_torch.limits`).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..errors import where
from ..records import ToolKind
from ..targets.arrays import brush_instances, object_crop
from ..targets.geometry import Offset, clip_polygon

if TYPE_CHECKING:
    from ..datasets.dataset import AngoDataset

__all__ = [
    "clip_box",
    "clip_polygons",
    "crop_to_rle",
    "mask_to_rle",
    "rle_to_mask",
    "to_coco",
    "write_coco",
]


def mask_to_rle(mask: npt.NDArray[np.bool_]) -> dict[str, Any]:
    """``bool [H, W]`` → COCO uncompressed RLE ``{"size": [H, W], "counts": [...]}``.

    Runs are counted in column-major order, starting with a (possibly empty) run of 0s,
    exactly as ``pycocotools.mask.encode`` does before compression.
    """
    h, w = mask.shape
    flat = np.asarray(mask, bool).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"size": [h, w], "counts": counts}


def crop_to_rle(
    crop: npt.NDArray[np.bool_], offset: Offset, canvas_size: tuple[int, int]
) -> dict[str, Any]:
    """:func:`mask_to_rle` of ``crop`` placed at ``offset = (y0, x0)`` on an empty
    ``canvas_size = (H, W)`` canvas, without allocating the canvas: time and memory
    grow with the crop, not with ``H × W``.

    Raises:
        ValueError: the crop does not lie inside the canvas.
    """
    h, w = (int(v) for v in canvas_size)
    c = np.asarray(crop, bool)
    y0, x0 = (int(v) for v in offset)
    ch, cw = c.shape if c.ndim == 2 else (-1, -1)
    if ch < 0 or not (0 <= y0 <= h - ch and 0 <= x0 <= w - cw):
        raise ValueError(f"crop of shape {c.shape} at (y0, x0)={offset} does not fit {(h, w)}")
    # Pad each crop column with a background pixel above and below, so every run starts
    # and ends inside its column; value changes in the padded crop's column-major order
    # are then changes in the canvas's, at canvas index (x0 + col) * H + y0 - 1 + row.
    padded = np.zeros((cw, ch + 2), bool)
    padded[:, 1:-1] = c.T
    flat = padded.reshape(-1)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    col, row = np.divmod(change, ch + 2)
    pos = (x0 + col).astype(np.int64) * h + (y0 - 1 + row)
    # A run ending at a column's last row and one starting at the next column's first
    # row are one run on the canvas: the end and the start meet at one index; drop both.
    keep = np.ones(pos.size, bool)
    same = np.flatnonzero(pos[1:] == pos[:-1])
    keep[same] = keep[same + 1] = False
    bounds = np.concatenate([[0], pos[keep], [h * w]])
    return {"size": [h, w], "counts": np.diff(bounds).tolist()}


def rle_to_mask(rle: dict[str, Any]) -> npt.NDArray[np.bool_]:
    """Inverse of :func:`mask_to_rle` (uncompressed counts only)."""
    h, w = rle["size"]
    values = np.arange(len(rle["counts"])) % 2 == 1
    flat = np.repeat(values, rle["counts"])
    out: npt.NDArray[np.bool_] = flat.reshape((w, h)).T.copy()
    return out


def _polygon(points: npt.NDArray[np.floating[Any]]) -> list[float]:
    return [round(float(v), 3) for v in points.reshape(-1)]


def clip_box(canvas: tuple[int, int]) -> tuple[float, float, float, float]:
    """The rectangle COCO polygons of a ``(H, W)`` canvas are clipped to: the canvas
    widened by its own size on each side, ``(-W, -H, 2W, 2H)``.

    pycocotools rasterizes every polygon edge point by point, so one vertex at 1e8 costs
    it gigabytes (or a crash); clipped this far out, polygons that merely overhang the
    image (annotators draw past its edges) are written exactly as before.
    """
    h, w = (float(v) for v in canvas)
    return (-w, -h, 2 * w, 2 * h)


def clip_polygons(polygons: Any, canvas: tuple[int, int]) -> Any:
    """COCO polygons (``[[x0, y0, x1, y1, ...], ...]``) with those reaching beyond
    :func:`clip_box` clipped to it; anything else (RLE, malformed input) is returned as is.
    """
    if not isinstance(polygons, list):
        return polygons
    box = clip_box(canvas)
    out: list[Any] = []
    for poly in polygons:
        try:
            pts = np.asarray(poly, np.float64).reshape(-1, 2)
        except (TypeError, ValueError):
            return polygons  # not numbers in pairs: left for the evaluator to refuse
        if not np.isfinite(pts).all():
            return polygons
        x, y = pts[:, 0], pts[:, 1]
        if len(pts) and (
            x.min() < box[0] or x.max() > box[2] or y.min() < box[1] or y.max() > box[3]
        ):
            pts = clip_polygon(pts, box)
            if len(pts) < 3:
                continue  # nothing of it near the image
            poly = _polygon(pts)
        out.append(poly)
    return out


def _segmentation(ds: AngoDataset, row: int, canvas: tuple[int, int]) -> tuple[Any, float]:
    """(COCO segmentation, mask area in pixels) of one object row."""
    idx = ds.export.index
    kind = int(idx.obj_kind[row])
    crop, offset = object_crop(idx, row, canvas)
    area = float(crop.sum())
    rings = idx.rings(row)
    box = clip_box(canvas)  # far-out vertices would cost pycocotools gigabytes
    if kind == ToolKind.BOUNDING_BOX:
        x1, y1, x2, y2 = (float(v) for v in idx.obj_bbox[row])
        area_ = max(x2 - x1, 0) * max(y2 - y1, 0)
        x1, x2 = (min(max(v, box[0]), box[2]) for v in (x1, x2))
        y1, y2 = (min(max(v, box[1]), box[3]) for v in (y1, y2))
        return [[x1, y1, x2, y1, x2, y2, x1, y2]], area_
    if any(hole for _, _, hole in rings):
        return crop_to_rle(crop, offset, canvas), area
    polygons = [_polygon(pts) for pts, _, _ in rings if len(pts) >= 3]
    return clip_polygons(polygons, canvas), area


def to_coco(ds: AngoDataset) -> dict[str, Any]:
    """A COCO ground-truth dict of ``ds``: ``images``, ``annotations``, ``categories``.

    Image ``id`` is the sample index (``target["image_id"]``); ``file_name`` is the
    externalId (``<externalId>.pages/<p>`` for a page).  Annotation ``bbox`` is XYWH,
    clipped to the image, with the same instances the dataset's targets hold: objects
    whose mask (or, for detection, box) is empty after clipping are left out.  Sizes
    come from the export's metadata; where it lacks them, from the image header.
    """
    idx = ds.export.index
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i in range(len(ds)):
        h, w = ds.get_height_and_width(i)
        a = ds.asset_index(i)
        _, page, _ = ds.sample_location(i)
        name = idx.string(idx.asset_external_id[a]) or ""
        images.append(
            {
                "id": i,
                "file_name": name if page < 0 else f"{name}.pages/{page}",
                "height": h,
                "width": w,
                "asset_id": ds.asset_id(i),
            }
        )
        rows, labels = ds.sample_objects(i)
        canvas = ds._check_canvas(i, (h, w))
        for row, label in zip(rows.tolist(), labels.tolist(), strict=True):
            x1, y1, x2, y2 = (float(v) for v in idx.obj_bbox[row])
            x1, x2 = min(max(x1, 0.0), w), min(max(x2, 0.0), w)
            y1, y2 = min(max(y1, 0.0), h), min(max(y2, 0.0), h)
            if x2 <= x1 or y2 <= y1:
                continue
            segm, area = _segmentation(ds, row, canvas)
            # The same instances as the targets: detection keeps every object with a
            # box inside the image (even a sliver whose polygon covers no pixel
            # centre), instance and semantic only those with mask pixels.
            if area <= 0 and ds.task != "detection":
                continue
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": label,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": area if ds.task != "detection" else (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                    "segmentation": segm,
                }
            )
        if ds.brush_instances is not None and ds.task != "semantic":
            brush = ds.brush_map(i, canvas)
            if brush is not None:
                inst = brush_instances(
                    brush,
                    max_components=ds._limits.max_brush_components,
                    label=where(asset=name, index=a, field="brushDataUrl"),
                )
                for k in range(len(inst)):
                    crop = inst.crops[k]
                    bx1, by1, bx2, by2 = (float(v) for v in inst.boxes[k])
                    annotations.append(
                        {
                            "id": len(annotations) + 1,
                            "image_id": i,
                            "category_id": int(inst.labels[k]),
                            "bbox": [bx1, by1, bx2 - bx1, by2 - by1],
                            # as the targets: box area in detection, else mask pixels
                            "area": float(crop.sum())
                            if ds.task != "detection"
                            else (bx2 - bx1) * (by2 - by1),
                            "iscrowd": 0,
                            "segmentation": crop_to_rle(crop, inst.offsets[k], canvas),
                        }
                    )
    categories = [
        {"id": k, "name": title, "supercategory": "object"}
        for k, title in enumerate(ds.classes)
        if k
    ]
    return {
        "info": {"description": f"ango_torch export of {ds.export.source}", "task": ds.task},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def write_coco(ds: AngoDataset, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Write :func:`to_coco` of ``ds`` as JSON to ``path``; return the dict."""
    coco = to_coco(ds)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(coco, f)
    return coco
