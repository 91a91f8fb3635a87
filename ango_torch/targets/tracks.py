"""Video tracks and key-frame interpolation, from the index's columns (numpy, no IO).

A video's ``tools[]`` hold one entry per object per frame: ``objectId`` is the track,
``page`` the 0-based frame, ``interpolationStopped`` ends the track on that frame.
:func:`asset_tracks` turns one snapshot's object rows into a :class:`Tracks` (entries
sorted by ``(track, frame)``); :func:`frame_entries` says which instances a frame has:
key entries (an entry on that frame) and, with interpolation, entries between two key
entries of a track (linear in the frame index).  Geometry rules
(:func:`interpolated_boxes`, :func:`interpolated_ring`): boxes and points lerp their
corners; polygons with equal vertex counts lerp their vertices; rotated boxes lerp
centre and sides and turn the shorter way round; polygons with unequal vertex counts
are matched by arc length (:func:`arc_length_match`) then lerped; segmentation holds
the earlier key frame's geometry.  A track ends at its
last entry (no extrapolation) or at an entry with ``interpolationStopped`` (absent
from that frame on, until a later entry restarts it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..export.index import ExportIndex
from ..export.object_rows import object_ids
from ..records import ToolKind

__all__ = [
    "FrameEntries",
    "Tracks",
    "arc_length_match",
    "asset_tracks",
    "frame_entries",
    "interpolated_boxes",
]

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Tracks:
    """The tracks of one snapshot of a video asset.

    Attributes:
        rows: ``int64 [E]`` object rows, sorted by ``(track, frame)``.
        track: ``int64 [E]`` track number (``ids[track]`` is its objectId).
        frame: ``int64 [E]`` frame index of each entry.
        stopped: ``bool [E]`` ``interpolationStopped``.
        ids: objectId of each track, in order of first appearance.
        duplicates: rows of entries sharing ``(objectId, frame)`` with a later one
            (the last in export order wins; these are left out).
        unplaced: rows of entries without a ``page`` (never placed on a frame).
        sparse: some track has a frame gap between two live entries (key frames only).
    """

    rows: I64
    track: I64
    frame: I64
    stopped: npt.NDArray[np.bool_]
    ids: tuple[str, ...]
    duplicates: I64
    unplaced: I64
    sparse: bool

    def __len__(self) -> int:
        return len(self.rows)

    def annotated_frames(self, *, interpolate: bool) -> I64:
        """Sorted frames with at least one instance (key, or interpolated if asked)."""
        live = ~self.stopped
        frames = [self.frame[live]]
        if interpolate and len(self.rows) > 1:
            same = self.track[1:] == self.track[:-1]
            gap = np.flatnonzero(same & live[:-1] & (self.frame[1:] > self.frame[:-1] + 1))
            frames += [np.arange(self.frame[j] + 1, self.frame[j + 1]) for j in gap.tolist()]
        return np.unique(np.concatenate(frames)).astype(np.int64)


def asset_tracks(index: ExportIndex, asset: int, rows: npt.NDArray[np.int64]) -> Tracks:
    """The :class:`Tracks` of object ``rows`` (one snapshot) of video ``asset``."""
    idx = index
    rows = np.asarray(rows, np.int64)
    first = idx.first_object(asset) if len(rows) else 0
    codes, names, stops = object_ids(idx, asset)
    rel = rows - first
    known = rel < len(codes)  # rows past the asset's extras: objectId "" (as before)
    oid_code = np.where(known, codes[np.minimum(rel, max(len(codes) - 1, 0))], -1)
    stop = np.where(known, stops[np.minimum(rel, max(len(stops) - 1, 0))], False)
    page = idx.obj_page[rows].astype(np.int64)
    placed = page >= 0
    _, first_seen, inverse = np.unique(oid_code, return_index=True, return_inverse=True)
    order = np.argsort(first_seen)  # track numbers in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    track = rank[inverse].astype(np.int64).reshape(-1)
    ids = [names[c] if c >= 0 else "" for c in oid_code[first_seen[order]].tolist()]
    keep = np.flatnonzero(placed)
    sort = keep[np.lexsort((np.arange(len(keep)), page[keep], track[keep]))]
    t, f = track[sort], page[sort]
    dup = (t[1:] == t[:-1]) & (f[1:] == f[:-1]) if len(sort) > 1 else np.zeros(0, bool)
    last = np.ones(len(sort), bool)
    last[:-1] = ~dup  # of duplicates, the last entry (in export order) wins
    sort_all = sort
    sort, t, f = sort[last], t[last], f[last]
    s = stop[sort]
    same = t[1:] == t[:-1]
    sparse = bool((same & ~s[:-1] & (f[1:] > f[:-1] + 1)).any())
    return Tracks(
        rows=rows[sort],
        track=t,
        frame=f,
        stopped=s,
        ids=tuple(ids),
        duplicates=rows[sort_all[:-1][dup]] if len(sort_all) > 1 else rows[:0],
        unplaced=rows[~placed],
        sparse=sparse,
    )


@dataclass(frozen=True, slots=True)
class FrameEntries:
    """The instances of one frame.

    Attributes:
        rows: ``int64 [N]`` object row of each instance (the earlier key entry when
            interpolated).
        next_rows: ``int64 [N]`` the later key entry (``-1`` for a key instance).
        t: ``float64 [N]`` position between the two (0 for a key instance).
        track: ``int64 [N]`` track numbers.
        keyframe: ``bool [N]``.
    """

    rows: I64
    next_rows: I64
    t: npt.NDArray[np.float64]
    track: I64
    keyframe: npt.NDArray[np.bool_]


def frame_entries(tracks: Tracks, frame: int, *, interpolate: bool) -> FrameEntries:
    """The instances of ``frame``: one per live track, in track order."""
    tr = tracks
    n_tracks = len(tr.ids)
    big = int(tr.frame.max(initial=0)) + int(frame) + 2
    keys = tr.track * big + tr.frame
    want = np.arange(n_tracks, dtype=np.int64) * big + int(frame)
    j = np.searchsorted(keys, want, side="right") - 1
    ok = j >= 0
    ok[ok] &= tr.track[j[ok]] == np.arange(n_tracks)[ok]
    k, j = np.flatnonzero(ok), j[ok]
    live = ~tr.stopped[j]
    key = live & (tr.frame[j] == frame)
    nxt = j + 1
    has_next = nxt < len(tr.rows)
    has_next[has_next] &= tr.track[nxt[has_next]] == k[has_next]
    mid = live & ~key & has_next & bool(interpolate)
    use = key | mid
    j, k, key = j[use], k[use], key[use]
    nxt = np.where(key, -1, j + 1)
    f0 = tr.frame[j].astype(np.float64)
    f1 = np.where(key, f0 + 1, tr.frame[np.maximum(nxt, 0)]).astype(np.float64)
    t = np.where(key, 0.0, (frame - f0) / np.maximum(f1 - f0, 1))
    return FrameEntries(
        rows=tr.rows[j],
        next_rows=np.where(key, -1, tr.rows[np.maximum(nxt, 0)]).astype(np.int64),
        t=t,
        track=k.astype(np.int64),
        keyframe=key,
    )


def _normalized(b: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    f = b.astype(np.float64).reshape(-1, 4)
    return np.stack(
        [
            np.minimum(f[:, 0], f[:, 2]),
            np.minimum(f[:, 1], f[:, 3]),
            np.maximum(f[:, 0], f[:, 2]),
            np.maximum(f[:, 1], f[:, 3]),
        ],
        axis=1,
    )


def interpolated_boxes(index: ExportIndex, entries: FrameEntries) -> npt.NDArray[np.float32]:
    """``float32 [N, 4]`` XYXY boxes of ``entries`` (unclipped).

    Key instances keep their box; interpolated boxes lerp the two key boxes' corners,
    except where :func:`interpolated_ring` lerps vertices (equal-count polygons and
    rotated boxes: the box of the interpolated ring) or holds the earlier geometry.
    """
    a = _normalized(index.obj_bbox[entries.rows])
    b = _normalized(index.obj_bbox[np.maximum(entries.next_rows, 0)])
    t = entries.t[:, None]
    out = np.where(entries.keyframe[:, None], a, a + (b - a) * t)
    for n in np.flatnonzero(~entries.keyframe).tolist():
        ring = interpolated_ring(index, entries, n)
        if ring is not None and len(ring):
            out[n] = [ring[:, 0].min(), ring[:, 1].min(), ring[:, 0].max(), ring[:, 1].max()]
        elif not _lerps(index, int(entries.rows[n]), int(entries.next_rows[n])):
            out[n] = a[n]  # held: kinds that change shape between key frames
    return out.astype(np.float32).reshape(-1, 4)


def _lerps(index: ExportIndex, ra: int, rb: int) -> bool:
    ka, kb = int(index.obj_kind[ra]), int(index.obj_kind[rb])
    return ka == kb and ka in (ToolKind.BOUNDING_BOX, ToolKind.POINT)


def interpolated_ring(
    index: ExportIndex, entries: FrameEntries, n: int
) -> npt.NDArray[np.float32] | None:
    """The outline of interpolated instance ``n`` (polygon or rotated box), else ``None``.

    Equal vertex counts lerp vertex by vertex; unequal counts are matched by
    :func:`arc_length_match` first.
    """
    ra, rb = int(entries.rows[n]), int(entries.next_rows[n])
    kind = int(index.obj_kind[ra])
    if kind not in (ToolKind.POLYGON, ToolKind.ROTATED_BOUNDING_BOX):
        return None
    ring_a = index.rings(ra)[0][0] if index.rings(ra) else np.zeros((0, 2), np.float32)
    if rb < 0 or int(index.obj_kind[rb]) != kind:
        return ring_a
    rings_b = index.rings(rb)
    if not rings_b or not len(ring_a) or not len(rings_b[0][0]):
        return ring_a
    t = float(entries.t[n])
    ring_b = rings_b[0][0]
    if kind == ToolKind.ROTATED_BOUNDING_BOX and len(ring_a) == len(ring_b) == 4:
        return _rotated_lerp(ring_a, ring_b, t)
    if len(ring_b) != len(ring_a):
        fa, fb = arc_length_match(ring_a, ring_b)
        return np.asarray(fa + (fb - fa) * t, np.float32)
    return np.asarray(ring_a + (ring_b - ring_a) * t, np.float32)


def _arc_params(ring: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``[n + 1]`` cumulative outline length at each vertex (closing edge included),
    as a fraction of the perimeter (evenly spaced for a ring of no length)."""
    closed = np.vstack([ring, ring[:1]])
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(closed, axis=0).T))])
    if cum[-1] <= 0:
        return np.linspace(0.0, 1.0, len(closed))
    return np.asarray(cum / cum[-1], np.float64)


def _resample(ring: npt.NDArray[np.float64], s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The points of ``ring`` at outline fractions ``s`` (linear along its edges)."""
    closed = np.vstack([ring, ring[:1]])
    cum = _arc_params(ring)
    return np.stack([np.interp(s, cum, closed[:, 0]), np.interp(s, cum, closed[:, 1])], axis=1)


def arc_length_match(
    a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Rings ``a`` and ``b`` (``[n, 2]``, ``[m, 2]``) resampled to one vertex count
    (CVAT's approach for polygons of unequal counts).

    ``b`` is turned to ``a``'s winding and rotated to start at its vertex closest to
    ``a[0]``; both are then sampled at the union of their vertices' outline fractions
    (arc length from the start over the perimeter), so every vertex of either ring is
    kept and the two are matched point by point for linear interpolation.
    """
    fa, fb = a.astype(np.float64), b.astype(np.float64)

    def area2(r: npt.NDArray[np.float64]) -> float:
        return float(np.sum(r[:, 0] * np.roll(r[:, 1], -1) - np.roll(r[:, 0], -1) * r[:, 1]))

    if area2(fa) * area2(fb) < 0:
        fb = fb[::-1]
    fb = np.roll(fb, -int(np.argmin(np.hypot(*(fb - fa[0]).T))), axis=0)
    s = np.unique(np.concatenate([_arc_params(fa)[:-1], _arc_params(fb)[:-1]]))
    return _resample(fa, s), _resample(fb, s)


def _rotated_lerp(
    a: npt.NDArray[np.float32], b: npt.NDArray[np.float32], t: float
) -> npt.NDArray[np.float32]:
    """Corners of a rotated box between corners ``a`` and ``b`` (``[4, 2]`` in drawing
    order): centre and side lengths linear, the angle of the first side turned the
    shorter way round."""

    def parts(c: npt.NDArray[np.float32]) -> tuple[np.ndarray, float, float, float, float]:
        c = c.astype(np.float64)
        e1, e2 = c[1] - c[0], c[2] - c[1]
        side = 1.0 if e1[0] * e2[1] - e1[1] * e2[0] >= 0 else -1.0
        angle = float(np.arctan2(e1[1], e1[0]))
        return c.mean(axis=0), float(np.hypot(*e1)), float(np.hypot(*e2)), angle, side

    ca, wa, ha, ta, sa = parts(a)
    cb, wb, hb, tb, _ = parts(b)
    turn = (tb - ta + np.pi) % (2 * np.pi) - np.pi
    centre, w, h = ca + (cb - ca) * t, wa + (wb - wa) * t, ha + (hb - ha) * t
    angle = ta + turn * t
    u = np.array([np.cos(angle), np.sin(angle)])
    v = sa * np.array([-np.sin(angle), np.cos(angle)])
    c0 = centre - u * w / 2 - v * h / 2
    return np.asarray([c0, c0 + u * w, c0 + u * w + v * h, c0 + v * h], np.float32)
