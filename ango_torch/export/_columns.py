"""Raw asset dict → index columns, fast: the parser's bulk path.

Indexing a large export must not build a Python record per annotation.  This module
reads well-formed v3 assets straight into flat per-asset lists, with one numpy
conversion per asset for all its vertices.  It has no rules of its own: every field
goes through the parser's functions (:func:`._parse.asset_fields`, ``tool_envelope``,
``snapshot_envelope``, the box/point/rotated-box readers, and ``vertex_array``, the one
vertex rule), so malformed input raises the same errors.  Shapes it does not read
(legacy v2, text/PDF/unknown tools, quirks such as flat hole rings) make it give up,
and the asset goes through the full parser (:func:`._parse.parse_asset`), whose
records :func:`from_record` turns into the same columns.  ``tests/test_parse_paths.py``
feeds generated assets through both and compares every column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from ..records import (
    Asset,
    BoundingBox,
    BoundingBox3D,
    Classification,
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
from ._fields import _list, _Loc
from ._parse import (
    ENVELOPE_KEYS,
    asset_fields,
    parse_asset,
    snapshot_envelope,
    snapshot_tools,
    task_fields,
    tool_envelope,
    tool_id,
)
from ._parse_geometry import _bounding_box, _point, _rotated_box, vertex_array
from ._tables import class_raw, meta_raw, relation_raw

__all__ = ["AssetColumns", "ChunkColumns", "asset_columns", "from_record"]

NAN = math.nan
_BOX, _ROT, _POLY, _LINE, _PT, _SEG = (
    int(ToolKind.BOUNDING_BOX),
    int(ToolKind.ROTATED_BOUNDING_BOX),
    int(ToolKind.POLYGON),
    int(ToolKind.POLYLINE),
    int(ToolKind.POINT),
    int(ToolKind.SEGMENTATION),
)


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


@dataclass(slots=True)
class ChunkColumns:
    """Many assets as index columns (the typed decoder's chunk, :mod:`._typed`).

    Per asset: ``asset_id`` ... ``pages``, ``extra`` and ``objects`` (the JSON of its
    asset extra and of its object rows, ``None``: no objects) and ``asset_snaps`` (its
    number of snapshots); per snapshot, in order, ``snap_rows`` as
    :attr:`AssetColumns.snaps` (its extra as JSON bytes or ``None``); per object:
    ``kinds`` uint8, ``titles``, ``opages`` int32, ``obj_rings`` int32, ``bbox``
    float32 ``[N, 4]``; per ring: ``ring_len`` int64, ``ring_zone`` int32,
    ``ring_hole`` int8; ``verts`` float32 ``[V, 2]``.
    """

    asset_id: list[str] = field(default_factory=list)
    external_id: list[str] = field(default_factory=list)
    url: list[str | None] = field(default_factory=list)
    width: list[int] = field(default_factory=list)
    height: list[int] = field(default_factory=list)
    pages: list[list[str]] = field(default_factory=list)
    extra: list[bytes] = field(default_factory=list)
    objects: list[bytes | None] = field(default_factory=list)
    asset_snaps: list[int] = field(default_factory=list)
    snap_rows: list[tuple[Any, ...]] = field(default_factory=list)
    kinds: npt.NDArray[np.uint8] = field(default_factory=lambda: np.zeros(0, np.uint8))
    titles: list[str] = field(default_factory=list)
    opages: npt.NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))
    obj_rings: npt.NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))
    bbox: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    ring_len: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    ring_zone: npt.NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))
    ring_hole: npt.NDArray[np.int8] = field(default_factory=lambda: np.zeros(0, np.int8))
    verts: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 2), np.float32))


class _GiveUp(Exception):
    """The fast path does not handle this asset; use the full parser."""


def _ring_pts(value: Any, pts: list[Any], cols: AssetColumns, zone: int, hole: bool) -> None:
    if type(value) is not list or not value:
        raise _GiveUp
    pts.extend(value)
    cols.ring_len.append(len(value))
    cols.ring_zone.append(zone)
    cols.ring_hole.append(hole)


def _fast_geometry(
    t: dict[str, Any], cols: AssetColumns, pts: list[Any], loc: _Loc
) -> tuple[int, Any]:
    """Append the rings and box of one object's geometry; its kind and geometry extra.

    Scalars (boxes, points, rotated-box fields) go through the parser's own functions;
    vertex lists are collected raw and converted once per asset by :func:`_finish`.
    """
    extra = t.keys() - ENVELOPE_KEYS
    if len(extra) != 1:
        raise _GiveUp  # no geometry, two of them, or an unknown key: the parser decides
    (key,) = extra
    value = t[key]
    if key == "bounding-box":
        if type(value) is dict and "z1" in value:
            raise _GiveUp  # a 3D box: the parser's BoundingBox3D
        cols.bbox += _bounding_box(value, loc).xyxy()
        return _BOX, None
    if key == "polygon" or key == "polyline":
        _ring_pts(value, pts, cols, 0, False)
        cols.bbox += (NAN, NAN, NAN, NAN)
        return (_POLY if key == "polygon" else _LINE), None
    if key == "segmentation":
        zones = value.get("zones") if type(value) is dict else None
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
            elif holes is not None and type(holes) is not list:
                raise _GiveUp
        cols.bbox += (NAN, NAN, NAN, NAN)
        return _SEG, None
    if key == "point":
        p = _point(value, loc)
        cols.bbox += (p.x, p.y, p.x, p.y)
        return _PT, None
    if key == "rotated-bounding-box":
        r = _rotated_box(value, loc)
        _ring_pts(r.corners.tolist(), pts, cols, 0, False)
        cols.bbox += (NAN, NAN, NAN, NAN)
        return _ROT, [r.x, r.y, r.width, r.height, r.rotation]
    raise _GiveUp  # ner, pdf, unknown tools: rare in images, parsed fully


def _snapshot(raw: Any, cols: AssetColumns, pts: list[Any], loc: _Loc, field: str) -> None:
    tools, tf = snapshot_tools(raw, loc, field, "tools")
    before = len(cols.kinds)
    for k, t in enumerate(tools):
        if type(t) is not dict or "frames" in t:
            raise _GiveUp  # a per-track video tool: the parser expands it
        oid = tool_id(t, k, loc, tf)
        n_rings = len(cols.ring_len)
        kind, gx = _fast_geometry(t, cols, pts, loc)
        title, schema_id, classifications, page, interp, meta = tool_envelope(t, loc)
        loc.obj = None
        cols.kinds.append(kind)
        cols.titles.append(title)
        cols.opages.append(-1 if page is None else page)
        cols.obj_rings.append(len(cols.ring_len) - n_rings)
        cols.obj_extra.append(_object_extra(oid, schema_id, classifications, meta, gx, interp))
    cols.snaps.append(_record_snap(snapshot_envelope(raw, loc, field), len(cols.kinds) - before))


def _fast(raw: Any, index: int = -1, line: int | None = None, first: int = 0) -> AssetColumns:
    """The columns of a well-formed v3 asset, reading its vertices in one conversion.

    Every field but the vertex lists goes through the parser's own functions (so the
    same rules raise the same errors); anything else unusual raises :class:`_GiveUp`.
    """
    if type(raw) is not dict or type(raw.get("task")) is not dict:
        raise _GiveUp  # legacy v2, or something the parser will name
    loc = _Loc(None, index, line, first)
    eid, aid, url, meta, w, h, pages, batches = asset_fields(raw, loc)
    task = raw["task"]
    cols = AssetColumns(
        aid, eid, url, -1 if w is None else w, -1 if h is None else h, list(pages), {}
    )
    pts: list[Any] = []
    _snapshot(task, cols, pts, loc, "task")
    for k, snap in enumerate(_list(task.get("stageHistory"), loc, "stageHistory")):
        _snapshot(snap, cols, pts, loc, f"stageHistory[{k}]")
    cols.extra = _asset_extra(meta, batches, 3, task_fields(task, loc))
    _finish(cols, pts)
    return cols


def _finish(cols: AssetColumns, pts: list[Any]) -> None:
    """Convert the vertices at once and fill in the boxes of ring-based objects."""
    if pts:
        verts = vertex_array(pts)  # the parser's conversion rule
        if verts is None or verts.shape[1] != 2:
            raise _GiveUp  # the parser names the bad vertex
    else:
        verts = np.zeros((0, 2), np.float32)
    box = np.asarray(cols.bbox, np.float64).reshape(-1, 4)
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


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _asset_extra(
    meta: Mapping[str, Any],
    batches: Sequence[str],
    generation: int,
    task: tuple[str | None, str | None, datetime | None, str | None],
) -> dict[str, Any]:
    task_id, task_type, updated_at, updated_by = task
    return {
        "m": dict(meta),
        "b": list(batches),
        "g": generation,
        "t": [task_id, task_type, _iso(updated_at), updated_by],
    }


def _object_extra(
    object_id: str,
    schema_id: str | None,
    classifications: tuple[Classification, ...],
    meta: dict[str, Any] | None,
    gx: Any,
    interp: bool,
) -> list[Any]:
    return [
        object_id,
        schema_id,
        [class_raw(c) for c in classifications] or None,
        meta,
        gx,
        interp,
    ]


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
        _asset_extra(
            asset.metadata,
            asset.batches,
            asset.generation,
            (t.task_id, t.type, t.updated_at, t.updated_by),
        ),
    )
    rings: list[npt.NDArray[np.float32]] = []
    for snap in (t.answer, *t.history):
        for obj in snap.tools:
            _record_object(cols, obj, rings)
        cols.snaps.append(_record_snap(snap))
    cols.verts = np.concatenate(rings).astype(np.float32) if rings else np.zeros((0, 2), np.float32)
    return cols


def _record_snap(s: Snapshot, n: int | None = None) -> tuple[Any, ...]:
    """A snapshot row (``n``: its number of objects, where ``s.tools`` is not filled)."""
    extra: dict[str, Any] = {}
    if s.classifications:
        extra["classifications"] = [class_raw(c) for c in s.classifications]
    if s.relations:
        extra["relations"] = [relation_raw(r) for r in s.relations]
    if s.completed_at is not None:
        extra["completedAt"] = s.completed_at.isoformat()
    if s.completed_by is not None:
        extra["completedBy"] = s.completed_by
    n = len(s.tools) if n is None else n
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
    elif isinstance(g, BoundingBox3D):
        gx = ["bounding-box", list(g.xyzxyz())]
    elif isinstance(g, OtherGeometry):
        gx = [g.key, g.raw]
    cols.kinds.append(int(t.kind))
    cols.titles.append(t.title)
    cols.opages.append(-1 if t.page is None else t.page)
    cols.bbox += np.asarray(box, np.float32).tolist()
    cols.obj_rings.append(len(cols.ring_len) - n0)
    cols.obj_extra.append(
        _object_extra(
            t.object_id,
            t.schema_id,
            t.classifications,
            meta_raw(t.metadata) if t.metadata is not None else None,
            gx,
            t.interpolation_stopped,
        )
    )


def _bounds(rings: list[npt.NDArray[np.float32]]) -> tuple[float, float, float, float]:
    pts = [r for r in rings if len(r)]
    if not pts:
        return (NAN, NAN, NAN, NAN)
    allp = np.concatenate(pts)
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


def asset_columns(raw: Any, index: int, *, line: int | None = None, first: int = 0) -> AssetColumns:
    """The index columns of one raw asset (fast path, else the full parser).

    ``first``: for a piece of a large asset (:mod:`._split`), the place of its first
    ``task.tools`` entry in the whole asset: its entries without an ``objectId`` are
    ``#k`` by their place there, and an error names them so, as for the unsplit asset.

    The fast path (:func:`_fast`) takes well-formed v3 assets; whatever it gives up on,
    or refuses, goes through the full parser, whose error is the one raised (it reads
    the asset in order, so it names the first problem).

    Raises:
        ExportFormatError: from the full parser, naming the asset, object and field.
    """
    try:
        return _fast(raw, index, line, first)
    except _GiveUp:
        pass
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, ArithmeticError):
        pass  # ExportFormatError is a ValueError
    return from_record(parse_asset(raw, index, line=line, first=first))
