"""``AngoVolumeSlices``: 2D samples, one per labelled slice of each volume, for 2D models.

Wraps an :class:`~ango_torch.datasets.volume.AngoVolumeDataset` and cuts its volumes
along one voxel axis into ``AngoDataset``-style ``(image, target)`` pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torchvision import tv_tensors

from ..export.load import AngoExport
from ..records import ToolKind
from ..targets.arrays import IGNORE, object_crop, semantic_map
from ..targets.geometry import crop_to_mask
from .volume import AngoVolumeDataset

_AREA_2D = (int(ToolKind.POLYGON), int(ToolKind.ROTATED_BOUNDING_BOX), int(ToolKind.SEGMENTATION))

__all__ = ["AngoVolumeSlices"]


class AngoVolumeSlices(torch.utils.data.Dataset[tuple[Any, dict[str, Any]]]):
    """One sample per slice of each volume along ``axis`` (0 = i, 1 = j, 2 = k).

    Args:
        volumes: The volume dataset (its ``transforms`` are not applied here).
        axis: The voxel axis to cut across. A slice of ``[C, I, J, K]`` across ``k``
            is the image ``[C, J, I]``: ``x`` runs along the lower remaining axis and
            ``y`` along the higher one (so ``x, y`` of a multi-frame DICOM frame are its
            columns and rows, and ``page`` = ``k``).
        slices: ``"labelled"``: slices with a labelled voxel (every volume's label is
            read once, here); ``"all"``: every slice (every volume is read once).
        task: ``"semantic"`` (target ``"mask"`` int64 ``[H, W]``, 255 ignored) or
            ``"instance"`` (one instance per class present in the slice: the voxel
            brush has no instance identity; ``boxes`` XYXY, ``labels``, ``masks``
            uint8 ``[N, H, W]``, ``area``, ``iscrowd``).
        window: ``(low, high)``: the image becomes ``tv_tensors.Image`` uint8
            ``[3, H, W]`` (channel 0 scaled from the window, repeated), as torchvision
            models expect; default: float32 ``[C, H, W]`` intensities.
        transforms: Called as ``transforms(image, target)``.

    Across ``k`` (``axis=2``), 2D area objects (polygons, rotated boxes, segmentations)
    whose ``page`` is the slice are drawn on it as well (a multi-frame DICOM annotated
    like a video: ``page`` = frame = ``k``), over the voxel brush's slice (semantic:
    painted after it; instance: one instance each). ``classes`` is the volume dataset's
    plus the titles of such 2D objects it lacks (appended in order of appearance), and
    with ``slices="labelled"`` a slice with 2D objects counts as labelled.

    ``target`` also holds ``"image_id"`` (the index), ``"asset_id"`` and ``"slice"``
    (the slice index along ``axis``).
    """

    def __init__(
        self,
        volumes: AngoVolumeDataset,
        *,
        axis: int = 2,
        slices: Literal["labelled", "all"] = "labelled",
        task: Literal["semantic", "instance"] = "semantic",
        window: tuple[float, float] | None = None,
        transforms: Callable[..., Any] | None = None,
    ) -> None:
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1 or 2, got {axis!r}")
        if slices not in ("labelled", "all"):
            raise ValueError(f"slices must be 'labelled' or 'all', got {slices!r}")
        if task not in ("semantic", "instance"):
            raise ValueError(f"task must be 'semantic' or 'instance', got {task!r}")
        if volumes.label_format != "index":
            raise ValueError("AngoVolumeSlices needs label_format='index' volumes")
        self.volumes, self.axis, self.task = volumes, axis, task
        self.window, self.transforms = window, transforms
        self.classes = list(volumes.classes)
        idx = volumes.export.index
        self._objects: list[dict[int, list[int]]] = []  # per volume: page → object rows
        for v in range(len(volumes)):
            pages: dict[int, list[int]] = {}
            if axis == 2:
                s = volumes._samples[v][1]
                for o in range(int(idx.snap_obj_start[s]), int(idx.snap_obj_end[s])):
                    page = int(idx.obj_page[o])
                    if int(idx.obj_kind[o]) in _AREA_2D and page >= 0:
                        pages.setdefault(page, []).append(o)
                        title = idx.titles[int(idx.obj_title[o])]
                        if title not in self.classes:
                            self.classes.append(title)
            self._objects.append(pages)
        self._index: list[tuple[int, int]] = []
        for v in range(len(volumes)):
            _, labels = volumes.read(v)
            if slices == "all":
                keep = list(range(labels.shape[axis]))
            else:
                others = tuple(a for a in range(3) if a != axis)
                found = set(np.flatnonzero((labels != 0).any(axis=others)).tolist())
                found |= {p for p in self._objects[v] if p < labels.shape[axis]}
                keep = sorted(found)
            self._index += [(v, int(z)) for z in keep]

    @property
    def export(self) -> AngoExport:
        """The export the volumes come from."""
        return self.volumes.export

    def asset_index(self, n: int) -> int:
        """The export position of slice ``n``'s volume asset: all slices of a volume
        stay on one side of :func:`ango_torch.split`."""
        return self.volumes.asset_index(self._index[n][0])

    def __len__(self) -> int:
        return len(self._index)

    def _cut(self, arr: npt.NDArray[Any], z: int) -> npt.NDArray[Any]:
        """``[..., I, J, K]`` → the slice ``[..., H, W]`` (y = higher, x = lower axis)."""
        s = np.take(arr, z, axis=arr.ndim - 3 + self.axis)
        return np.swapaxes(s, -1, -2)

    def __getitem__(self, n: int) -> tuple[Any, dict[str, Any]]:
        v, z = self._index[n]
        sample = self.volumes.read(v)
        image_vol, labels = sample
        arr = image_vol.data
        if arr.ndim == 3:
            arr = arr[None]
        elif image_vol.fmt == "nifti":
            arr = np.moveaxis(arr, -1, 0)
        img = np.ascontiguousarray(self._cut(arr, z), np.float32)
        mask = np.ascontiguousarray(self._cut(labels, z))
        image: Any
        if self.window is not None:
            lo, hi = self.window
            scaled = np.clip((img[0] - lo) / max(hi - lo, 1e-12), 0, 1) * 255
            image = tv_tensors.Image(
                torch.from_numpy(np.round(scaled).astype(np.uint8)).expand(3, -1, -1).clone()
            )
        else:
            image = tv_tensors.Image(torch.from_numpy(img))
        a = self.volumes.asset_index(v)
        idx = self.volumes.export.index
        target: dict[str, Any] = {
            "image_id": n,
            "asset_id": idx.string(idx.asset_asset_id[a]) or "",
            "slice": z,
        }
        h, w = mask.shape
        rows = np.array(self._objects[v].get(z, []), np.int64)
        titles = [idx.titles[int(idx.obj_title[o])] for o in rows.tolist()]
        obj_labels = np.array([self.classes.index(t) for t in titles], np.int64)
        if self.task == "semantic":
            sem = semantic_map(
                idx, rows, obj_labels, (h, w), brush=mask, overlap=self.volumes.overlap
            )
            target["mask"] = tv_tensors.Mask(torch.from_numpy(sem))
        else:
            present = [int(c) for c in np.unique(mask) if c not in (0, IGNORE)]
            drawn = [crop_to_mask(*object_crop(idx, o, (h, w)), canvas_size=(h, w)) for o in rows]
            keep = [k for k, m in enumerate(drawn) if m.any()]
            present += [int(obj_labels[k]) for k in keep]
            stack = [mask == c for c in present[: len(present) - len(keep)]]
            stack += [drawn[k] for k in keep]
            masks = np.stack(stack) if stack else np.zeros((0, h, w), bool)
            boxes = []
            for m in masks:
                ys, xs = np.nonzero(m)
                boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            target |= {
                "boxes": tv_tensors.BoundingBoxes(
                    torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                    format="XYXY",
                    canvas_size=(h, w),
                ),
                "labels": torch.tensor(present, dtype=torch.int64),
                "masks": tv_tensors.Mask(torch.from_numpy(masks.astype(np.uint8))),
                "area": torch.tensor(masks.reshape(len(masks), -1).sum(1), dtype=torch.float32),
                "iscrowd": torch.zeros(len(present), dtype=torch.int64),
            }
        if self.transforms is not None:
            return self.transforms(image, target)  # type: ignore[no-any-return]
        return image, target
