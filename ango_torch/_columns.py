"""Raw asset dict → index columns, fast: the parser's bulk path.

Indexing a large export must not build a Python record per annotation.  This module
reads the common, well-formed shapes straight into flat per-asset lists (one numpy
conversion per asset for all its vertices).  Anything unusual (a quirk, a wrong type,
a non-finite number) makes it give up on that asset, and the asset goes through the
full parser (:func:`ango_torch._parse.parse_asset`), which either accepts the quirk or
raises an error naming the asset, object and field; :func:`from_record` then turns the
records into the same columns.  Both paths are tested to produce identical columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ._parse import ENVELOPE_KEYS, parse_asset
from ._tables import class_raw, meta_raw, relation_raw
from .records import (
    Asset,
    BoundingBox,
    Ner,
    OtherGeometry,
    Pdf,
    Point,
    Polygon,
    Polyline,
    RotatedBox,
    Segmentation,
    Snapshot,
    ToolKind,
)

__all__ = ["AssetColumns", "asset_columns", "from_record"]

NAN = math.nan
_BOX, _ROT, _POLY, _LINE, _PT, _SEG = (
    int(ToolKind.BOUNDING_BOX),
    int(ToolKind.ROTATED_BOUNDING_BOX),
    int(ToolKind.POLYGON),
    int(ToolKind.POLYLINE),
    int(ToolKind.POINT),
    int(ToolKind.SEGMENTATION),
)
_NUM = (int, float)


@dataclass(slots=True)
class AssetColumns:
    """One asset as index columns (before they are appended to the index).

    ``snaps`` rows are ``(stage, stage_id, brush, medical_brush, n_objects, extra)``;
    ``obj_extra`` rows are ``[objectId, schemaId, classifications, metadata,
    geometry extra, interpolationStopped]`` in the export's raw form.
    """

    asset_id: str
    external_id: str
    url: str | None
    width: int
    height: int
    pages: list[str]
    extra: dict[str, Any]
    snaps: list[tuple[Any, ...]] = field(default_factory=list)
    kinds: list[int] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    opages: list[int] = field(default_factory=list)
    bbox: list[float] = field(default_factory=list)
    obj_rings: list[int] = field(default_factory=list)
    ring_len: list[int] = field(default_factory=list)
    ring_zone: list[int] = field(default_factory=list)
    ring_hole: list[bool] = field(default_factory=list)
    verts: npt.NDArray[np.float32] | None = None
    obj_extra: list[list[Any]] = field(default_factory=list)


class _GiveUp(Exception):
    """The fast path does not handle this asset; use the full parser."""


def _ring_pts(value: Any, pts: list[Any], cols: AssetColumns, zone: int, hole: bool) -> None:
    if type(value) is not list or not value:
        raise _GiveUp
    pts.extend(value)
    cols.ring_len.append(len(value))
    cols.ring_zone.append(zone)
    cols.ring_hole.append(hole)


def _snapshot(raw: Any, cols: AssetColumns, pts: list[Any], tools_key: str) -> None:
    if type(raw) is not dict:
        raise _GiveUp
    tools = raw.get(tools_key)
    if tools is None:
        tools = []
    elif type(tools) is not list:
        raise _GiveUp
    kinds, titles, opages, bbox = cols.kinds, cols.titles, cols.opages, cols.bbox
    obj_rings, obj_extra = cols.obj_rings, cols.obj_extra
    for t in tools:
        if type(t) is not dict:
            raise _GiveUp
        oid, title = t.get("objectId"), t.get("title")
        if type(oid) is not str or not oid or type(title) is not str:
            raise _GiveUp
        page = t.get("page")
        if page is not None and type(page) is not int:
            raise _GiveUp
        n_rings = len(cols.ring_len)
        gx: Any = None
        if "bounding-box" in t:
            b = t["bounding-box"]
            if type(b) is not dict:
                raise _GiveUp
            x: Any = b.get("x")
            y: Any = b.get("y")
            w: Any = b.get("width")
            h: Any = b.get("height")
            if (
                type(x) not in _NUM
                or type(y) not in _NUM
                or type(w) not in _NUM
                or type(h) not in _NUM
            ):
                raise _GiveUp
            if w < 0:
                x, w = x + w, -w
            if h < 0:
                y, h = y + h, -h
            kind = _BOX
            bbox += (x, y, x + w, y + h)
        elif "polygon" in t:
            kind = _POLY
            _ring_pts(t["polygon"], pts, cols, 0, False)
            bbox += (NAN, NAN, NAN, NAN)
        elif "segmentation" in t:
            kind = _SEG
            s = t["segmentation"]
            zones = s.get("zones") if type(s) is dict else None
            if type(zones) is not list or not zones:
                raise _GiveUp
            for z, zone in enumerate(zones):
                if type(zone) is not dict:
                    raise _GiveUp
                _ring_pts(zone.get("region"), pts, cols, z, False)
                holes = zone.get("holes")
                if holes:
                    if type(holes) is not list or type(holes[0]) is not list:
                        raise _GiveUp
                    if holes[0] and type(holes[0][0]) is not list:
                        raise _GiveUp  # a flat hole ring: the parser's quirk
                    for hring in holes:
                        _ring_pts(hring, pts, cols, z, True)
            bbox += (NAN, NAN, NAN, NAN)
        elif "point" in t:
            p = t["point"]
            if (
                type(p) is not list
                or len(p) < 2
                or type(p[0]) not in _NUM
                or type(p[1]) not in _NUM
            ):
                raise _GiveUp
            kind = _PT
            bbox += (p[0], p[1], p[0], p[1])
        elif "rotated-bounding-box" in t:
            r = t["rotated-bounding-box"]
            if type(r) is not dict or type(r.get("corners")) is not list or len(r["corners"]) != 4:
                raise _GiveUp
            kind = _ROT
            _ring_pts(r["corners"], pts, cols, 0, False)
            bbox += (NAN, NAN, NAN, NAN)
            gx = [r.get(k) for k in ("x", "y", "width", "height", "rotation")]
            if any(v is not None and type(v) not in _NUM for v in gx):
                raise _GiveUp
        elif "polyline" in t:
            kind = _LINE
            _ring_pts(t["polyline"], pts, cols, 0, False)
            bbox += (NAN, NAN, NAN, NAN)
        else:
            raise _GiveUp  # ner, pdf, unknown tools: rare in images, parsed fully
        if not t.keys() <= _ALLOWED_KEYS:
            raise _GiveUp  # an extra, unknown key: let the parser decide what it is
        kinds.append(kind)
        titles.append(title)
        opages.append(-1 if page is None else page)
        obj_rings.append(len(cols.ring_len) - n_rings)
        classifications = t.get("classifications") or None
        if classifications is not None and type(classifications) is not list:
            raise _GiveUp
        meta = t.get("metadata")
        if meta is not None and type(meta) is not dict:
            raise _GiveUp
        interp = t.get("interpolationStopped")
        obj_extra.append([oid, t.get("schemaId"), classifications, meta, gx, bool(interp)])
        if type(obj_extra[-1][1]) not in (str, type(None)):
            raise _GiveUp


_ALLOWED_KEYS = ENVELOPE_KEYS | {
    "bounding-box",
    "polygon",
    "segmentation",
    "point",
    "rotated-bounding-box",
    "polyline",
}


def _snap_row(raw: dict[str, Any], n: int) -> tuple[Any, ...]:
    extra = {
        k: raw[k]
        for k in ("classifications", "relations", "completedAt", "completedBy")
        if raw.get(k)
    }
    for k in ("classifications", "relations"):
        if k in extra and type(extra[k]) is not list:
            raise _GiveUp
    for k in ("stage", "stageId", "brushDataUrl", "medicalBrushDataUrl"):
        v = raw.get(k)
        if v is not None and type(v) is not str:
            raise _GiveUp
    return (
        raw.get("stage") or None,
        raw.get("stageId") or None,
        raw.get("brushDataUrl") or None,
        raw.get("medicalBrushDataUrl") or None,
        n,
        extra,
    )


def _fast(raw: Any) -> AssetColumns:
    if type(raw) is not dict or "task" not in raw or type(raw["task"]) is not dict:
        raise _GiveUp
    aid, eid, url = raw.get("assetId"), raw.get("externalId"), raw.get("asset")
    if type(aid) is not str or type(eid) is not str or not aid or not eid:
        raise _GiveUp
    if url is not None and type(url) is not str:
        raise _GiveUp
    meta = raw.get("metadata") or {}
    if type(meta) is not dict:
        raise _GiveUp
    w, h = meta.get("width"), meta.get("height")
    if (w is not None and type(w) is not int) or (h is not None and type(h) is not int):
        raise _GiveUp
    pages = raw.get("dataset") or []
    batches = raw.get("batches") or []
    if type(pages) is not list or type(batches) is not list:
        raise _GiveUp
    if any(type(p) is not str for p in pages) or any(type(b) is not str for b in batches):
        raise _GiveUp
    task = raw["task"]
    history = task.get("stageHistory") or []
    if type(history) is not list:
        raise _GiveUp
    cols = AssetColumns(
        aid,
        eid,
        url or None,
        -1 if w is None else w,
        -1 if h is None else h,
        pages,
        {
            "m": meta,
            "b": batches,
            "g": 3,
            "t": [
                task.get("taskId"),
                task.get("type"),
                task.get("updatedAt"),
                task.get("updatedBy"),
            ],
        },
    )
    pts: list[Any] = []
    for snap in (task, *history):
        before = len(cols.kinds)
        _snapshot(snap, cols, pts, "tools")
        cols.snaps.append(_snap_row(snap, len(cols.kinds) - before))
    _finish(cols, pts)
    return cols


def _finish(cols: AssetColumns, pts: list[Any]) -> None:
    """Convert the vertices at once and fill in the boxes of ring-based objects."""
    if pts:
        arr = np.array(pts)
        if arr.ndim != 2 or arr.shape[1] != 2 or arr.dtype.kind not in "fi":
            raise _GiveUp
        verts = arr.astype(np.float32)
        if not np.isfinite(verts).all():
            raise _GiveUp
    else:
        verts = np.zeros((0, 2), np.float32)
    box = np.asarray(cols.bbox, np.float64).reshape(-1, 4)
    if not np.isfinite(box[~np.isnan(box).all(axis=1)]).all():
        raise _GiveUp
    obj_rings = np.asarray(cols.obj_rings, np.int64)
    need = np.flatnonzero(obj_rings > 0)
    if len(need):
        ring_len = np.asarray(cols.ring_len, np.int64)
        hole = np.asarray(cols.ring_hole, bool)
        starts = np.concatenate([[0], np.cumsum(ring_len)[:-1]])
        lo = np.minimum.reduceat(verts, starts, axis=0)
        hi = np.maximum.reduceat(verts, starts, axis=0)
        # The box of a shape is the box of its outer rings (holes lie inside them).
        lo[hole], hi[hole] = np.inf, -np.inf
        first = np.concatenate([[0], np.cumsum(obj_rings[need])[:-1]])
        box[need, :2] = np.minimum.reduceat(lo, first, axis=0)
        box[need, 2:] = np.maximum.reduceat(hi, first, axis=0)
    cols.bbox = box.astype(np.float32).ravel().tolist()
    cols.verts = verts


def from_record(asset: Asset) -> AssetColumns:
    """The columns of a fully parsed asset (the path for quirks and legacy exports)."""
    t = asset.task
    cols = AssetColumns(
        asset.asset_id,
        asset.external_id,
        asset.url,
        -1 if asset.width is None else asset.width,
        -1 if asset.height is None else asset.height,
        list(asset.pages),
        {
            "m": dict(asset.metadata),
            "b": list(asset.batches),
            "g": asset.generation,
            "t": [
                t.task_id,
                t.type,
                t.updated_at.isoformat() if t.updated_at else None,
                t.updated_by,
            ],
        },
    )
    rings: list[npt.NDArray[np.float32]] = []
    for snap in (t.answer, *t.history):
        for obj in snap.tools:
            _record_object(cols, obj, rings)
        cols.snaps.append(_record_snap(snap))
    cols.verts = np.concatenate(rings).astype(np.float32) if rings else np.zeros((0, 2), np.float32)
    return cols


def _record_snap(s: Snapshot) -> tuple[Any, ...]:
    extra: dict[str, Any] = {}
    if s.classifications:
        extra["classifications"] = [class_raw(c) for c in s.classifications]
    if s.relations:
        extra["relations"] = [relation_raw(r) for r in s.relations]
    if s.completed_at is not None:
        extra["completedAt"] = s.completed_at.isoformat()
    if s.completed_by is not None:
        extra["completedBy"] = s.completed_by
    n = len(s.tools)
    return (s.stage, s.stage_id, s.brush_url, s.medical_brush_url, n, extra)


def _record_object(cols: AssetColumns, t: Any, rings: list[npt.NDArray[np.float32]]) -> None:
    g = t.geometry
    n0 = len(cols.ring_len)

    def ring(pts: npt.NDArray[np.float32], zone: int, hole: bool) -> None:
        rings.append(pts)
        cols.ring_len.append(len(pts))
        cols.ring_zone.append(zone)
        cols.ring_hole.append(hole)

    box: tuple[float, float, float, float] = (NAN, NAN, NAN, NAN)
    gx: Any = None
    if isinstance(g, BoundingBox):
        box = g.xyxy()
    elif isinstance(g, (Polygon, Polyline)):
        ring(g.points, 0, False)
        box = _bounds([g.points])
    elif isinstance(g, RotatedBox):
        ring(g.corners, 0, False)
        box = _bounds([g.corners])
        gx = [g.x, g.y, g.width, g.height, g.rotation]
    elif isinstance(g, Point):
        box = (g.x, g.y, g.x, g.y)
    elif isinstance(g, Segmentation):
        for z, zone in enumerate(g.zones):
            ring(zone.region, z, False)
            for hole in zone.holes:
                ring(hole, z, True)
        box = _bounds([z.region for z in g.zones])
    elif isinstance(g, Ner):
        gx = [g.start, g.end, g.selection]
    elif isinstance(g, Pdf):
        gx = dict(g.raw)
    elif isinstance(g, OtherGeometry):
        gx = [g.key, g.raw]
    cols.kinds.append(int(t.kind))
    cols.titles.append(t.title)
    cols.opages.append(-1 if t.page is None else t.page)
    cols.bbox += np.asarray(box, np.float32).tolist()
    cols.obj_rings.append(len(cols.ring_len) - n0)
    cols.obj_extra.append(
        [
            t.object_id,
            t.schema_id,
            [class_raw(c) for c in t.classifications] or None,
            meta_raw(t.metadata) if t.metadata is not None else None,
            gx,
            t.interpolation_stopped,
        ]
    )


def _bounds(rings: list[npt.NDArray[np.float32]]) -> tuple[float, float, float, float]:
    pts = [r for r in rings if len(r)]
    if not pts:
        return (NAN, NAN, NAN, NAN)
    allp = np.concatenate(pts)
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


def asset_columns(raw: Any, index: int, *, line: int | None = None) -> AssetColumns:
    """The index columns of one raw asset (fast path, else the full parser).

    Raises:
        ExportFormatError: from the full parser, naming the asset, object and field.
    """
    try:
        return _fast(raw)
    except _GiveUp:
        pass
    except (TypeError, ValueError, KeyError, AttributeError, IndexError):
        pass
    return from_record(parse_asset(raw, index, line=line))
