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
from typing import Any

from ._fields import _list, _Loc, _opt_int, _str, _type, parse_time
from ._parse_geometry import ENVELOPE_KEYS, parse_geometry
from .records import (
    Asset,
    Classification,
    ObjectMeta,
    Relation,
    Snapshot,
    Task,
    ToolObject,
)

__all__ = [
    "ENVELOPE_KEYS",
    "parse_asset",
    "parse_classifications",
    "parse_meta",
    "parse_relations",
    "parse_time",
]


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
    kind, geometry = parse_geometry(obj, loc)
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
