"""``AngoVideoDataset``: clips of a video export with flat, per-clip targets.

A clip is ``clip_len`` frames ``frame_step`` apart; its target is flat over the clip
(``frame_ids`` says which clip position each instance is on), so one
``torchvision.transforms.v2`` call applies the same geometry to every frame.
:func:`split_clip_target` gives one target per frame back; :func:`clip_collate` batches
clips for video models (``[B, T, 3, H, W]``; transpose to ``[B, 3, T, H, W]`` for
torchvision's ``r3d_18``).  Frames, tracks and interpolation are
:class:`~ango_torch.datasets.dataset.AngoDataset`'s (see :mod:`._frames`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torchvision import tv_tensors

from ..assets.decode import decode_image
from ..errors import SizeMismatchError, where
from ..export.load import AngoExport
from ..export.ontology import Ontology
from ..targets.tracks import asset_tracks
from ._frames import Interpolate
from .dataset import AngoDataset

__all__ = ["AngoVideoDataset", "clip_collate", "split_clip_target"]

Clips = Literal["annotated", "all", "random"]
NOT_VIDEO = "not a video or multi-image asset (AngoVideoDataset reads sequences only)"


class AngoVideoDataset(torch.utils.data.Dataset[tuple[tv_tensors.Video, dict[str, Any]]]):
    """The video (and multi-image) assets of an export as ``(clip, target)`` pairs.

    A multi-image asset (``dataset``: a list of image URLs) is read as a video whose
    frames are its pages (``page`` = frame; images under ``root/<externalId>.pages/``).

    Args:
        export: an :class:`AngoExport` or anything :func:`load_export` accepts.
        clip_len: frames per clip (``T``).
        frame_step: source frames between consecutive clip frames.
        clips: ``"annotated"``: non-overlapping clips from each video's first annotated
            frame, skipping stretches without annotations; ``"all"``: non-overlapping
            clips over every frame; ``"random"``: one clip per video, its start drawn
            (``torch.randint``) at every access.  A clip that would pass a video's end
            is moved back to end on its last frame (a video shorter than a clip repeats
            its last frame).
        task: ``"detection"``, ``"instance"`` (adds ``masks``) or ``"semantic"`` (only
            ``mask`` ``int64 [T, H, W]``: each frame's label map, interpolated shapes
            included, as :class:`AngoDataset` paints images).
        interpolate: ``True``/``False``/``"auto"``, as for :class:`AngoDataset`.
        root, ontology, classes, stage, storage_options, cache_dir: as for
            :class:`AngoDataset`.
        transforms: joint ``(clip, target) -> (clip, target)``, e.g. ``transforms.v2``.

    ``clip``: ``tv_tensors.Video`` ``uint8 [T, 3, H, W]``.  ``target``: ``boxes``
    ``[M, 4]`` XYXY, ``labels``/``track_ids``/``frame_ids`` ``int64 [M]`` (``frame_ids``
    in ``0..T-1``), ``keyframe`` ``bool [M]``, ``masks`` ``uint8 [M, H, W]`` (instance),
    ``frames`` ``int64 [T]`` (source frame indices), ``asset_id``.  Track ids number an
    asset's ``objectId`` values in order of first appearance (``track_names(i)``).
    """

    def __init__(
        self,
        export: AngoExport | str | os.PathLike[str] | Sequence[Mapping[str, Any]],
        *,
        clip_len: int = 16,
        frame_step: int = 1,
        clips: Clips = "annotated",
        task: Literal["detection", "instance", "semantic"] = "detection",
        interpolate: Interpolate = "auto",
        root: str | os.PathLike[str] | None = None,
        ontology: Ontology | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        classes: Sequence[str] | None = None,
        stage: str | None = None,
        transforms: Callable[[Any, Any], tuple[Any, Any]] | None = None,
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if clip_len < 1 or frame_step < 1:
            raise ValueError(f"clip_len and frame_step must be ≥ 1, got {clip_len}, {frame_step}")
        if clips not in ("annotated", "all", "random"):
            raise ValueError(f"clips must be 'annotated', 'all' or 'random', got {clips!r}")
        self.frames = AngoDataset(
            export,
            task=task,
            root=root,
            ontology=ontology,
            classes=classes,
            stage=stage,
            storage_options=storage_options,
            cache_dir=cache_dir,
            interpolate=interpolate,
        )
        self.clip_len, self.frame_step, self.clips = clip_len, frame_step, clips
        self.task = task
        self.transforms = transforms
        self.report = self.frames.report
        video = self.frames._video
        idx = self.frames.export.index
        rows = self.frames._snap_rows
        out: list[tuple[int, int, int]] = []
        self._length: dict[int, int] = {}
        for a in np.flatnonzero(rows >= 0).tolist():
            n_pages = int(idx.asset_page_end[a] - idx.asset_page_start[a])
            if not video.is_video[a] and n_pages == 0:
                name = idx.string(idx.asset_external_id[a])
                self.report.skipped_assets.append((a, name, NOT_VIDEO))
                continue
            if not video.is_video[a]:  # a multi-image asset: its pages are the frames
                s = int(rows[a])
                objs = np.arange(int(idx.snap_obj_start[s]), int(idx.snap_obj_end[s]))
                tr = asset_tracks(idx, a, objs)
                video.tracks[a] = tr
                video.interpolate[a] = tr.sparse if interpolate == "auto" else bool(interpolate)
                n = n_pages
            else:
                n = video.frame_total(a)
                if n <= 0:
                    n = video.reader(self.frames.store, a).num_frames
            self._length[a] = n
            out += [(a, s, int(rows[a])) for s in self._starts(video.frames(a), n)]
        self._clips = np.array(out, np.int32).reshape(-1, 3)

    def _starts(self, annotated: npt.NDArray[np.int64], n: int) -> list[int]:
        span = self.frame_step * (self.clip_len - 1)
        if self.clips == "random":
            return [0]
        if self.clips == "all":
            return list(range(0, max(n - span, 1), span + self.frame_step)) or [0]
        starts: list[int] = []
        for f in annotated.tolist():
            if not starts or f > starts[-1] + span:
                starts.append(int(f))
        return starts

    @property
    def export(self) -> AngoExport:
        """The export the clips come from (as :attr:`AngoDataset.export`)."""
        return self.frames.export

    def asset_index(self, i: int) -> int:
        """The export position of clip ``i``'s asset (for :func:`ango_torch.split`)."""
        return int(self._clips[i, 0])

    def __len__(self) -> int:
        return len(self._clips)

    @property
    def classes(self) -> list[str]:
        """Class titles in label order; ``classes[0] == "__background__"``."""
        return self.frames.classes

    def track_names(self, i: int) -> tuple[str, ...]:
        """The objectId of each track number of clip ``i``'s asset."""
        return self.frames._video.tracks[int(self._clips[i, 0])].ids

    def clip_frames(self, i: int) -> npt.NDArray[np.int64]:
        """``int64 [T]``: the source frames of clip ``i`` (drawn anew for ``"random"``)."""
        a, start, _ = (int(v) for v in self._clips[i])
        n = self._length[a]
        span = self.frame_step * (self.clip_len - 1)
        if self.clips == "random":
            start = int(torch.randint(0, max(n - span, 1), ()).item())
        start = max(min(start, n - 1 - span), 0)
        f = start + self.frame_step * np.arange(self.clip_len, dtype=np.int64)
        return np.minimum(f, n - 1)

    def _page_frames(self, a: int, pages: list[int]) -> npt.NDArray[np.uint8]:
        """``uint8 [T, 3, H, W]``: pages of multi-image asset ``a`` (all one size)."""
        ds = self.frames
        idx = ds.export.index
        name = idx.string(idx.asset_external_id[a]) or ""
        out = []
        for p in pages:
            label = where(asset=name, index=a)
            data = ds.store.fetch(
                asset_id=idx.string(idx.asset_asset_id[a]) or "",
                external_id=name,
                url=idx.string(idx.page_urls[int(idx.asset_page_start[a]) + p]),
                page=p,
                shared=bool(ds._shared[a]),
                label=label,
            )
            out.append(decode_image(data, label=f"{label}, page {p}").transpose(2, 0, 1))
            if out[-1].shape != out[0].shape:
                raise SizeMismatchError(
                    f"{label}: page {p} is {out[-1].shape[2]}×{out[-1].shape[1]}, page "
                    f"{pages[0]} {out[0].shape[2]}×{out[0].shape[1]}: a clip needs one size"
                )
        return np.stack(out)

    def __getitem__(self, i: int) -> tuple[Any, dict[str, Any]]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"clip {i} out of range for a dataset of {n} clips")
        i %= n
        a = int(self._clips[i, 0])
        frames = self.clip_frames(i)
        ds = self.frames
        if ds._video.is_video[a]:
            pixels = ds._video.reader(ds.store, a).frames(frames.tolist())
        else:
            pixels = self._page_frames(a, frames.tolist())
        clip = tv_tensors.Video(torch.from_numpy(pixels))
        canvas = (int(pixels.shape[2]), int(pixels.shape[3]))
        if self.task == "semantic":
            maps = []
            for f in frames.tolist():
                sem, empty = ds._video.semantic(
                    a, int(f), ds._obj_label, canvas, overlap=ds.overlap
                )
                ds.report.empty_after_clipping += empty
                maps.append(sem)
            return self._finish(
                clip, {"mask": tv_tensors.Mask(torch.from_numpy(np.stack(maps)))}, a, frames
            )
        parts = [
            ds._video.instances(a, int(f), ds._obj_label, canvas, masks=self.task == "instance")
            for f in frames.tolist()
        ]
        for p in parts:
            ds.report.empty_after_clipping += p.inst.dropped_empty
        boxes = np.concatenate([p.inst.boxes for p in parts]).reshape(-1, 4)
        target: dict[str, Any] = {
            "boxes": tv_tensors.BoundingBoxes(
                torch.from_numpy(boxes.astype(np.float32)),
                format=tv_tensors.BoundingBoxFormat.XYXY,
                canvas_size=canvas,
            ),
            "labels": torch.from_numpy(np.concatenate([p.inst.labels for p in parts])),
            "track_ids": torch.from_numpy(np.concatenate([p.track_ids for p in parts])),
            "frame_ids": torch.from_numpy(
                np.concatenate([np.full(len(p.inst), t, np.int64) for t, p in enumerate(parts)])
            ),
            "keyframe": torch.from_numpy(np.concatenate([p.keyframe for p in parts])),
        }
        if self.task == "instance":
            masks = np.concatenate([p.inst.masks(canvas) for p in parts]).reshape(-1, *canvas)
            target["masks"] = tv_tensors.Mask(torch.from_numpy(masks))
        return self._finish(clip, target, a, frames)

    def _finish(
        self, clip: tv_tensors.Video, target: dict[str, Any], a: int, frames: npt.NDArray[np.int64]
    ) -> tuple[Any, dict[str, Any]]:
        idx = self.frames.export.index
        target["frames"] = torch.from_numpy(frames)
        target["asset_id"] = idx.string(idx.asset_asset_id[a]) or ""
        if self.transforms is not None:
            return self.transforms(clip, target)
        return clip, target


_PER_INSTANCE = ("boxes", "labels", "track_ids", "keyframe", "masks")


def split_clip_target(target: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One target per clip frame: the instances whose ``frame_ids`` is that position
    (semantic: that frame's ``mask`` ``[H, W]``), with ``frame`` (the source frame index)
    and ``asset_id``."""
    frame_ids = target.get("frame_ids")
    out = []
    for t, source in enumerate(target["frames"].tolist()):
        one: dict[str, Any]
        if frame_ids is None:  # semantic: one label map per frame
            one = {"mask": tv_tensors.wrap(target["mask"][t], like=target["mask"])}
        else:
            on = frame_ids == t
            one = {k: target[k][on] for k in _PER_INSTANCE if k in target}
        if "boxes" in one:
            one["boxes"] = tv_tensors.wrap(one["boxes"], like=target["boxes"])
        one["frame"] = int(source)
        one["asset_id"] = target["asset_id"]
        out.append(one)
    return out


def clip_collate(
    batch: Sequence[tuple[torch.Tensor, dict[str, Any]]],
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """``[(clip [T, 3, H, W], target), ...]`` → ``(clips [B, T, 3, H, W], [target, ...])``
    (clips must share ``T``, ``H``, ``W``: resize in ``transforms`` otherwise)."""
    clips = torch.stack([torch.as_tensor(c) for c, _ in batch]) if batch else torch.empty(0)
    return clips, [t for _, t in batch]
