"""Object rows of the index → target arrays: boxes, labels, masks, semantic maps.

numpy only (torch enters in :mod:`ango_torch.dataset`).  Every instance is rasterized in
its own bounding-box crop (:func:`ango_torch.geometry.rasterize_crop`); only the final
``[N, H, W]`` stack or ``[H, W]`` map is full-canvas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from .brush import components_to_crops, connected_components
from .geometry import (
    BoolArray,
    Offset,
    masks_from_crops,
    paste_crop,
    rasterize_crop,
    segmentation_to_crop,
)
from .index import ExportIndex
from .records import ToolKind

__all__ = ["IGNORE", "Instances", "brush_instances", "instances", "object_crop", "semantic_map"]

IGNORE = 255
"""Semantic label of pixels to ignore (e.g. where classes conflict under ``overlap="ignore"``)."""

Overlap = Literal["last", "ignore"]
_EMPTY: BoolArray = np.zeros((0, 0), bool)


@dataclass(slots=True)
class Instances:
    """Instances of one sample.  ``rows`` are index object rows (``-1`` for brush)."""

    rows: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int64]
    boxes: npt.NDArray[np.float32]
    crops: list[BoolArray] = field(default_factory=list)
    offsets: list[Offset] = field(default_factory=list)
    dropped_empty: int = 0

    def __len__(self) -> int:
        return len(self.labels)

    def areas(self, *, masks: bool | None = None) -> npt.NDArray[np.float32]:
        """``float32 [N]``: one area per instance.

        ``masks=True``: mask pixel counts (every instance must have a crop);
        ``masks=False``: box areas; ``None``: mask pixels when every instance has a
        crop, else box areas (never a mix: a box-only instance has no mask area).
        """
        if masks is None:
            masks = len(self.crops) == len(self) > 0
        if masks:
            if len(self.crops) != len(self):
                raise ValueError(f"{len(self)} instances but {len(self.crops)} mask crops")
            return np.array([c.sum() for c in self.crops], np.float32).reshape(-1)
        b = self.boxes
        return np.asarray((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), np.float32).reshape(-1)

    def masks(
        self, canvas_size: tuple[int, int], *, out: npt.NDArray[np.uint8] | None = None
    ) -> npt.NDArray[np.uint8]:
        """``uint8 [N, H, W]`` (0/1), as torchvision's COCO wrapper gives.

        ``out``: a zeroed ``uint8 [N, H, W]`` array to paste into (e.g. shared memory).
        """
        if out is None:
            return masks_from_crops(self.crops, self.offsets, canvas_size=canvas_size).view(
                np.uint8
            )
        canvas = out.view(bool)
        for k, (crop, offset) in enumerate(zip(self.crops, self.offsets, strict=True)):
            paste_crop(canvas[k], crop, offset)
        return out

    @classmethod
    def concat(cls, parts: list[Instances]) -> Instances:
        """Instances of several sources, in order."""
        return cls(
            np.concatenate([p.rows for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.boxes for p in parts]).reshape(-1, 4),
            [c for p in parts for c in p.crops],
            [o for p in parts for o in p.offsets],
            sum(p.dropped_empty for p in parts),
        )


def object_crop(
    index: ExportIndex, row: int, canvas_size: tuple[int, int]
) -> tuple[BoolArray, Offset]:
    """Mask crop of one area object (polygon, rotated box, segmentation with holes)."""
    kind = int(index.obj_kind[row])
    rings = index.rings(row)
    if kind == ToolKind.SEGMENTATION:
        zones: dict[int, tuple[list[npt.NDArray[np.float32]], list[npt.NDArray[np.float32]]]] = {}
        for pts, zone, hole in rings:
            regions, holes = zones.setdefault(zone, ([], []))
            (holes if hole else regions).append(pts)
        return segmentation_to_crop(
            [(r[0] if r else np.zeros((0, 2), np.float32), h) for r, h in zones.values()],
            canvas_size=canvas_size,
        )
    if kind in (ToolKind.POLYGON, ToolKind.ROTATED_BOUNDING_BOX):
        return rasterize_crop([rings[0][0]], canvas_size=canvas_size)
    return _EMPTY, (0, 0)


def _clip(boxes: npt.NDArray[np.float32], canvas_size: tuple[int, int]) -> npt.NDArray[np.float32]:
    h, w = canvas_size
    out: npt.NDArray[np.float32] = boxes.copy()
    np.clip(out[:, 0::2], 0, w, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, h, out=out[:, 1::2])
    return out


def instances(
    index: ExportIndex,
    rows: npt.NDArray[np.int64],
    labels: npt.NDArray[np.int64],
    canvas_size: tuple[int, int],
    *,
    masks: bool,
) -> Instances:
    """Instances of the given object rows.

    Boxes are the tight XYXY box of each geometry, clipped to the canvas.  An instance
    whose box (detection) or mask (``masks=True``) is empty after clipping is dropped
    and counted in :attr:`Instances.dropped_empty`, never passed on as a degenerate box.
    """
    boxes = _clip(index.obj_bbox[rows].astype(np.float32).reshape(-1, 4), canvas_size)
    if not masks:
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return Instances(rows[keep], labels[keep], boxes[keep], dropped_empty=int((~keep).sum()))
    crops: list[BoolArray] = []
    offsets: list[Offset] = []
    keep = np.zeros(len(rows), bool)
    for k, row in enumerate(rows.tolist()):
        crop, offset = object_crop(index, row, canvas_size)
        if crop.any():
            keep[k] = True
            crops.append(crop)
            offsets.append(offset)
    return Instances(
        rows[keep], labels[keep], boxes[keep], crops, offsets, dropped_empty=int((~keep).sum())
    )


def brush_instances(class_map: npt.NDArray[np.int64], *, connectivity: int = 8) -> Instances:
    """One instance per connected component of each class of a brush label map.

    Boxes are the components' tight pixel boxes (XYXY, ``x2`` = last column + 1).
    """
    rows: list[int] = []
    labels: list[int] = []
    crops: list[BoolArray] = []
    offsets: list[Offset] = []
    boxes: list[tuple[int, int, int, int]] = []
    for label in np.unique(class_map).tolist():
        if label <= 0 or label == IGNORE:
            continue
        comp, n = connected_components(class_map == label, connectivity=connectivity)
        c_crops, c_offsets = components_to_crops(comp, count=n)
        for crop, (y0, x0) in zip(c_crops, c_offsets, strict=True):
            crops.append(crop)
            offsets.append((y0, x0))
            boxes.append((x0, y0, x0 + crop.shape[1], y0 + crop.shape[0]))
            rows.append(-1)
            labels.append(label)
    return Instances(
        np.array(rows, np.int64),
        np.array(labels, np.int64),
        np.array(boxes, np.float32).reshape(-1, 4),
        crops,
        offsets,
    )


def semantic_map(
    index: ExportIndex,
    rows: npt.NDArray[np.int64],
    labels: npt.NDArray[np.int64],
    canvas_size: tuple[int, int],
    *,
    brush: npt.NDArray[np.int64] | None = None,
    overlap: Overlap = "last",
    stats: dict[str, int] | None = None,
) -> npt.NDArray[np.int64]:
    """``int64 [H, W]``: 0 background, ``k`` for class ``k``, :data:`IGNORE` ignored.

    Brush pixels are painted first, then the vector shapes in the export's order.
    ``overlap="last"``: a later shape paints over earlier ones (as the annotator saw
    them stacked).  ``overlap="ignore"``: pixels claimed by two different classes
    become :data:`IGNORE`.  ``stats["empty"]`` (when given) is increased by the number
    of shapes that cover no pixel (slivers, self-cancelling outlines).
    """
    h, w = canvas_size
    out = np.zeros((h, w), np.int64) if brush is None else brush.astype(np.int64, copy=True)
    for row, label in zip(rows.tolist(), labels.tolist(), strict=True):
        crop, (y0, x0) = object_crop(index, row, canvas_size)
        if not crop.any():
            if stats is not None:
                stats["empty"] = stats.get("empty", 0) + 1
            continue
        region = out[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]]
        if overlap == "last":
            region[crop] = label
        else:
            conflict = crop & (region != 0) & (region != label)
            region[crop & (region == 0)] = label
            region[conflict] = IGNORE
    return out
