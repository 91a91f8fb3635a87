"""Raw export JSON → typed records.  The only module that looks inside raw dicts.

Every format quirk lives here: v2 ``tasks[]/objects[]`` vs v3 ``task/tools``,
negative box sizes, rotated boxes from ``corners``, flat hole rings, empty regions,
ISO vs epoch-ms timestamps, and tools this version does not know (kept as
:class:`~ango_torch.records.OtherGeometry`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import numpy as np

from .errors import ExportFormatError, where
from .records import (
    Asset,
    BoundingBox,
    Classification,
    Geometry,
    Ner,
    ObjectMeta,
    OtherGeometry,
    Pdf,
    Point,
    Points,
    Polygon,
    Polyline,
    Relation,
    RotatedBox,
    Segmentation,
    Snapshot,
    Task,
    ToolKind,
    ToolObject,
    Zone,
)

__all__ = [
    "ENVELOPE_KEYS",
    "parse_asset",
    "parse_classifications",
    "parse_meta",
    "parse_relations",
    "parse_time",
]

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
_EMPTY = np.zeros((0, 2), np.float32)
_EMPTY.flags.writeable = False


class _Loc:
    """Where we are in the export, for error messages."""

    __slots__ = ("asset", "index", "line", "obj")

    def __init__(self, asset: str | None, index: int, line: int | None = None) -> None:
        self.asset = asset
        self.index = index
        self.line = line
        self.obj: str | None = None

    def error(self, field: str | None, message: str) -> ExportFormatError:
        loc = where(asset=self.asset, index=self.index, obj=self.obj, field=field, line=self.line)
        return ExportFormatError(f"{loc}: {message}")


def _type(value: Any) -> str:
    return type(value).__name__ if value is not None else "null"


def _str(value: Any, loc: _Loc, field: str, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise loc.error(field, "is missing, expected a string")
        return None if value is None else ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # numeric ids occur in hand-made exports
    raise loc.error(field, f"expected a string, got {_type(value)}")


def _num(value: Any, loc: _Loc, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if value is None:
            raise loc.error(field, "is missing, expected a number")
        raise loc.error(field, f"expected a number, got {_type(value)} {value!r:.40}")
    f = float(value)
    if not math.isfinite(f):
        raise loc.error(field, f"expected a finite number, got {f}")
    return f


def _opt_int(value: Any, loc: _Loc, field: str) -> int | None:
    if value is None:
        return None
    f = _num(value, loc, field)
    if f != int(f):
        raise loc.error(field, f"expected an integer, got {f}")
    return int(f)


def _list(value: Any, loc: _Loc, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise loc.error(field, f"expected a list, got {_type(value)}")
    return value


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 string or epoch milliseconds → aware UTC datetime; else ``None``."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = value / 1000.0 if abs(value) > 1e11 else float(value)
        try:
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return parse_time(int(text))
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def _points(value: Any, loc: _Loc, field: str, *, min_points: int = 0) -> Points:
    """``[[x, y], ...]`` (or ``[{"x":..,"y":..}, ...]``) → read-only float32 ``[N, 2]``."""
    if not isinstance(value, list):
        raise loc.error(field, f"expected a list of [x, y] points, got {_type(value)}")
    if not value:
        return _EMPTY
    if isinstance(value[0], Mapping):
        value = [[p.get("x"), p.get("y")] if isinstance(p, Mapping) else p for p in value]
    try:
        arr = np.array(value, dtype=np.float32)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.ndim != 2 or arr.shape[1] < 2:
        for k, p in enumerate(value):
            if not isinstance(p, (list, tuple)) or len(p) < 2:
                raise loc.error(f"{field}[{k}]", f"expected an [x, y] pair, got {p!r:.60}")
            _num(p[0], loc, f"{field}[{k}][0]")
            _num(p[1], loc, f"{field}[{k}][1]")
        raise loc.error(field, "points have inconsistent lengths")
    if arr.shape[1] != 2:
        arr = np.ascontiguousarray(arr[:, :2])
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise loc.error(f"{field}[{bad}]", "coordinates must be finite numbers")
    if isinstance(value[0][0], (str, bool)) or isinstance(value[0][1], (str, bool)):
        raise loc.error(f"{field}[0]", f"expected numbers, got {value[0]!r:.60}")
    if len(arr) < min_points:
        raise loc.error(field, f"has {len(arr)} points, expected ≥ {min_points}")
    arr.flags.writeable = False
    return arr


def _bounding_box(value: Any, loc: _Loc) -> BoundingBox:
    key = "bounding-box"
    if not isinstance(value, Mapping):
        raise loc.error(key, f"expected an object with x, y, width, height, got {_type(value)}")
    x = _num(value.get("x"), loc, f"{key}.x")
    y = _num(value.get("y"), loc, f"{key}.y")
    w = _num(value.get("width"), loc, f"{key}.width")
    h = _num(value.get("height"), loc, f"{key}.height")
    # x, y is the first-clicked corner: a box dragged leftwards or upwards is negative.
    if w < 0:
        x, w = x + w, -w
    if h < 0:
        y, h = y + h, -h
    return BoundingBox(x, y, w, h)


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
        corners = corners.astype(np.float32)
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
        return Point(_num(value.get("x"), loc, "point.x"), _num(value.get("y"), loc, "point.y"))
    if not isinstance(value, list) or len(value) < 2:
        raise loc.error("point", f"expected [x, y], got {value!r:.60}")
    return Point(_num(value[0], loc, "point[0]"), _num(value[1], loc, "point[1]"))


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
    return Pdf(page, rect, dict(value))  # type: ignore[arg-type]


def _geometry(obj: Mapping[str, Any], loc: _Loc) -> tuple[ToolKind, Geometry]:
    key = None
    for k in obj:
        if k not in ENVELOPE_KEYS:
            if ToolKind.from_key(k) is not ToolKind.OTHER:
                key = k
                break
            if key is None:
                key = k
    if key is None:
        return ToolKind.OTHER, OtherGeometry("", None)
    kind = ToolKind.from_key(key)
    value = obj[key]
    geometry: Geometry
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
        geometry = OtherGeometry(key, value)
    return kind, geometry


def parse_meta(value: Any) -> ObjectMeta | None:
    """Object metadata → :class:`ObjectMeta` (``createdAt`` as ISO or epoch ms)."""
    if not isinstance(value, Mapping):
        return None
    created_by = value.get("createdBy")
    extra = {k: v for k, v in value.items() if k not in ("createdAt", "createdBy")}
    return ObjectMeta(
        parse_time(value.get("createdAt")),
        created_by if isinstance(created_by, str) else None,
        extra,
    )


def _answer(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_answer(v) for v in value)
    return value


def parse_classifications(
    value: Any, loc: _Loc | None = None, field: str = "classifications"
) -> tuple[Classification, ...]:
    """A (possibly nested) list of classification answers → records."""
    loc = loc or _Loc(None, -1)
    out: list[Classification] = []
    for k, c in enumerate(_list(value, loc, field)):
        f = f"{field}[{k}]"
        if not isinstance(c, Mapping):
            raise loc.error(f, f"expected a classification object, got {_type(c)}")
        out.append(
            Classification(
                object_id=_str(c.get("objectId"), loc, f"{f}.objectId"),
                schema_id=_str(c.get("schemaId"), loc, f"{f}.schemaId"),
                tool=_str(c.get("tool"), loc, f"{f}.tool"),
                title=_str(c.get("title"), loc, f"{f}.title"),
                answer=_answer(c.get("answer")),
                classifications=parse_classifications(
                    c.get("classifications"), loc, f"{f}.classifications"
                ),
                page=_opt_int(c.get("page"), loc, f"{f}.page"),
                metadata=parse_meta(c.get("metadata")),
            )
        )
    return tuple(out)


def parse_relations(value: Any, loc: _Loc | None = None) -> tuple[Relation, ...]:
    """Single (``from``/``to``/``direction``) and group relations → records."""
    loc = loc or _Loc(None, -1)
    out: list[Relation] = []
    for k, r in enumerate(_list(value, loc, "relations")):
        f = f"relations[{k}]"
        if not isinstance(r, Mapping):
            raise loc.error(f, f"expected a relation object, got {_type(r)}")
        group = r.get("group")
        out.append(
            Relation(
                object_id=_str(r.get("objectId"), loc, f"{f}.objectId"),
                schema_id=_str(r.get("schemaId"), loc, f"{f}.schemaId"),
                title=_str(r.get("title"), loc, f"{f}.title"),
                from_id=_str(r.get("from"), loc, f"{f}.from"),
                to_id=_str(r.get("to"), loc, f"{f}.to"),
                direction=_str(r.get("direction"), loc, f"{f}.direction"),
                group=None
                if group is None
                else tuple(
                    _str(g, loc, f"{f}.group", required=True) or ""
                    for g in _list(group, loc, f"{f}.group")
                ),
                page=_opt_int(r.get("page"), loc, f"{f}.page"),
            )
        )
    return tuple(out)


def _tool(obj: Any, k: int, loc: _Loc, field: str) -> ToolObject:
    loc.obj = None
    if not isinstance(obj, Mapping):
        raise loc.error(f"{field}[{k}]", f"expected a tool object, got {_type(obj)}")
    object_id = _str(obj.get("objectId"), loc, f"{field}[{k}].objectId") or f"#{k}"
    loc.obj = object_id
    kind, geometry = _geometry(obj, loc)
    title = _str(obj.get("title"), loc, "title") or ""
    tool = ToolObject(
        object_id=object_id,
        schema_id=_str(obj.get("schemaId"), loc, "schemaId"),
        title=title,
        kind=kind,
        geometry=geometry,
        classifications=parse_classifications(obj.get("classifications"), loc),
        page=_opt_int(obj.get("page"), loc, "page"),
        interpolation_stopped=bool(obj.get("interpolationStopped", False)),
        metadata=parse_meta(obj.get("metadata")),
    )
    loc.obj = None
    return tool


def _snapshot(raw: Any, loc: _Loc, field: str, tools_key: str) -> Snapshot:
    if not isinstance(raw, Mapping):
        raise loc.error(field, f"expected an object, got {_type(raw)}")
    tools_raw = raw.get(tools_key)
    if tools_raw is None and tools_key == "objects":
        tools_raw = raw.get("tools")
    tf = f"{field}.{tools_key}" if field != "task" else tools_key
    if tools_raw is not None and not isinstance(tools_raw, list):
        raise loc.error(tf, f"expected a list, got {_type(tools_raw)}")
    tools = tuple(_tool(t, k, loc, tf) for k, t in enumerate(tools_raw or ()))
    return Snapshot(
        stage=_str(raw.get("stage"), loc, f"{field}.stage"),
        stage_id=_str(raw.get("stageId"), loc, f"{field}.stageId"),
        tools=tools,
        classifications=parse_classifications(raw.get("classifications"), loc),
        relations=parse_relations(raw.get("relations"), loc),
        brush_url=_str(raw.get("brushDataUrl"), loc, f"{field}.brushDataUrl") or None,
        medical_brush_url=_str(raw.get("medicalBrushDataUrl"), loc, f"{field}.medicalBrushDataUrl")
        or None,
        completed_at=parse_time(raw.get("completedAt")),
        completed_by=_str(raw.get("completedBy"), loc, f"{field}.completedBy"),
    )


def parse_asset(raw: Any, index: int, *, line: int | None = None) -> Asset:
    """Parse one asset dict of a v3 (``task``) or legacy v2 (``tasks[]``) export.

    Args:
        raw: the asset as decoded from JSON.
        index: its position in the export (for messages and :attr:`Asset.index`).
        line: its line number in an NDJSON file, if any.

    Raises:
        ExportFormatError: naming the asset, object and field that is malformed.
    """
    loc = _Loc(None, index, line)
    if not isinstance(raw, Mapping):
        raise loc.error(None, f"expected an asset object, got {_type(raw)}")
    external_id = _str(raw.get("externalId"), loc, "externalId") or ""
    asset_id = _str(raw.get("assetId"), loc, "assetId") or ""
    loc.asset = external_id or asset_id or None
    if not external_id and not asset_id:
        raise loc.error("assetId", "asset has neither assetId nor externalId")
    meta = raw.get("metadata")
    if meta is not None and not isinstance(meta, Mapping):
        raise loc.error("metadata", f"expected an object, got {_type(meta)}")
    meta = meta or {}
    width = _opt_int(meta.get("width"), loc, "metadata.width")
    height = _opt_int(meta.get("height"), loc, "metadata.height")
    pages = tuple(
        _str(p, loc, f"dataset[{k}]", required=True) or ""
        for k, p in enumerate(_list(raw.get("dataset"), loc, "dataset"))
    )
    batches = tuple(
        b if isinstance(b, str) else str(b.get("name", "")) if isinstance(b, Mapping) else str(b)
        for b in _list(raw.get("batches"), loc, "batches")
    )
    if "task" in raw and raw["task"] is not None:
        generation = 3
        task_raw = raw["task"]
        if not isinstance(task_raw, Mapping):
            raise loc.error("task", f"expected an object, got {_type(task_raw)}")
        answer = _snapshot(task_raw, loc, "task", "tools")
        history = tuple(
            _snapshot(s, loc, f"stageHistory[{k}]", "tools")
            for k, s in enumerate(_list(task_raw.get("stageHistory"), loc, "stageHistory"))
        )
    elif "tasks" in raw:
        generation = 2
        tasks = _list(raw["tasks"], loc, "tasks")
        if not tasks:
            task_raw = {}
            answer = Snapshot(None, None)
            history = ()
        else:
            # Legacy exports hold one task per labeler: the first is the answer,
            # the others are kept as history snapshots.
            task_raw = tasks[0] if isinstance(tasks[0], Mapping) else {}
            answer = _snapshot(tasks[0], loc, "tasks[0]", "objects")
            history = tuple(
                _snapshot(t, loc, f"tasks[{k}]", "objects") for k, t in enumerate(tasks) if k
            )
    else:
        raise loc.error("task", "asset has neither 'task' (v3) nor 'tasks' (v2)")
    task = Task(
        task_id=_str(task_raw.get("taskId"), loc, "task.taskId"),
        answer=answer,
        history=history,
        type=_str(task_raw.get("type"), loc, "task.type"),
        updated_at=parse_time(task_raw.get("updatedAt")),
        updated_by=_str(task_raw.get("updatedBy"), loc, "task.updatedBy"),
    )
    url = raw.get("asset", raw.get("data"))
    return Asset(
        index=index,
        asset_id=asset_id or external_id,
        external_id=external_id or asset_id,
        url=_str(url, loc, "asset") or None,
        task=task,
        width=width,
        height=height,
        batches=batches,
        pages=pages,
        metadata=dict(meta),
        generation=generation,
    )
