"""``AngoDataset``: an export as torchvision-native ``(image, target)`` samples.

Composition only: the export's index (:mod:`ango_torch.export.index`) says which
objects a sample has, the store (:mod:`ango_torch.assets.fetch`) brings bytes,
:mod:`ango_torch.assets.decode` makes pixels, and :mod:`ango_torch.targets` rasterizes.
The dataset holds plain numpy data and pickles cleanly, so
DataLoader workers (fork, spawn or forkserver) share the index instead of copying it.

Over the ~400-line guideline because :class:`AngoDataset` is one class whose state
(the export, store, class map, samples and report) its constructor builds and its
loaders read; what stands alone is elsewhere: brush colour discovery
(:mod:`._brush_colors`), batching (:mod:`.batching`), selection and targets
(:mod:`ango_torch.targets`), bytes and pixels (:mod:`ango_torch.assets`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torchvision import tv_tensors

from ..assets.decode import decode_image, decode_rgba, exif_transposed, image_size
from ..assets.expiry import expiry_report
from ..assets.fetch import AssetStore
from ..assets.layout import brush_content_key, brush_stage_key, shared_assets
from ..errors import (
    AngoTorchError,
    AngoTorchWarning,
    AssetFetchError,
    SizeMismatchError,
    where,
)
from ..export.groups import Where, filter_assets
from ..export.load import AngoExport, OnError, load_export
from ..export.ontology import Ontology, load_ontology
from ..limits import current
from ..targets.arrays import (
    IGNORE,
    Instances,
    Overlap,
    brush_instances,
    check_canvas,
    check_mask_bytes,
    instances,
    semantic_map,
)
from ..targets.brush import resize_nearest
from ..targets.classes import TASKS, ClassMap, ClassSpec, label_brush, resolve_classes
from ..targets.selection import (
    DatasetReport,
    build_samples,
    object_labels,
    selected_objects,
    transposed_hint,
    unplaced_brush,
)
from ._brush_colors import discover_brush_colors
from ._frames import Interpolate, VideoFrames
from .batching import shared_views
from .packed import pack_crops, pack_target

__all__ = ["AngoDataset", "DatasetReport"]

Task = Literal["detection", "instance", "semantic"]
Transforms = Callable[[Any, Any], tuple[Any, Any]]


class AngoDataset(torch.utils.data.Dataset[tuple[Any, dict[str, Any]]]):
    """An Ango export as a map-style dataset of ``(image, target)`` pairs.

    Args:
        export: an :class:`AngoExport`, or anything :func:`load_export` accepts.
        task: ``"detection"`` (boxes), ``"instance"`` (boxes and masks) or
            ``"semantic"`` (one ``[H, W]`` label map).
        root: folder or fsspec URL (or ``{externalId}``/``{assetId}`` template) holding
            the images as ``root/<externalId>``, e.g. after ``ango-torch prefetch``.
            Without it, images come from the export's (signed, expiring) URLs.
        ontology: the project's categorySchema (dict, :class:`Ontology`, path or URL);
            fixes the class order and the brush colours.
        classes: class titles to keep, in label order (others are left out), or a
            mapping ``{new title: [titles, schemaIds or brush colours]}`` that merges
            and renames (unmapped classes are left out and counted).
        stage: ``None`` for the exported answer, else a stage name or id of
            ``stageHistory`` (assets that lack it are skipped and reported).
        transforms: a joint callable ``(image, target) -> (image, target)``, e.g. a
            ``torchvision.transforms.v2`` pipeline.
        storage_options: passed to fsspec.
        cache_dir: local cache for the index, remote images and brush masks.
        on_error: ``"raise"`` or ``"skip"`` (malformed assets are left out and listed
            in :attr:`report`).
        brush_colors: ``{"#rrggbb": title}`` for brush masks when there is no ontology
            (over the ontology's colours when there is); without either, or when the
            ontology names no brush colour, each distinct brush colour becomes a class
            named by it, with a warning.
        brush_instances: ``"components"`` adds one detection/instance per connected
            component of each brush class; ``None`` (default) leaves brush to semantic.
        brush_unlisted: semantic label of brush pixels of no kept class (colours of
            classes left out by ``classes``, or near no known colour): ``"ignore"``
            (default, 255) or ``"background"`` (0).  They never make instances.
        overlap: semantic overlap policy: ``"last"`` (later shapes paint over earlier
            ones) or ``"ignore"`` (pixels two classes claim become 255).
        attributes: add ``target["attributes"]`` (each instance's nested
            classifications as ``{title: answer}``) and ``target["classifications"]``
            (the image-level ones).
        batches: keep only assets in at least one of these Ango batches.
        where: keep only assets whose ``metadata`` matches ``{key: value}`` (a list
            or set of values: any of them), or for which ``where(asset)`` is true
            (``asset``: an :class:`~ango_torch.Asset` record).  Assets left out by
            ``batches``/``where`` are counted in ``report.filtered_assets``.
        allow_local_urls: read export URLs (``asset``, ``dataset[]``,
            ``brushDataUrl``) that name this machine's files (paths, ``file://``);
            off by default, as the export is untrusted (``LocalURLError``).
        follow_symlinks: follow symlinks under a local ``root`` that lead out of it;
            off by default (``UnsafePathError``).
        interpolate: video: ``True`` fills frames between a track's key entries,
            ``False`` keeps exported entries only, ``"auto"`` interpolates the videos
            whose tracks have frame gaps (a key-frames-only export).
        masks: ``"full"`` (default): ``target["masks"]`` is ``tv_tensors.Mask``
            ``[N, H, W]``; ``"packed"`` (``task="instance"``): after ``transforms``
            (which still see full masks), a :class:`~ango_torch.datasets.packed.PackedMasks`
            of each mask's crop, for :func:`~ango_torch.unpack_masks` to paste on the device.

    Samples follow the export's asset order; a multi-page asset gives one sample per
    annotated page, in page order; a video asset one per annotated frame (key or
    interpolated), with ``target["frame"]``, ``target["track_ids"]`` and
    ``target["keyframe"]`` (``task="semantic"``: the frame's ``mask``, interpolated
    shapes included).
    ``classes[0] == "__background__"`` and label ``k`` is ``classes[k]``.
    """

    def __init__(
        self,
        export: AngoExport | str | os.PathLike[str] | Sequence[Mapping[str, Any]],
        *,
        task: Task = "instance",
        root: str | os.PathLike[str] | None = None,
        ontology: Ontology | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        classes: ClassSpec | None = None,
        stage: str | None = None,
        transforms: Transforms | None = None,
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        on_error: OnError = "raise",
        brush_colors: Mapping[str, str] | None = None,
        brush_instances: Literal["components"] | None = None,
        brush_unlisted: Literal["ignore", "background"] = "ignore",
        overlap: Overlap = "last",
        attributes: bool = False,
        batches: Sequence[str] | None = None,
        where: Where | None = None,
        allow_local_urls: bool = False,
        follow_symlinks: bool = False,
        interpolate: Interpolate = "auto",
        masks: Literal["full", "packed"] = "full",
    ) -> None:
        if masks not in ("full", "packed") or (masks == "packed" and task != "instance"):
            raise ValueError(
                f"masks must be 'full', or 'packed' with task='instance', got {masks!r}"
            )
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if overlap not in ("last", "ignore"):
            raise ValueError(f"overlap must be 'last' or 'ignore', got {overlap!r}")
        if brush_instances not in (None, "components"):
            raise ValueError(
                f"brush_instances must be None or 'components', got {brush_instances!r}"
            )
        if brush_unlisted not in ("ignore", "background"):
            raise ValueError(
                f"brush_unlisted must be 'ignore' or 'background', got {brush_unlisted!r}"
            )
        if cache_dir is not None:
            cache_dir = os.path.expanduser(cache_dir)
        if root is not None and "://" not in os.fspath(root):
            root = os.path.expanduser(root)
        self.export = load_export(
            export, storage_options=storage_options, cache_dir=cache_dir, on_error=on_error
        )
        self.task: Task = task
        self.stage = stage
        self.transforms = transforms
        self.overlap: Overlap = overlap
        self.attributes = attributes
        self.brush_instances = brush_instances
        self.masks = masks
        self._limits = current()  # canvas, mask and brush limits: read once, pickled along
        self.store = AssetStore(
            root=root,
            storage_options=storage_options,
            cache_dir=cache_dir,
            allow_local_urls=allow_local_urls,
            follow_symlinks=follow_symlinks,
        )
        self._shared = shared_assets(self.export.index)  # externalIds that name no one file
        self.ontology = (
            None if ontology is None else load_ontology(ontology, storage_options=storage_options)
        )
        self.report = DatasetReport()
        idx = self.export.index
        for s in self.export.skipped:
            self.report.skipped_assets.append((s.index, s.asset, f"unreadable: {s.reason}"))
        self.report.unlisted_skipped = self.export.skipped_count - len(self.export.skipped)
        rows = self.export.snapshot_rows(stage)
        for a in np.flatnonzero(rows < 0).tolist():
            self.report.skipped_assets.append(
                (a, idx.string(idx.asset_external_id[a]), f"no stage: {stage!r} not in its history")
            )
        self._video = VideoFrames(idx, rows, interpolate=interpolate, report=self.report)
        unfiltered = rows  # the class list ignores batches=/where=: filtered sets share labels
        kept, left_out = filter_assets(idx, rows, batches=batches, where=where)
        for reason, gone in left_out.items():  # asked for: counted, not an error or warning
            snaps = rows[gone]
            self.report.filtered_assets[reason] += len(gone)
            self.report.filtered_objects += int(
                (idx.snap_obj_end[snaps] - idx.snap_obj_start[snaps]).sum()
            )
        rows = kept
        self._snap_rows = rows
        self._uses_brush = task == "semantic" or brush_instances is not None
        if self._uses_brush:
            self.report.brush_unplaced = unplaced_brush(idx, rows)
        discovered = (
            discover_brush_colors(
                ((a, self._brush_rgba(a, s)) for a, s in self._brush_urls()),
                index=idx,
                ontology=self.ontology,
                brush_colors=brush_colors,
                classes=classes,
                cap=self._limits.max_brush_colors,
            )
            if self._uses_brush
            else []
        )
        self.class_map: ClassMap = resolve_classes(
            idx,
            task=task,
            snapshot_rows=unfiltered,
            ontology=self.ontology,
            classes=classes,
            brush_colors=brush_colors,
            discovered_brush=discovered,
            brush=self._uses_brush,
        )
        # Brush pixels of no kept class: 255 or 0 in semantic maps, never an instance.
        self._brush_fill = IGNORE if task == "semantic" and brush_unlisted == "ignore" else 0
        self._brush_counted: set[int] = set()
        self._obj_label = object_labels(
            idx, selected_objects(idx, rows), self.class_map, task=task, report=self.report
        )
        self._video.account(self._obj_label, self.report)
        self._samples = self._video.expand(build_samples(idx, rows))
        self._transposed_hint = transposed_hint(idx)  # get_height_and_width reads a header
        if root is None:
            self._warn_expiry()
        report = self.report
        if report.skipped_assets or report.dropped_objects or report.brush_unplaced:
            warnings.warn(
                f"AngoDataset({self.export.source!r}): {self.report.summary(runtime_note=False)}",
                AngoTorchWarning,
                stacklevel=2,
            )

    # -- construction ---------------------------------------------------------------------
    def _brush_urls(self) -> list[tuple[int, int]]:
        idx = self.export.index
        return [
            (int(idx.snap_asset[s]), int(s))
            for s in self._snap_rows[self._snap_rows >= 0].tolist()
            if idx.snap_brush[s] >= 0
        ]

    def _warn_expiry(self) -> None:
        idx = self.export.index
        assets = np.flatnonzero(self._snap_rows >= 0)
        urls = [idx.string(idx.asset_url[a]) for a in assets.tolist()]
        urls += [idx.string(p) for p in idx.page_urls.tolist()]
        urls += [idx.string(idx.snap_brush[s]) for _, s in self._brush_urls()]
        message = expiry_report([u for u in urls if u]).message()
        if message:
            warnings.warn(message, AngoTorchWarning, stacklevel=3)

    # -- public ---------------------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        """Class titles in label order; ``classes[0] == "__background__"``."""
        return list(self.class_map.titles)

    def __len__(self) -> int:
        return len(self._samples)

    def __repr__(self) -> str:
        return (
            f"AngoDataset({self.export.source!r}, task={self.task!r}, samples={len(self)}, "
            f"classes={len(self.classes) - 1}, stage={self.stage!r})"
        )

    def _label(self, i: int) -> str:
        a = int(self._samples[i, 0])
        return where(
            asset=self.export.index.string(self.export.index.asset_external_id[a]), index=a
        )

    def sample_objects(self, i: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``(object rows, labels)`` of sample ``i``'s instances, from the index alone."""
        _a, page, s = (int(v) for v in self._samples[i])
        idx = self.export.index
        if self._video.is_video[_a]:
            found = self._video.instances(_a, page, self._obj_label, (1, 1), masks=False)
            return found.inst.rows, found.inst.labels
        rows = np.arange(int(idx.snap_obj_start[s]), int(idx.snap_obj_end[s]), dtype=np.int64)
        labels = self._obj_label[rows]
        keep = labels >= 0
        if page >= 0:
            keep &= np.maximum(idx.obj_page[rows], 0) == page
        return rows[keep], labels[keep]

    def sample_location(self, i: int) -> tuple[int, int, int]:
        """``(asset index, page or -1, snapshot row)`` of sample ``i`` in the index."""
        a, page, snap = (int(v) for v in self._samples[self._check(i)])
        return a, page, snap

    def asset_index(self, i: int) -> int:
        """The export position of sample ``i``'s asset."""
        return int(self._samples[self._check(i), 0])

    def asset_id(self, i: int) -> str:
        """The assetId of sample ``i`` (its externalId where the export has none)."""
        idx = self.export.index
        return idx.string(idx.asset_asset_id[self.asset_index(i)]) or ""

    def get_height_and_width(self, i: int) -> tuple[int, int]:
        """``(height, width)`` of sample ``i`` from the export's metadata (no decode).

        Reads the image header (EXIF orientation applied: the displayed size) instead
        when the export lacks the size, for pages, and when an object lies outside the
        metadata's canvas but not outside its transpose (the metadata may be an
        EXIF-rotated photo's stored size; ``selection.transposed_hint``).
        """
        i = self._check(i)
        a, page, _ = (int(v) for v in self._samples[i])
        idx = self.export.index
        h, w = int(idx.asset_height[a]), int(idx.asset_width[a])
        metadata = page < 0 and not self._transposed_hint[a]
        if h > 0 and w > 0 and (metadata or self._video.is_video[a]):
            return h, w
        return image_size(self._fetch_image(i), label=self._label(i))

    def audit(self) -> DatasetReport:
        """Complete the report's runtime counters for every sample, and return it.

        ``empty_after_clipping`` and the brush counts depend on the annotations, the
        canvas size and brush PNGs only: each sample's target is built for its
        :meth:`get_height_and_width` (metadata, or a header) without decoding its image,
        in this process, once per sample (samples loaded before are not counted twice).
        """
        for i in range(len(self)):
            self.load_target(i, self.get_height_and_width(i))
        self.report.runtime_complete = True
        return self.report

    def _check(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"sample {i} out of range for a dataset of {n} samples")
        return i % n

    # -- samples --------------------------------------------------------------------------
    def _fetch_image(self, i: int) -> bytes:
        a, page, _ = (int(v) for v in self._samples[i])
        idx = self.export.index
        url = idx.string(idx.asset_url[a])
        if page >= 0:
            url = idx.string(idx.page_urls[int(idx.asset_page_start[a]) + page])
        return self.store.fetch(
            asset_id=idx.string(idx.asset_asset_id[a]) or "",
            external_id=idx.string(idx.asset_external_id[a]) or "",
            url=url,
            page=None if page < 0 else page,
            kind="image",
            shared=bool(self._shared[a]),
            label=self._label(i),
        )

    def _brush_bytes(self, a: int, s: int) -> bytes:
        """The brush PNG of asset ``a``'s snapshot ``s``, through the store (cache,
        prefetch folder, retries); also what :func:`.shard_writer.write_shards` stores."""
        idx = self.export.index
        name = idx.string(idx.asset_external_id[a])
        return self.store.fetch(
            asset_id=idx.string(idx.asset_asset_id[a]) or "",
            external_id=name or "",
            url=idx.string(idx.snap_brush[s]),
            kind="brush",
            stage_key=brush_stage_key(idx, s),
            content_key=brush_content_key(idx, s),
            label=where(asset=name, index=a, field="brushDataUrl"),
        )

    def _brush_rgba(self, a: int, s: int) -> npt.NDArray[np.uint8]:
        idx = self.export.index
        name = idx.string(idx.asset_external_id[a])
        return decode_rgba(
            self._brush_bytes(a, s),
            label=where(asset=name, index=a, field="brushDataUrl"),
            max_pixels=self._limits.max_canvas_pixels,
        )

    def brush_map(self, i: int, canvas: tuple[int, int]) -> npt.NDArray[np.int64] | None:
        """Label map of sample ``i``'s brush PNG (``None`` without one)."""
        a, page, s = (int(v) for v in self._samples[i])
        if page >= 0 or self.export.index.snap_brush[s] < 0:
            return None
        rgba = self._brush_rgba(a, s)
        if rgba.shape[:2] != canvas:
            if i not in self._brush_counted:  # once per sample, like the pixels below
                self.report.brush_resized += 1
            warnings.warn(
                f"{self._label(i)}: brush mask is {rgba.shape[1]}×{rgba.shape[0]}, the image "
                f"{canvas[1]}×{canvas[0]}: resized nearest-neighbour",
                AngoTorchWarning,
                stacklevel=3,
            )
            rgba = np.asarray(resize_nearest(rgba, size=canvas), np.uint8)
        labels, counts = label_brush(rgba, self.class_map, fill=self._brush_fill)
        if i in self._brush_counted:  # count a sample's pixels once, not every epoch
            return labels
        self._brush_counted.add(i)
        report = self.report
        report.brush_inexact_pixels += counts.inexact
        report.brush_unlisted_pixels += sum(counts.unlisted.values())
        report.brush_unlisted_colors.update(counts.unlisted)
        report.brush_excluded_pixels += sum(counts.excluded.values())
        report.brush_excluded_classes.update(counts.excluded)
        return labels

    def _check_size(self, i: int, h: int, w: int) -> None:
        a, page, _ = (int(v) for v in self._samples[i])
        idx = self.export.index
        eh, ew = int(idx.asset_height[a]), int(idx.asset_width[a])
        if page < 0 and eh > 0 and ew > 0 and (eh, ew) != (h, w):
            # An EXIF-rotated photo: the export may record its stored (pre-rotation) size;
            # the pixels (and annotations) are the displayed, transposed ones.
            if (eh, ew) == (w, h) and exif_transposed(self._fetch_image(i)):
                return
            raise SizeMismatchError(
                f"{self._label(i)}: the image is {w}×{h} but the export says {ew}×{eh}; "
                "its annotations were drawn on an image of the exported size (is root "
                "holding a resized copy?)"
            )

    def load_image(self, i: int) -> tv_tensors.Image:
        """Sample ``i``'s image: ``uint8 [3, H, W]`` RGB, EXIF orientation applied."""
        i = self._check(i)
        a, frame, _ = (int(v) for v in self._samples[i])
        if self._video.is_video[a]:
            pixels = self._video.reader(self.store, a).frames([frame])[0]
            return tv_tensors.Image(torch.from_numpy(pixels))
        pixels = decode_image(
            self._fetch_image(i), label=self._label(i), max_pixels=self._limits.max_canvas_pixels
        )
        # A channels-first view of the decoded HWC pixels, as torchvision's pil_to_tensor
        # gives: no copy here (the DataLoader's hand-over copies once anyway).
        return tv_tensors.Image(torch.from_numpy(pixels).permute(2, 0, 1))

    def load_target(self, i: int, canvas_size: tuple[int, int]) -> dict[str, Any]:
        """Sample ``i``'s target for an image of ``canvas_size`` (``(H, W)``)."""
        return self._target(i, canvas_size)[1]

    def _target(
        self, i: int, canvas_size: tuple[int, int], image: Any = None
    ) -> tuple[Any, dict[str, Any]]:
        """``(image, target)``; ``image`` (``[3, H, W]``) joins the target's buffer."""
        i = self._check(i)
        canvas_size = self._check_canvas(i, canvas_size)
        rows, labels = self.sample_objects(i)
        idx = self.export.index
        brush = self.brush_map(i, canvas_size) if self._uses_brush else None
        target: dict[str, Any]
        if self.task == "semantic":
            stats = {"empty": 0}
            a, frame, _ = (int(v) for v in self._samples[i])
            if self._video.is_video[a]:  # key and interpolated shapes of this frame
                sem, stats["empty"] = self._video.semantic(
                    a, frame, self._obj_label, canvas_size, overlap=self.overlap
                )
            else:
                sem = semantic_map(
                    idx, rows, labels, canvas_size, brush=brush, overlap=self.overlap, stats=stats
                )
            self.report.count_empty(i, stats["empty"])
            target = {"mask": tv_tensors.Mask(torch.from_numpy(sem))}
        else:
            a, frame, _ = (int(v) for v in self._samples[i])
            video = None
            if self._video.is_video[a]:
                video = self._video.instances(
                    a, frame, self._obj_label, canvas_size, masks=self.task == "instance"
                )
                inst = video.inst
            else:
                inst = instances(idx, rows, labels, canvas_size, masks=self.task == "instance")
            if brush is not None:
                a = self.asset_index(i)
                name = idx.string(idx.asset_external_id[a])
                found = brush_instances(
                    brush,
                    max_components=self._limits.max_brush_components,
                    label=where(asset=name, index=a, field="brushDataUrl"),
                )
                inst = Instances.concat([inst, found])
            self.report.count_empty(i, inst.dropped_empty)
            if self.task == "instance":
                check_mask_bytes(len(inst), canvas_size, self._limits, label=self._label(i))
            image, target = self._instance_target(inst, canvas_size, image)
            if video is not None:
                target["frame"] = frame
                target["track_ids"] = torch.from_numpy(video.track_ids)
                target["keyframe"] = torch.from_numpy(video.keyframe)
            if self.attributes:
                target["attributes"] = self._attributes(i, inst.rows)
        target["image_id"] = i
        target["asset_id"] = self.asset_id(i)
        if self.attributes:
            target["classifications"] = self._image_classifications(i)
        return image, target

    def _check_canvas(self, i: int, canvas: tuple[int, int]) -> tuple[int, int]:
        """``canvas`` as ints, refused over ``max_canvas_pixels`` (naming its source)."""
        a, page, _ = (int(v) for v in self._samples[i])
        canvas = (int(canvas[0]), int(canvas[1]))
        idx = self.export.index
        name = idx.string(idx.asset_external_id[a])
        declared = page < 0 and (int(idx.asset_height[a]), int(idx.asset_width[a])) == canvas
        field = "metadata.width/height" if declared else None
        return check_canvas(
            canvas,
            self._limits,
            label=where(asset=name, index=a, field=field),
            what="declared size" if declared else "image size",
        )

    def _instance_target(
        self, inst: Instances, canvas: tuple[int, int], image: Any = None
    ) -> tuple[Any, dict[str, Any]]:
        # Every tensor of the target is a view of one buffer (shared memory in a worker):
        # the main process maps one segment per target, not one per tensor. In a worker,
        # the image joins it (the DataLoader would copy it into shared memory anyway).
        n, instance = len(inst), self.task == "instance"
        packed = instance and self.masks == "packed" and self.transforms is None
        specs = [((n,), torch.int64), ((n,), torch.int64), ((n, 4), torch.float32)]
        specs += [((n,), torch.float32)]
        carry = image is not None and torch.utils.data.get_worker_info() is not None
        if carry:
            specs.append((tuple(image.permute(1, 2, 0).shape), torch.uint8))  # HWC pixels
        if packed:  # the crops only: no full canvas is ever built
            masks, views = pack_crops(inst.crops, inst.offsets, canvas, extra=specs)
        else:
            views = shared_views([*specs, ((n, *canvas), torch.uint8)] if instance else specs)
        labels, iscrowd, boxes, area = views[:4]  # iscrowd stays zero
        if carry:
            views[4].copy_(image.permute(1, 2, 0))
            image = tv_tensors.Image(views[4].permute(2, 0, 1))
        labels.numpy()[:] = inst.labels
        boxes.numpy()[:] = inst.boxes.reshape(-1, 4)
        # detection: box areas; instance: mask pixels (brush components included)
        area.numpy()[:] = inst.areas(masks=instance)
        target: dict[str, Any] = {
            "boxes": tv_tensors.BoundingBoxes(
                boxes, format=tv_tensors.BoundingBoxFormat.XYXY, canvas_size=canvas
            ),
            "labels": labels,
        }
        if packed:
            target["masks"] = masks
        elif instance:
            inst.masks(canvas, out=views[-1].numpy())
            target["masks"] = tv_tensors.Mask(views[-1])
        target["area"] = area
        target["iscrowd"] = iscrowd
        return image, target

    def _attributes(self, i: int, rows: npt.NDArray[np.int64]) -> list[dict[str, Any]]:
        idx = self.export.index
        listed = rows.tolist()
        found = idx.object_classifications(self.asset_index(i), [r for r in listed if r >= 0])
        answers = iter(found)
        out = []
        for row in listed:
            flat: dict[str, Any] = {}
            if row >= 0:
                for c in next(answers):
                    flat.update(c.flat())
            out.append(flat)
        return out

    def _image_classifications(self, i: int) -> dict[str, Any]:
        a, frame, s = (int(v) for v in self._samples[i])
        if self._video.is_video[a]:  # those in force on this frame
            return self._video.classifications(s, frame)
        flat: dict[str, Any] = {}
        for c in self.export.index.snapshot_classifications(s):
            flat.update(c.flat())
        return flat

    def __getitem__(self, i: int) -> tuple[Any, dict[str, Any]]:
        i = self._check(int(i))
        try:
            image = self.load_image(i)
        except AssetFetchError:
            raise
        except AngoTorchError as exc:  # pragma: no cover - decode errors already name it
            raise AssetFetchError(f"{self._label(i)}: {exc}") from exc
        h, w = image.shape[-2:]
        self._check_size(i, h, w)
        carried, target = self._target(i, (h, w), image if self.transforms is None else None)
        image = image if carried is None else carried  # the copy in the target's buffer
        if self.transforms is not None and self.masks == "packed":
            image, target = self.transforms(image, target)  # they see full masks
            return image, pack_target(target)
        if self.transforms is not None:
            return self.transforms(image, target)
        return image, target
