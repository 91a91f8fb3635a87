"""Which objects and samples a dataset has: object labels, drops and the sample list.

Vectorized over the index's object columns (no Python loop per object), and every
object left out is counted in a :class:`DatasetReport` by reason.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ..export.index import ExportIndex
from ..records import ToolKind
from .classes import ClassMap, task_kinds

__all__ = [
    "PAGE_OUTSIDE",
    "RUNTIME_COUNTERS",
    "VIDEO",
    "DatasetReport",
    "build_samples",
    "object_labels",
    "selected_objects",
    "skip_videos",
    "transposed_hint",
    "unplaced_brush",
    "video_assets",
]

PAGE_OUTSIDE = "page outside the asset"
"""Report reason of objects whose ``page`` is not one of the asset's pages."""
VIDEO = "video asset (not supported yet)"
"""Report reason of video assets (and their objects), skipped at construction."""
RUNTIME_COUNTERS = (
    "empty_after_clipping",
    "brush_inexact_pixels",
    "brush_resized",
    "brush_unlisted_pixels",
    "brush_excluded_pixels",
)
"""Report counters found while loading samples (complete after ``AngoDataset.audit``)."""
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v")
_VIDEO_KEYS = ("frameTotal", "frameRate")


@dataclass
class DatasetReport:
    """What the dataset left out, and why: nothing is dropped silently.

    ``skipped_assets``: ``(index, name, reason)`` of assets without a sample (unreadable
    under ``on_error="skip"``, or lacking the selected stage).  ``dropped_objects``:
    objects of the selected snapshots that give no instance, by reason.  The runtime
    counters (``empty_after_clipping``, ``brush_inexact_pixels``,
    ``brush_resized``) count what this process has seen in ``__getitem__``; DataLoader
    workers keep their own.  ``empty_after_clipping`` counts objects (every task) whose
    box (detection) or mask (instance, semantic) is empty in the image, once per sample
    however often it is loaded (``empty_by_sample``: sample index → count).
    ``brush_unplaced``: multi-page assets whose brush mask was left out (Ango keeps one
    brush PNG per task, not per page, so no page is known to be its own).
    Brush pixels (counted once per sample): ``brush_inexact_pixels`` took a class
    colour within the tolerance but not equal to it; ``brush_unlisted_pixels`` were
    near no known colour (``brush_unlisted_colors``: ``"#rrggbb"`` → pixels);
    ``brush_excluded_pixels`` are of brush classes left out by ``classes=``
    (``brush_excluded_classes``: title → pixels).  Both became 255 in semantic masks
    (0 with ``brush_unlisted="background"``) and no instance.
    ``filtered_assets``: assets left out on purpose by ``batches=``/``where=``, by
    reason (no warning); ``filtered_objects``: the objects of their selected snapshots.
    ``unlisted_skipped``: unreadable assets beyond the ``limits.max_skipped`` listed in
    ``skipped_assets`` (:attr:`skipped_count` counts them all).
    ``video_metadata``: ``(index, name, what)`` of each video whose
    ``metadata.frameTotal``/``frameRate`` disagrees with its decoder (found when the
    video is first opened, in this process), saying which value was used.

    Construction-time counts (assets, dropped/ignored/filtered objects, brush_unplaced)
    are complete.  The runtime counters (:data:`RUNTIME_COUNTERS`) are complete only once
    ``runtime_complete`` is true: :meth:`AngoDataset.audit
    <ango_torch.AngoDataset.audit>` computes them for every sample (no image decoding);
    until then they cover the samples this process loaded, and :meth:`summary` says so.
    """

    skipped_assets: list[tuple[int, str | None, str]] = field(default_factory=list)
    dropped_objects: Counter[str] = field(default_factory=Counter)
    ignored_objects: Counter[str] = field(default_factory=Counter)
    empty_after_clipping: int = 0
    brush_inexact_pixels: int = 0
    brush_resized: int = 0
    empty_by_sample: dict[int, int] = field(default_factory=dict)
    brush_unplaced: int = 0
    brush_unlisted_pixels: int = 0
    brush_unlisted_colors: Counter[str] = field(default_factory=Counter)
    brush_excluded_pixels: int = 0
    brush_excluded_classes: Counter[str] = field(default_factory=Counter)
    filtered_assets: Counter[str] = field(default_factory=Counter)
    filtered_objects: int = 0
    unlisted_skipped: int = 0
    runtime_complete: bool = False
    video_metadata: list[tuple[int, str | None, str]] = field(default_factory=list)

    @property
    def skipped_count(self) -> int:
        """Every skipped asset: those listed in ``skipped_assets`` and the unlisted rest."""
        return len(self.skipped_assets) + self.unlisted_skipped

    def summary(self, *, runtime_note: bool = True) -> str:
        """One line per non-zero count; while the runtime counters are not complete (see
        above), a line saying so instead of "nothing skipped or dropped" (``runtime_note``
        false leaves it out: construction's own warning)."""
        lines = []
        if self.skipped_count:
            reasons = Counter(r.split(":")[0] for _, _, r in self.skipped_assets)
            if self.unlisted_skipped:
                reasons["unreadable"] += self.unlisted_skipped
            lines.append(f"{self.skipped_count} assets skipped ({dict(reasons)})")
        if self.dropped_objects:
            lines.append(f"objects dropped: {dict(self.dropped_objects)}")
        if self.ignored_objects:
            lines.append(f"objects not used by this task: {dict(self.ignored_objects)}")
        for name in (
            "empty_after_clipping",
            "brush_inexact_pixels",
            "brush_resized",
            "brush_unplaced",
        ):
            if getattr(self, name):
                lines.append(f"{name.replace('_', ' ')}: {getattr(self, name)}")
        if self.brush_unlisted_pixels:
            lines.append(
                f"brush unlisted pixels: {self.brush_unlisted_pixels} "
                f"{dict(self.brush_unlisted_colors.most_common(10))}"
            )
        if self.brush_excluded_pixels:
            lines.append(
                f"brush excluded pixels: {self.brush_excluded_pixels} "
                f"{dict(self.brush_excluded_classes)}"
            )
        for _, video, what in self.video_metadata:
            lines.append(f"video metadata of {video}: {what}")
        if self.filtered_assets:
            lines.append(
                f"assets filtered out: {dict(self.filtered_assets)} "
                f"({self.filtered_objects} objects)"
            )
        if runtime_note and not self.runtime_complete:
            lines.append(
                "runtime counts (empty after clipping, brush pixels) cover only the samples "
                "this process loaded (not DataLoader workers'): ds.audit() completes them"
            )
            return "\n".join(lines)
        return "\n".join(lines) or "nothing skipped or dropped"

    def count_empty(self, sample: int, n: int) -> None:
        """Record that sample ``sample`` has ``n`` objects with an empty box or mask.

        Idempotent per sample: loading a sample again (next epoch) does not count twice.
        """
        old = self.empty_by_sample.get(sample, 0)
        if n or old:
            self.empty_by_sample[sample] = n
            self.empty_after_clipping += n - old


def selected_objects(
    index: ExportIndex, snapshot_rows: npt.NDArray[np.int32]
) -> npt.NDArray[np.bool_]:
    """Mask over the index's object rows: those of the selected snapshots
    (:meth:`~ango_torch.export.index.ExportIndex.snapshot_objects`)."""
    return index.snapshot_objects(snapshot_rows)


def object_labels(
    index: ExportIndex,
    selected: npt.NDArray[np.bool_],
    class_map: ClassMap,
    *,
    task: str,
    report: DatasetReport,
) -> npt.NDArray[np.int64]:
    """Label of every object row of the index (``-1``: not an instance here).

    Counts in ``report`` the selected objects the task does not use (by tool, or of
    other classes) and those dropped: degenerate geometry (fewer than 3 points in every
    outer ring, or a flat box), a ``page`` the multi-page asset does not have, and
    shapes entirely outside the image.
    """
    idx = index
    title_label = class_map.label_of_titles(idx.titles)
    labels = np.where(selected, title_label[idx.obj_title] if len(idx.obj_title) else -1, -1)
    kinds = idx.obj_kind
    used_kind = np.isin(kinds, [int(k) for k in task_kinds(task)])
    for k, n in Counter(kinds[selected & ~used_kind].tolist()).items():
        report.ignored_objects[ToolKind(k).key] += n
    labels[~used_kind] = -1
    other = selected & used_kind & (labels < 0)
    if other.any():
        report.ignored_objects["other classes"] += int(other.sum())
    ring_len = np.diff(idx.ring_vert)
    outer_len = np.where(idx.ring_hole, 0, ring_len)
    starts = idx.obj_ring_start
    has_rings = starts[1:] > starts[:-1]
    best = np.zeros(len(kinds), np.int64)
    if has_rings.any():
        best[has_rings] = np.maximum.reduceat(outer_len, starts[:-1][has_rings])
    box = idx.obj_bbox
    flat = ~((box[:, 2] > box[:, 0]) & (box[:, 3] > box[:, 1]))
    degenerate = (has_rings & (best < 3)) | flat
    asset_of = np.repeat(idx.snap_asset, idx.snap_obj_end - idx.snap_obj_start)
    w = idx.asset_width[asset_of] if len(asset_of) else np.zeros(0, np.int32)
    h = idx.asset_height[asset_of] if len(asset_of) else np.zeros(0, np.int32)
    known = (w > 0) & (h > 0)
    # Outside the metadata canvas and its transpose: an EXIF-rotated photo's export may
    # give its stored size while its annotations are drawn on the displayed one; which
    # one it is is known only from the file, so construction keeps what fits either
    # (an object outside the decoded image is then counted as empty after clipping).
    outside = known & _outside(box, w, h) & _outside(box, h, w)
    n_pages = (idx.asset_page_end - idx.asset_page_start)[asset_of]
    # a single-image asset has one page, 0 (an absent page reads as -1)
    off_page = idx.obj_page >= np.maximum(n_pages, 1)
    if off_page.any():  # a video's page is a frame index, checked against the decoder
        off_page &= ~video_assets(idx)[asset_of]
    for name, bad in (
        ("degenerate geometry", degenerate),
        (PAGE_OUTSIDE, off_page),
        ("outside the image", outside),
    ):
        live = labels >= 0
        n = int((live & bad).sum())
        if n:
            report.dropped_objects[name] += n
            labels[live & bad] = -1
    return labels.astype(np.int64)


def _outside(
    box: npt.NDArray[np.float32], w: npt.NDArray[np.int32], h: npt.NDArray[np.int32]
) -> npt.NDArray[np.bool_]:
    return (box[:, 0] >= w) | (box[:, 1] >= h) | (box[:, 2] <= 0) | (box[:, 3] <= 0)


def transposed_hint(index: ExportIndex) -> npt.NDArray[np.bool_]:
    """Which assets have an object entirely outside their metadata canvas ``(W, H)`` but
    not outside the transposed canvas ``(H, W)`` (the objects :func:`object_labels` keeps
    for that reason): a hint that the metadata is an EXIF-rotated photo's stored size, so
    that its displayed size must be read from the file's header
    (:meth:`AngoDataset.get_height_and_width <ango_torch.AngoDataset.get_height_and_width>`).
    Objects that merely overhang the canvas give no hint (they are common, and reading
    every such image's header would make ``to_coco`` fetch images)."""
    idx = index
    out = np.zeros(len(idx), bool)
    asset_of = np.repeat(idx.snap_asset, idx.snap_obj_end - idx.snap_obj_start)
    if not len(asset_of):
        return out
    w, h = idx.asset_width[asset_of], idx.asset_height[asset_of]
    box = idx.obj_bbox
    known = (w > 0) & (h > 0) & (w != h)
    hint = known & _outside(box, w, h) & ~_outside(box, h, w)
    out[np.unique(asset_of[hint])] = True
    return out


_VIDEO_NAME = re.compile(b"|".join(re.escape(e.encode()) for e in VIDEO_EXTENSIONS), re.IGNORECASE)
_VIDEO_KEY = re.compile(b"|".join(k.encode() for k in _VIDEO_KEYS))


def _holds(blob: npt.NDArray[np.uint8], pattern: re.Pattern[bytes]) -> bool:
    """Whether ``pattern`` occurs in a table's bytes (searched in place: ~3x faster than
    copying them to search for each needle, on the benchmark's 28 MiB of extras)."""
    return pattern.search(blob) is not None  # type: ignore[call-overload]


def video_assets(index: ExportIndex) -> npt.NDArray[np.bool_]:
    """Which assets are videos: ``frameTotal``/``frameRate`` in their metadata, or a
    video file extension (:data:`VIDEO_EXTENSIONS`) on their URL or externalId."""
    idx = index
    out = np.zeros(len(idx), bool)
    # One look at each whole table first (in C): an export none of whose strings holds
    # a video extension, and none of whose extras a video key, has no video (a loop
    # over the assets was ~5% of indexing an image export, issue 14).
    # (Non-ASCII names are left to the loop: str.lower() folds some of them into ASCII,
    # e.g. the Kelvin sign into "k", which a bytes pattern does not; found by review.)
    blob = idx.strings.blob
    by_name = _holds(blob, _VIDEO_NAME) or bool((blob >= 0x80).any())
    by_meta = _holds(idx.extras.blob, _VIDEO_KEY)
    if not by_name and not by_meta:
        return out
    for a in range(len(idx)):
        names = (idx.string(idx.asset_url[a]), idx.string(idx.asset_external_id[a]))
        if by_name and any(n and n.split("?")[0].lower().endswith(VIDEO_EXTENSIONS) for n in names):
            out[a] = True
            continue
        raw = idx.extras.raw(int(idx.asset_extra[a])) if by_meta else b""
        if any(k.encode() in raw for k in _VIDEO_KEYS):  # cheap test before decoding
            meta = idx.extra(int(idx.asset_extra[a])).get("m") or {}
            out[a] = isinstance(meta, dict) and any(k in meta for k in _VIDEO_KEYS)
    return out


def skip_videos(
    index: ExportIndex, snapshot_rows: npt.NDArray[np.int32], report: DatasetReport
) -> npt.NDArray[np.int32]:
    """``snapshot_rows`` with video assets set to ``-1``, each counted in ``report``.

    A video asset is listed in ``skipped_assets`` and its selected snapshot's objects in
    ``dropped_objects[VIDEO]`` (until video is supported, one sample would merge every
    frame's objects and fail to decode).
    """
    idx = index
    rows: npt.NDArray[np.int32] = np.array(snapshot_rows, np.int32)
    for a in np.flatnonzero(video_assets(idx) & (rows >= 0)).tolist():
        s = int(rows[a])
        report.skipped_assets.append((a, idx.string(idx.asset_external_id[a]), VIDEO))
        n = int(idx.snap_obj_end[s] - idx.snap_obj_start[s])
        if n:
            report.dropped_objects[VIDEO] += n
        rows[a] = -1
    return rows


def unplaced_brush(index: ExportIndex, snapshot_rows: npt.NDArray[np.int32]) -> int:
    """Multi-page and video assets whose selected snapshot has a brush mask.

    Ango keeps one brush PNG per task, not per page or frame: which one it was painted
    on is unknown, so it is applied to none (rather than guessed) and counted.
    """
    idx = index
    a = np.flatnonzero(snapshot_rows >= 0)
    paged = (idx.asset_page_end[a] > idx.asset_page_start[a]) | video_assets(idx)[a]
    return int((paged & (idx.snap_brush[snapshot_rows[a]] >= 0)).sum())


def build_samples(
    index: ExportIndex, snapshot_rows: npt.NDArray[np.int32]
) -> npt.NDArray[np.int32]:
    """``[S, 3]`` rows of ``(asset, page or -1, snapshot row)`` in export order.

    One sample per asset; a multi-page asset gives one per annotated page, in order.
    """
    idx = index
    assets = np.flatnonzero(snapshot_rows >= 0)
    paged = idx.asset_page_end[assets] > idx.asset_page_start[assets]
    if not paged.any():  # one row per asset, without a Python tuple per asset
        rows = np.full((len(assets), 3), -1, np.int32)
        rows[:, 0], rows[:, 2] = assets, snapshot_rows[assets]
        return rows
    out: list[tuple[int, int, int]] = []
    for a in assets.tolist():
        s = int(snapshot_rows[a])
        n_pages = int(idx.asset_page_end[a] - idx.asset_page_start[a])
        if n_pages == 0:
            out.append((a, -1, s))
            continue
        o0, o1 = int(idx.snap_obj_start[s]), int(idx.snap_obj_end[s])
        pages = np.unique(np.maximum(idx.obj_page[o0:o1], 0))
        out.extend((a, int(p), s) for p in pages.tolist() if p < n_pages)
    return np.array(out, np.int32).reshape(-1, 3)
