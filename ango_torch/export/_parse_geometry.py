"""Tool geometries: raw ``{"<tool-type>": value}`` → geometry records.

The format's geometry quirks live here: negative box sizes, rotated boxes from
``corners`` (or, without them, rotated about the centre), flat hole rings, empty regions,
points given as ``{"x", "y"}`` objects, and tools this version does not know.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ..records import (
    BoundingBox,
    BoundingBox3D,
    Geometry,
    Ner,
    OtherGeometry,
    Pdf,
    Point,
    Points,
    Polygon,
    Polyline,
    RotatedBox,
    Segmentation,
    ToolKind,
    Zone,
)
from ._fields import _EMPTY, _coord, _json, _Loc, _num, _opt_int, _type

__all__ = ["ENVELOPE_KEYS", "geometry_key", "parse_geometry", "vertex_array"]

# Keys of a tool object that are not its geometry.
ENVELOPE_KEYS = frozenset(
    {
        "objectId",
        "schemaId",
        "title",
        "classifications",
        "page",
        "interpolationStopped",
        "metadata",
        "ocr",
        "masks",
        "color",
        "tool",
        "featureSchemaId",
        "frame",
    }
)


def _points(value: Any, loc: _Loc, field: str, *, min_points: int = 0) -> Points:
    """``[[x, y], ...]`` (or ``[{"x":..,"y":..}, ...]``) → read-only float32 ``[N, 2]``.

    Every coordinate must be a number (not a bool or a numeric string) that stays finite
    as float32; a vertex with more (or fewer) than two coordinates is refused.
    """
    if not isinstance(value, list):
        raise loc.error(field, f"expected a list of [x, y] points, got {_type(value)}")
    if not value:
        return _EMPTY
    if isinstance(value[0], Mapping):
        value = [[p.get("x"), p.get("y")] if isinstance(p, Mapping) else p for p in value]
    arr = vertex_array(value)
    if arr is None:
        for k, p in enumerate(value):
            if not isinstance(p, (list, tuple)) or len(p) != 2:
                raise loc.error(f"{field}[{k}]", f"expected an [x, y] pair, got {p!r:.60}")
            for j, v in enumerate(p):
                _coord(v, loc, f"{field}[{k}][{j}]")
        raise loc.error(field, "points have inconsistent lengths")
    if arr.shape[1] != 2:  # e.g. [x, y, z]: silently losing z would misplace nothing
        # visible but is not what the export says; refuse, naming the first such vertex.
        raise loc.error(f"{field}[0]", f"expected an [x, y] pair, got {value[0]!r:.60}")
    if len(arr) < min_points:
        raise loc.error(field, f"has {len(arr)} points, expected ≥ {min_points}")
    arr.flags.writeable = False
    return arr


_NUMBER_TYPES = frozenset({int, float})


def vertex_array(points: list[Any]) -> npt.NDArray[np.float32] | None:
    """Points as float32 ``[N, k ≥ 2]``, or ``None`` unless every point is a list of ≥ 2
    numbers (``int``/``float``, not ``bool``) of one length, finite as float32.

    The one conversion rule of both parse paths (the fast path calls it once per asset):
    numbers become doubles, then float32.
    """
    try:
        types = set(map(type, itertools.chain.from_iterable(points)))
    except TypeError:  # a point that is not a list
        return None
    if not types <= _NUMBER_TYPES or set(map(type, points)) != {list}:
        return None
    try:
        arr = np.array(points, np.float64)
    except (ValueError, TypeError, OverflowError):  # ragged, or an integer beyond doubles
        return None
    if arr.ndim != 2 or arr.shape[1] < 2:
        return None
    with np.errstate(over="ignore"):
        out = arr.astype(np.float32)
    if not np.isfinite(out).all():
        return None
    return out


def _bounding_box(value: Any, loc: _Loc) -> BoundingBox:
    key = "bounding-box"
    if not isinstance(value, Mapping):
        raise loc.error(key, f"expected an object with x, y, width, height, got {_type(value)}")
    x = _coord(value.get("x"), loc, f"{key}.x")
    y = _coord(value.get("y"), loc, f"{key}.y")
    w = _coord(value.get("width"), loc, f"{key}.width")
    h = _coord(value.get("height"), loc, f"{key}.height")
    # x, y is the first-clicked corner: a box dragged leftwards or upwards is negative.
    if w < 0:
        x, w = x + w, -w
    if h < 0:
        y, h = y + h, -h
    _coord(x + w, loc, f"{key}.width")  # the far corner, as stored (XYXY float32)
    _coord(y + h, loc, f"{key}.height")
    return BoundingBox(x, y, w, h)


_BOX3D_KEYS = ("x1", "y1", "z1", "x2", "y2", "z2")


def _bounding_box_3d(value: Mapping[str, Any], loc: _Loc) -> BoundingBox3D:
    """``{x1, y1, z1, x2, y2, z2}`` (voxel indices) → a box with ``x1 <= x2`` etc."""
    c = [_coord(value.get(k), loc, f"bounding-box.{k}") for k in _BOX3D_KEYS]
    lo = [min(c[i], c[i + 3]) for i in range(3)]
    hi = [max(c[i], c[i + 3]) for i in range(3)]
    return BoundingBox3D(*lo, *hi)


def _rotated_box(value: Any, loc: _Loc) -> RotatedBox:
    key = "rotated-bounding-box"
    if not isinstance(value, Mapping):
        raise loc.error(key, f"expected an object with corners, got {_type(value)}")

    def opt(name: str) -> float | None:
        v = value.get(name)
        return None if v is None else _num(v, loc, f"{key}.{name}")

    x, y, w, h, rot = opt("x"), opt("y"), opt("width"), opt("height"), opt("rotation")
    corners_raw = value.get("corners")
    if corners_raw is not None:
        corners = _points(corners_raw, loc, f"{key}.corners")
        if len(corners) != 4:
            raise loc.error(f"{key}.corners", f"has {len(corners)} points, expected 4")
    elif None not in (x, y, w, h):
        # The docs disagree on the pivot; without corners we rotate about the centre.
        assert x is not None and y is not None and w is not None and h is not None
        cx, cy = x + w / 2, y + h / 2
        t = math.radians(rot or 0.0)
        c, s = math.cos(t), math.sin(t)
        pts = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
        corners = np.array([[cx + px * c - py * s, cy + px * s + py * c] for px, py in pts])
        with np.errstate(over="ignore"):
            corners = corners.astype(np.float32)
        if not np.isfinite(corners).all():
            raise loc.error(f"{key}.corners", "computed corners exceed the float32 range")
        corners.flags.writeable = False
    else:
        raise loc.error(f"{key}.corners", "is missing (and x, y, width, height are incomplete)")
    return RotatedBox(corners, x, y, w, h, rot)


def _segmentation(value: Any, loc: _Loc) -> Segmentation:
    key = "segmentation"
    if not isinstance(value, Mapping):
        raise loc.error(key, f"expected an object with zones, got {_type(value)}")
    zones_raw = value.get("zones")
    if not isinstance(zones_raw, list):
        raise loc.error(f"{key}.zones", f"expected a list of zones, got {_type(zones_raw)}")
    zones: list[Zone] = []
    for z, zone in enumerate(zones_raw):
        field = f"{key}.zones[{z}]"
        if not isinstance(zone, Mapping):
            raise loc.error(field, f"expected a zone object, got {_type(zone)}")
        region = _points(zone.get("region") or [], loc, f"{field}.region")
        holes_raw = zone.get("holes") or []
        if not isinstance(holes_raw, list):
            raise loc.error(f"{field}.holes", f"expected a list of rings, got {_type(holes_raw)}")
        # Old exports write a single hole as one flat ring [[x, y], ...].
        if holes_raw and _is_point(holes_raw[0]):
            holes_raw = [holes_raw]
        holes = tuple(_points(h, loc, f"{field}.holes[{k}]") for k, h in enumerate(holes_raw) if h)
        zones.append(Zone(region, holes))
    return Segmentation(tuple(zones))


def _is_point(v: Any) -> bool:
    return (
        isinstance(v, (list, tuple))
        and len(v) >= 2
        and isinstance(v[0], (int, float))
        and not isinstance(v[0], bool)
    )


def _point(value: Any, loc: _Loc) -> Point:
    if isinstance(value, Mapping):
        return Point(_coord(value.get("x"), loc, "point.x"), _coord(value.get("y"), loc, "point.y"))
    if not isinstance(value, list) or len(value) != 2:
        raise loc.error("point", f"expected [x, y], got {value!r:.60}")
    return Point(_coord(value[0], loc, "point[0]"), _coord(value[1], loc, "point[1]"))


def _ner(value: Any, loc: _Loc) -> Ner:
    if not isinstance(value, Mapping):
        raise loc.error("ner", f"expected an object, got {_type(value)}")
    sel = value.get("selection")
    return Ner(
        _opt_int(value.get("start"), loc, "ner.start"),
        _opt_int(value.get("end"), loc, "ner.end"),
        sel if isinstance(sel, str) else None,
    )


def _pdf(value: Any, loc: _Loc) -> Pdf:
    if not isinstance(value, Mapping):
        raise loc.error("pdf", f"expected an object, got {_type(value)}")
    pos = value.get("position")
    rect = None
    page = None
    if isinstance(pos, Mapping):
        page = _opt_int(pos.get("pageNumber"), loc, "pdf.position.pageNumber")
        br = pos.get("boundingRect")
        if isinstance(br, Mapping) and all(k in br for k in ("x1", "y1", "x2", "y2")):
            rect = tuple(
                _num(br[k], loc, f"pdf.boundingRect.{k}") for k in ("x1", "y1", "x2", "y2")
            )
    return Pdf(page, rect, _json(dict(value), loc, "pdf"))  # type: ignore[arg-type]


def geometry_key(obj: Mapping[str, Any], loc: _Loc) -> str | None:
    """The key holding the object's geometry: its one known tool key, else its first
    unknown non-envelope key (a tool this version does not know), else ``None``.

    Raises:
        ExportFormatError: the object has two known geometry keys (which is its shape?).
    """
    known = [k for k in obj if k not in ENVELOPE_KEYS and k in _KNOWN_KEYS]
    if len(known) > 1:
        names = ", ".join(repr(k) for k in known)
        raise loc.error(known[1], f"has two geometries ({names}), expected one")
    if known:
        return known[0]
    return next((k for k in obj if k not in ENVELOPE_KEYS), None)


_KNOWN_KEYS = frozenset(k.key for k in ToolKind if k is not ToolKind.OTHER)


def parse_geometry(obj: Mapping[str, Any], loc: _Loc) -> tuple[ToolKind, Geometry]:
    key = geometry_key(obj, loc)
    if key is None:
        return ToolKind.OTHER, OtherGeometry("", None)
    kind = ToolKind.from_key(key)
    value = obj[key]
    geometry: Geometry
    if kind is ToolKind.BOUNDING_BOX and isinstance(value, Mapping) and "z1" in value:
        return ToolKind.OTHER, _bounding_box_3d(value, loc)  # a 3D box (volumes)
    if kind is ToolKind.BOUNDING_BOX:
        geometry = _bounding_box(value, loc)
    elif kind is ToolKind.ROTATED_BOUNDING_BOX:
        geometry = _rotated_box(value, loc)
    elif kind is ToolKind.POLYGON:
        geometry = Polygon(_points(value, loc, key))
    elif kind is ToolKind.POLYLINE:
        geometry = Polyline(_points(value, loc, key))
    elif kind is ToolKind.POINT:
        geometry = _point(value, loc)
    elif kind is ToolKind.SEGMENTATION:
        geometry = _segmentation(value, loc)
    elif kind is ToolKind.NER:
        geometry = _ner(value, loc)
    elif kind is ToolKind.PDF:
        geometry = _pdf(value, loc)
    else:
        geometry = OtherGeometry(key, _json(value, loc, key))
    return kind, geometry
