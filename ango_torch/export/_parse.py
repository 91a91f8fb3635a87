"""Raw export JSON → typed records: the parser, with :mod:`._fields` (typed field
access, timestamps) and :mod:`._parse_geometry` (tool geometries).

Every format quirk lives in these three modules (and the fast path of
:mod:`._columns`, which hands anything unusual back to them): v2 ``tasks[]/objects[]``
vs v3 ``task/tools``, negative box sizes, rotated boxes from ``corners``, flat hole
rings, empty regions, ISO vs epoch-ms timestamps, and tools this version does not know
(kept as :class:`~ango_torch.records.OtherGeometry`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..records import (
    Asset,
    Classification,
    ObjectMeta,
    Relation,
    Snapshot,
    Task,
    ToolObject,
)
from ._fields import _json, _list, _Loc, _opt_index, _str, _time, _type, parse_time
from ._parse_geometry import _KNOWN_KEYS, ENVELOPE_KEYS, parse_geometry

__all__ = [
    "ENVELOPE_KEYS",
    "asset_fields",
    "expand_track_tools",
    "meta_json",
    "meta_record",
    "parse_asset",
    "parse_classifications",
    "parse_meta",
    "parse_relations",
    "parse_time",
    "snapshot_envelope",
    "snapshot_tools",
    "task_fields",
    "tool_envelope",
    "tool_id",
]


def meta_json(
    value: Any, loc: _Loc | None = None, field: str = "metadata"
) -> dict[str, Any] | None:
    """Metadata as the index stores it: the object as exported, checked to be plain JSON
    (finite numbers, string keys).  Metadata is free-form, so this is lenient: a value
    that is not an object is no metadata (``None``)."""
    if type(value) is not dict and not isinstance(value, Mapping):
        return None
    out: dict[str, Any] = _json(value, loc or _Loc(None, -1), field)
    return out


def meta_record(raw: Mapping[str, Any] | None) -> ObjectMeta | None:
    """:func:`meta_json`'s output → :class:`ObjectMeta` (an unreadable ``createdAt`` or
    a ``createdBy`` that is not a string reads as ``None``)."""
    if raw is None:
        return None
    created_by = raw.get("createdBy")
    return ObjectMeta(
        parse_time(raw.get("createdAt")),
        created_by if isinstance(created_by, str) else None,
        {k: v for k, v in raw.items() if k not in ("createdAt", "createdBy")},
        raw,
    )


def parse_meta(value: Any, loc: _Loc | None = None, field: str = "metadata") -> ObjectMeta | None:
    """Object metadata → :class:`ObjectMeta` (``createdAt`` as ISO or epoch ms)."""
    return meta_record(meta_json(value, loc, field))


def parse_classifications(
    value: Any, loc: _Loc | None = None, field: str = "classifications"
) -> tuple[Classification, ...]:
    """A (possibly nested) list of classification answers → records."""
    if value is None or (type(value) is list and not value):
        return ()
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
                answer=_json(c.get("answer"), loc, f"{f}.answer", tuples=True),
                classifications=parse_classifications(
                    c.get("classifications"), loc, f"{f}.classifications"
                ),
                page=_opt_index(c.get("page"), loc, f"{f}.page"),
                metadata=parse_meta(c.get("metadata"), loc, f"{f}.metadata"),
                interpolation_stopped=c.get("interpolationStopped") is True,
            )
        )
    return tuple(out)


def parse_relations(value: Any, loc: _Loc | None = None) -> tuple[Relation, ...]:
    """Single (``from``/``to``/``direction``) and group relations → records."""
    if value is None or (type(value) is list and not value):
        return ()
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
                page=_opt_index(r.get("page"), loc, f"{f}.page"),
            )
        )
    return tuple(out)


def tool_id(obj: Any, k: int, loc: _Loc, field: str) -> str:
    """The objectId of tool ``field[k]`` (``#k`` where it has none); sets ``loc.obj``.

    A piece of a large asset (``loc.first``: its first ``task.tools`` entry's place in
    the asset) numbers and names its task's tools by their place in the whole asset.
    """
    loc.obj = None
    if loc.first and field == "tools":  # (the task's own list: "tools", not "task.tools")
        k += loc.first
    if not isinstance(obj, Mapping):
        raise loc.error(f"{field}[{k}]", f"expected a tool object, got {_type(obj)}")
    object_id = obj.get("objectId")
    if type(object_id) is not str or not object_id:  # the field name is built only here
        object_id = _str(object_id, loc, f"{field}[{k}].objectId") or f"#{k}"
    loc.obj = object_id
    return object_id


def tool_envelope(
    obj: Mapping[str, Any], loc: _Loc
) -> tuple[str, str | None, tuple[Classification, ...], int | None, bool, dict[str, Any] | None]:
    """A tool's fields other than its id and geometry: ``(title, schemaId,
    classifications, page, interpolationStopped, metadata as stored)`` (both paths use
    this; :func:`meta_record` makes the metadata a record)."""
    return (
        _str(obj.get("title"), loc, "title") or "",
        _str(obj.get("schemaId"), loc, "schemaId"),
        parse_classifications(obj.get("classifications"), loc),
        _opt_index(obj.get("page"), loc, "page"),
        bool(obj.get("interpolationStopped", False)),
        meta_json(obj.get("metadata"), loc),
    )


def _tool(obj: Any, k: int, loc: _Loc, field: str) -> ToolObject:
    object_id = tool_id(obj, k, loc, field)
    kind, geometry = parse_geometry(obj, loc)
    title, schema_id, classifications, page, interp, metadata = tool_envelope(obj, loc)
    loc.obj = None
    return ToolObject(
        object_id=object_id,
        schema_id=schema_id,
        title=title,
        kind=kind,
        geometry=geometry,
        classifications=classifications,
        page=page,
        interpolation_stopped=interp,
        metadata=meta_record(metadata),
    )


def snapshot_tools(raw: Any, loc: _Loc, field: str, tools_key: str) -> tuple[list[Any], str]:
    """The raw tool list of a snapshot, and its field name for messages."""
    if not isinstance(raw, Mapping):
        raise loc.error(field, f"expected an object, got {_type(raw)}")
    tools_raw = raw.get(tools_key)
    if tools_raw is None and tools_key == "objects":
        tools_raw = raw.get("tools")
    tf = f"{field}.{tools_key}" if field != "task" else tools_key
    if tools_raw is not None and not isinstance(tools_raw, list):
        raise loc.error(tf, f"expected a list, got {_type(tools_raw)}")
    return tools_raw or [], tf


def snapshot_envelope(
    raw: Mapping[str, Any], loc: _Loc, field: str, tools: tuple[ToolObject, ...] = ()
) -> Snapshot:
    """A snapshot's fields other than its tools (both paths use this)."""
    return Snapshot(
        stage=_str(raw.get("stage"), loc, f"{field}.stage") or None,
        stage_id=_str(raw.get("stageId"), loc, f"{field}.stageId") or None,
        tools=tools,
        classifications=parse_classifications(raw.get("classifications"), loc),
        relations=parse_relations(raw.get("relations"), loc),
        brush_url=_str(raw.get("brushDataUrl"), loc, f"{field}.brushDataUrl", strict=True) or None,
        medical_brush_url=_str(
            raw.get("medicalBrushDataUrl"), loc, f"{field}.medicalBrushDataUrl", strict=True
        )
        or None,
        completed_at=_time(raw.get("completedAt"), loc, f"{field}.completedAt"),
        completed_by=_str(raw.get("completedBy"), loc, f"{field}.completedBy") or None,
    )


def _frame_entries(obj: Any) -> list[dict[str, Any]] | None:
    """A per-track tool's per-frame entries in the documented per-frame layout, else
    ``None`` (the tool is left as it is: kept, an unknown ``frames`` tool if it has one).

    A per-track tool has no geometry of its own and ``frames``: a non-empty list of
    objects each with a ``frame`` or ``page`` index (and its geometry,
    ``interpolationStopped``, ...).  Each becomes the track's fields overlaid by the
    frame's, ``frame`` renamed ``page``; a frame giving two different indices leaves the
    tool unexpanded rather than picking one.
    """
    if not isinstance(obj, Mapping) or "frames" not in obj:
        return None
    frames = obj["frames"]
    if not isinstance(frames, list) or not frames or any(k in _KNOWN_KEYS for k in obj):
        return None
    base = {k: v for k, v in obj.items() if k != "frames"}
    out = []
    for fr in frames:
        if not isinstance(fr, Mapping) or ("frame" not in fr and "page" not in fr):
            return None
        if "frame" in fr and "page" in fr and fr["frame"] != fr["page"]:
            return None
        entry = {**base, **{k: v for k, v in fr.items() if k != "frame"}}
        entry["page"] = fr["page"] if "page" in fr else fr["frame"]
        out.append(entry)
    return out


def expand_track_tools(tools: list[Any]) -> list[Any]:
    """``tools`` with each per-track tool (see :func:`_frame_entries`) replaced by its
    per-frame entries, in frame-list order; other tools unchanged."""
    if not any(isinstance(t, Mapping) and "frames" in t for t in tools):
        return tools
    out: list[Any] = []
    for t in tools:
        entries = _frame_entries(t)
        out += [t] if entries is None else entries
    return out


def _snapshot(raw: Any, loc: _Loc, field: str, tools_key: str) -> Snapshot:
    tools_raw, tf = snapshot_tools(raw, loc, field, tools_key)
    tools_raw = expand_track_tools(tools_raw)
    tools = tuple(_tool(t, k, loc, tf) for k, t in enumerate(tools_raw))
    return snapshot_envelope(raw, loc, field, tools)


AssetFields = tuple[
    str,
    str,
    str | None,
    dict[str, Any],
    int | None,
    int | None,
    tuple[str, ...],
    tuple[str, ...],
]


def asset_fields(raw: Any, loc: _Loc) -> AssetFields:
    """An asset's fields other than its task: ``(external_id, asset_id, url, metadata,
    width, height, pages, batches)``; sets ``loc.asset`` (both paths use this)."""
    if not isinstance(raw, Mapping):
        raise loc.error(None, f"expected an asset object, got {_type(raw)}")
    external_id = _str(raw.get("externalId"), loc, "externalId", strict=True) or ""
    asset_id = _str(raw.get("assetId"), loc, "assetId") or ""
    loc.asset = external_id or asset_id or None
    if not external_id and not asset_id:
        raise loc.error("assetId", "asset has neither assetId nor externalId")
    meta = raw.get("metadata")
    if meta is not None and not isinstance(meta, Mapping):
        raise loc.error("metadata", f"expected an object, got {_type(meta)}")
    meta = _json(dict(meta or {}), loc, "metadata")
    width = _opt_index(meta.get("width"), loc, "metadata.width")
    height = _opt_index(meta.get("height"), loc, "metadata.height")
    pages = tuple(
        _str(p, loc, f"dataset[{k}]", required=True, strict=True) or ""
        for k, p in enumerate(_list(raw.get("dataset"), loc, "dataset"))
    )
    batches = tuple(
        b if isinstance(b, str) else str(b.get("name", "")) if isinstance(b, Mapping) else str(b)
        for b in _list(raw.get("batches"), loc, "batches")
    )
    url = (
        _str(raw["asset"] if "asset" in raw else raw.get("data"), loc, "asset", strict=True) or None
    )
    ids = (external_id or asset_id, asset_id or external_id)
    return (*ids, url, meta, width, height, pages, batches)


def task_fields(
    task_raw: Mapping[str, Any], loc: _Loc
) -> tuple[str | None, str | None, datetime | None, str | None]:
    """``(taskId, type, updatedAt, updatedBy)`` of a task (both paths use this)."""
    return (
        _str(task_raw.get("taskId"), loc, "task.taskId"),
        _str(task_raw.get("type"), loc, "task.type"),
        _time(task_raw.get("updatedAt"), loc, "task.updatedAt"),
        _str(task_raw.get("updatedBy"), loc, "task.updatedBy"),
    )


def parse_asset(raw: Any, index: int, *, line: int | None = None, first: int = 0) -> Asset:
    """Parse one asset dict of a v3 (``task``) or legacy v2 (``tasks[]``) export.

    Args:
        raw: the asset as decoded from JSON.
        index: its position in the export (for messages and :attr:`Asset.index`).
        line: its line number in an NDJSON file, if any.
        first: for a piece of a large asset (:mod:`._split`), the place of its first
            ``task.tools`` entry in the whole asset (its tools are named from there).

    Raises:
        ExportFormatError: naming the asset, object and field that is malformed.
    """
    loc = _Loc(None, index, line, first)
    external_id, asset_id, url, meta, width, height, pages, batches = asset_fields(raw, loc)
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
    task_id, task_type, updated_at, updated_by = task_fields(task_raw, loc)
    task = Task(
        task_id=task_id,
        answer=answer,
        history=history,
        type=task_type,
        updated_at=updated_at,
        updated_by=updated_by,
    )
    return Asset(
        index=index,
        asset_id=asset_id,
        external_id=external_id,
        url=url,
        task=task,
        width=width,
        height=height,
        batches=batches,
        pages=pages,
        metadata=meta,
        generation=generation,
    )
