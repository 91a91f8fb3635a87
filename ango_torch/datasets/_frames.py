"""Video assets inside :class:`~ango_torch.datasets.dataset.AngoDataset`: one sample per
annotated frame, targets with track ids and key-frame flags (interpolated in between).

:class:`VideoFrames` holds each video asset's :class:`~ango_torch.targets.tracks.Tracks`
(built once, numpy) and decodes frames through :mod:`ango_torch.assets.video` with a
per-process reader cache (so forked or spawned workers open their own decoders).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from ..assets.video import VideoReader, cached_reader
from ..errors import AngoTorchWarning, where
from ..export.index import ExportIndex
from ..targets.arrays import Instances, Overlap, object_crop, semantic_map
from ..targets.geometry import rasterize_crop
from ..targets.selection import DatasetReport, video_assets
from ..targets.tracks import (
    Tracks,
    asset_tracks,
    frame_entries,
    interpolated_boxes,
    interpolated_ring,
)

if TYPE_CHECKING:
    from ..assets.fetch import AssetStore

__all__ = ["FrameInstances", "Interpolate", "VideoFrames"]

Interpolate = bool | Literal["auto"]
UNPLACED = "video entry without a frame (page)"
DUPLICATE = "duplicate (objectId, frame) entry"
STOP = "track stop (interpolationStopped)"
PAST_END = "video entry past metadata.frameTotal"


@dataclass(slots=True)
class FrameInstances:
    """One frame's instances with their track numbers and key-frame flags."""

    inst: Instances
    track_ids: npt.NDArray[np.int64]
    keyframe: npt.NDArray[np.bool_]


class VideoFrames:
    """The video assets of a dataset: tracks, annotated frames, decoding."""

    def __init__(
        self,
        index: ExportIndex,
        snapshot_rows: npt.NDArray[np.int32],
        *,
        interpolate: Interpolate,
        report: DatasetReport,
    ) -> None:
        if interpolate not in (True, False, "auto"):
            raise ValueError(f"interpolate must be True, False or 'auto', got {interpolate!r}")
        self.index = idx = index
        self.is_video = video_assets(idx)
        self.tracks: dict[int, Tracks] = {}
        self.past: dict[int, npt.NDArray[np.int64]] = {}
        self.interpolate: dict[int, bool] = {}
        for a in np.flatnonzero(self.is_video & (snapshot_rows >= 0)).tolist():
            s = int(snapshot_rows[a])
            rows = np.arange(int(idx.snap_obj_start[s]), int(idx.snap_obj_end[s]), dtype=np.int64)
            total = self.frame_total(a)
            if total > 0:  # entries on frames the video does not have (per its metadata)
                past = idx.obj_page[rows] >= total
                self.past[a] = rows[past]
                rows = rows[~past]
            tr = asset_tracks(idx, a, rows)
            self.tracks[a] = tr
            self.interpolate[a] = tr.sparse if interpolate == "auto" else bool(interpolate)
        self.report = report
        self._mismatch_warned: set[tuple[int, int]] = set()

    def account(self, obj_label: npt.NDArray[np.int64], report: DatasetReport) -> None:
        """Count the entries of kept classes that no frame shows: without a ``page``,
        a duplicate ``(objectId, frame)``, a frame at or past ``metadata.frameTotal``, or
        a track's stop marker."""
        for a, tr in self.tracks.items():
            for name, rows in (
                (PAST_END, self.past.get(a, tr.unplaced[:0])),
                (UNPLACED, tr.unplaced),
                (DUPLICATE, tr.duplicates),
                (STOP, tr.rows[tr.stopped]),
            ):
                n = int((obj_label[rows] >= 0).sum())
                if n:
                    (report.ignored_objects if name == STOP else report.dropped_objects)[name] += n

    def __getstate__(self) -> dict[str, object]:
        state = {
            k: getattr(self, k)
            for k in ("index", "is_video", "tracks", "past", "interpolate", "report")
        }
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        self._mismatch_warned = set()

    def frame_total(self, a: int) -> int:
        """``metadata.frameTotal`` of asset ``a`` (``-1`` when absent or not a number)."""
        meta = self.index.extra(int(self.index.asset_extra[a])).get("m") or {}
        value = meta.get("frameTotal") if isinstance(meta, dict) else None
        return int(value) if isinstance(value, int | float) and value > 0 else -1

    def frames(self, a: int) -> npt.NDArray[np.int64]:
        """The annotated frames of video asset ``a`` (key or interpolated), sorted."""
        tr = self.tracks.get(a)
        if tr is None or not len(tr):
            return np.zeros(0, np.int64)
        return tr.annotated_frames(interpolate=self.interpolate[a])

    def expand(self, samples: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
        """``samples`` (``[S, 3]`` of ``(asset, page, snapshot)``) with each video asset's
        row replaced by one row per annotated frame (``page`` = the frame index)."""
        if not self.is_video[samples[:, 0]].any():  # no per-row arrays for 1M images
            return samples
        out: list[npt.NDArray[np.int32]] = []
        for row in samples:
            a = int(row[0])
            if not self.is_video[a]:
                out.append(row[None])
                continue
            f = self.frames(a)
            block = np.empty((len(f), 3), np.int32)
            block[:, 0], block[:, 1], block[:, 2] = a, f, row[2]
            out.append(block)
        return np.concatenate(out).reshape(-1, 3) if out else samples

    def reader(self, store: AssetStore, a: int) -> VideoReader:
        """This process's decoder of video asset ``a`` (opened on first use)."""
        idx = self.index
        name = idx.string(idx.asset_external_id[a]) or ""
        aid = idx.string(idx.asset_asset_id[a]) or ""
        url = idx.string(idx.asset_url[a])
        label = where(asset=name, index=a)

        def load() -> bytes:
            return store.fetch(asset_id=aid, external_id=name, url=url, label=label)

        reader = cached_reader(f"{aid}\0{name}\0{url}", load, label=label)
        key = (os.getpid(), a)
        if key not in self._mismatch_warned:
            self._mismatch_warned.add(key)
            for what in self._metadata_mismatch(a, reader):
                self.report.video_metadata.append((a, name, what))
                warnings.warn(f"{label}: {what}", AngoTorchWarning, stacklevel=3)
        return reader

    def _metadata_mismatch(self, a: int, reader: VideoReader) -> list[str]:
        """What ``metadata.frameTotal``/``frameRate`` of ``a`` says unlike its decoder,
        and which value is used (frame indices are always the decoder's)."""
        out = []
        total = self.frame_total(a)
        if total > 0 and total != reader.num_frames:
            out.append(
                f"metadata.frameTotal is {total} but the {reader.decoder} decoder finds "
                f"{reader.num_frames} frames (frames are read as the decoder numbers them; "
                f"frameTotal bounds the annotated frames)"
            )
        meta = self.index.extra(int(self.index.asset_extra[a])).get("m") or {}
        rate = meta.get("frameRate") if isinstance(meta, dict) else None
        known = isinstance(rate, int | float) and rate > 0 and reader.fps > 0
        if known and abs(float(rate) - reader.fps) > 0.01 * reader.fps:  # type: ignore[arg-type]
            out.append(
                f"metadata.frameRate is {rate:g} but the {reader.decoder} decoder finds "
                f"{reader.fps:g} fps (neither places annotations: frames are matched by "
                "index, the decoder's)"
            )
        return out

    def instances(
        self,
        a: int,
        frame: int,
        obj_label: npt.NDArray[np.int64],
        canvas: tuple[int, int],
        *,
        masks: bool,
    ) -> FrameInstances:
        """The instances of ``frame`` of asset ``a`` (objects whose label is ``-1`` left
        out); boxes clipped to ``canvas``; empty ones dropped and counted."""
        idx = self.index
        tr = self.tracks[a]
        en = frame_entries(tr, frame, interpolate=self.interpolate[a])
        labels = obj_label[en.rows]
        boxes = interpolated_boxes(idx, en)
        h, w = canvas
        np.clip(boxes[:, 0::2], 0, w, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, h, out=boxes[:, 1::2])
        keep = labels >= 0
        crops, offsets = [], []
        if masks:
            for n in np.flatnonzero(keep).tolist():
                ring = None if en.keyframe[n] else interpolated_ring(idx, en, n)
                if ring is None:
                    crop, offset = object_crop(idx, int(en.rows[n]), canvas)
                else:
                    crop, offset = rasterize_crop([ring], canvas_size=canvas)
                if crop.any():
                    crops.append(crop)
                    offsets.append(offset)
                else:
                    keep[n] = False
        else:
            keep &= (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        dropped = int(((labels >= 0) & ~keep).sum())
        inst = Instances(en.rows[keep], labels[keep], boxes[keep], crops, offsets, dropped)
        return FrameInstances(inst, en.track[keep], en.keyframe[keep])

    def semantic(
        self,
        a: int,
        frame: int,
        obj_label: npt.NDArray[np.int64],
        canvas: tuple[int, int],
        *,
        overlap: Overlap,
    ) -> tuple[npt.NDArray[np.int64], int]:
        """``(int64 [H, W] label map, shapes covering no pixel)`` of ``frame`` of ``a``:
        :func:`~ango_torch.targets.arrays.semantic_map` of its key and interpolated
        shapes, painted in export order (of each instance's earlier key entry)."""
        inst = self.instances(a, frame, obj_label, canvas, masks=True).inst
        order = np.argsort(inst.rows, kind="stable")
        crops = [(inst.crops[k], inst.offsets[k]) for k in order.tolist()]
        sem = semantic_map(
            self.index, inst.rows[order], inst.labels[order], canvas, overlap=overlap, crops=crops
        )
        return sem, inst.dropped_empty

    def classifications(self, snapshot: int, frame: int) -> dict[str, Any]:
        """``{title: answer}`` of the frame-level classifications in force on ``frame``.

        An answer holds from its ``page`` (none: from the first frame) until a later
        answer of the same classification (``schemaId``, else ``title``) changes it or
        an entry with ``interpolationStopped`` ends it (absent from that frame on); of
        two on one frame the later in the export wins.  Nested answers are flattened
        as for images.
        """
        idx = self.index
        records = idx.snapshot_classifications(snapshot)
        current: dict[str, tuple[int, int]] = {}  # classification → (page, position)
        for k, c in enumerate(records):
            page = -1 if c.page is None else int(c.page)
            key = c.schema_id or c.title or f"#{k}"
            if page <= frame and (key not in current or page >= current[key][0]):
                current[key] = (page, k)
        flat: dict[str, Any] = {}
        for _, k in sorted(current.values(), key=lambda pk: pk[1]):
            if not records[k].interpolation_stopped:
                flat.update(records[k].flat())
        return flat
