"""Object rows of the index → target arrays: boxes, labels, masks, semantic maps.

numpy only (torch enters in :mod:`ango_torch.datasets.dataset`).  Every instance is rasterized in
its own bounding-box crop (:func:`ango_torch.targets.geometry.rasterize_crop`); only the final
``[N, H, W]`` stack or ``[H, W]`` map is full-canvas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from ..errors import LimitError
from ..export.index import ExportIndex
from ..limits import ENV, Limits
from ..records import ToolKind
from .brush import components_to_crops, connected_components
from .geometry import (
    BoolArray,
    Offset,
    masks_from_crops,
    paste_crop,
    rasterize_crop,
    segmentation_to_crop,
)

__all__ = [
    "IGNORE",
    "Instances",
    "brush_instances",
    "check_canvas",
    "check_mask_bytes",
    "instances",
    "object_crop",
    "semantic_map",
]

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


def limit_hint(name: str) -> str:
    """How to raise the limit ``name`` of a dataset (its limits are read when it is made)."""
    return (
        f"if the export is trusted, raise it with ango_torch.limits.override({name}=...) "
        f"around the dataset's creation, or {ENV}='{name}=...'"
    )


def check_canvas(
    canvas_size: tuple[int, int], limits: Limits, *, label: str, what: str = "canvas"
) -> tuple[int, int]:
    """Refuse a canvas of more than ``limits.max_canvas_pixels`` before anything is allocated.

    Args:
        canvas_size: ``(height, width)``.
        limits: the limits in force (e.g. the dataset's).
        label: where the size comes from (asset, field), for the message.
        what: what the size is, e.g. "declared size" or "image".

    Returns:
        ``(height, width)`` as ints.

    Raises:
        LimitError: ``height × width > limits.max_canvas_pixels``.
    """
    h, w = (int(v) for v in canvas_size)
    if h * w > limits.max_canvas_pixels:
        raise LimitError(
            f"{label}: {what} {w}×{h} ({h * w:,} pixels) is over max_canvas_pixels="
            f"{limits.max_canvas_pixels:,} (Pillow's decompression-bomb limit by default); "
            f"refusing to allocate masks for it; {limit_hint('max_canvas_pixels')}"
        )
    return h, w


def check_mask_bytes(n: int, canvas_size: tuple[int, int], limits: Limits, *, label: str) -> None:
    """Refuse a ``uint8 [n, H, W]`` mask stack over ``limits.max_mask_bytes``.

    Raises:
        LimitError: ``n × H × W > limits.max_mask_bytes``.
    """
    h, w = canvas_size
    if n * h * w > limits.max_mask_bytes:
        raise LimitError(
            f"{label}: {n} instance masks of {w}×{h} take {n * h * w:,} bytes, over "
            f"max_mask_bytes={limits.max_mask_bytes:,}; {limit_hint('max_mask_bytes')}"
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


def brush_instances(
    class_map: npt.NDArray[np.int64],
    *,
    connectivity: int = 8,
    max_components: int | None = None,
    label: str = "brush mask",
) -> Instances:
    """One instance per connected component of each class of a brush label map.

    Boxes are the components' tight pixel boxes (XYXY, ``x2`` = last column + 1).

    Args:
        class_map: ``int64 [H, W]`` brush label map (0 background, :data:`IGNORE` left
            out).
        connectivity: 8 or 4.
        max_components: refuse more components than this, all classes together
            (:attr:`~ango_torch.limits.Limits.max_brush_components`); ``None``: no limit.
        label: where the map comes from (asset, field ``brushDataUrl``), for the message.

    Raises:
        LimitError: more than ``max_components`` components, checked per class before
            any crop is cut.
    """
    rows: list[int] = []
    labels: list[int] = []
    crops: list[BoolArray] = []
    offsets: list[Offset] = []
    boxes: list[tuple[int, int, int, int]] = []
    total = 0
    for value in np.unique(class_map).tolist():
        if value <= 0 or value == IGNORE:
            continue
        comp, n = connected_components(class_map == value, connectivity=connectivity)
        total += n
        if max_components is not None and total > max_components:
            raise LimitError(
                f"{label}: {total:,} connected brush components (label {value}: {n:,}; "
                f"a noisy mask?), more than max_brush_components={max_components:,}; "
                f"{limit_hint('max_brush_components')}"
            )
        c_crops, c_offsets = components_to_crops(comp, count=n)
        del comp
        for crop, (y0, x0) in zip(c_crops, c_offsets, strict=True):
            crops.append(crop)
            offsets.append((y0, x0))
            boxes.append((x0, y0, x0 + crop.shape[1], y0 + crop.shape[0]))
            rows.append(-1)
            labels.append(value)
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
    crops: list[tuple[BoolArray, Offset]] | None = None,
) -> npt.NDArray[np.int64]:
    """``int64 [H, W]``: 0 background, ``k`` for class ``k``, :data:`IGNORE` ignored.

    Brush pixels are painted first, then the vector shapes in the export's order.
    ``overlap="last"``: a later shape paints over earlier ones (as the annotator saw
    them stacked).  ``overlap="ignore"``: pixels claimed by two different classes
    become :data:`IGNORE`.  ``stats["empty"]`` (when given) is increased by the number
    of shapes that cover no pixel (slivers, self-cancelling outlines).  ``crops`` (one
    ``(crop, (y0, x0))`` per row, e.g. a video's interpolated shapes) replace the rows'
    own shapes.
    """
    h, w = canvas_size
    out = np.zeros((h, w), np.int64) if brush is None else brush.astype(np.int64, copy=True)
    for n, (row, label) in enumerate(zip(rows.tolist(), labels.tolist(), strict=True)):
        crop, (y0, x0) = object_crop(index, row, canvas_size) if crops is None else crops[n]
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
