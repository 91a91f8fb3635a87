"""The compact, columnar index of an export.

Every asset, stage snapshot, object, ring and vertex of an export lives in a handful
of numpy arrays (plus string and byte tables that are themselves numpy buffers), not
in a Python object per annotation.  Forked DataLoader workers therefore share the
index's pages instead of copying them as reference counts are touched
(pytorch/pytorch#13246; detectron2 serializes its records for the same reason).
The index saves to and loads from a single ``.npz`` file.

Layout (``S`` = string table id, ``-1`` = none):

- assets: ``asset_id``, ``external_id``, ``url`` (S), ``width``/``height`` (-1 when
  missing), ``snap_start``/``snap_end`` (snapshot rows; the first is the exported
  answer, then stageHistory oldest first), ``page_start``/``page_end`` (rows of
  ``page_urls``), ``extra`` (byte-table id of the rest: metadata, batches, task ids).
- snapshots: ``asset``, ``stage``/``stage_id``/``brush``/``medical_brush`` (S),
  ``obj_start``/``obj_end``, ``extra`` (classifications, relations, completion).
- objects: ``kind`` (:class:`ToolKind`), ``title`` (id into ``titles``),
  ``object_id``/``schema_id`` (S), ``page`` (-1 none), ``bbox`` float32 ``[4]`` XYXY
  tight box of the geometry (NaN for text/pdf/other), ``ring_start``/``ring_end``,
  ``extra`` (classifications, metadata, non-vertex geometry fields).
- rings: ``vert_start`` (with a final sentinel row ``vert_start[-1] == len(verts)``),
  ``zone`` (zone number within its object), ``hole`` (bool).
- verts: float32 ``[V, 2]`` of ``(x, y)``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _parse
from ._read import loads
from .errors import ExportFormatError
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

__all__ = ["INDEX_VERSION", "ExportIndex", "IndexBuilder", "StringTable"]

INDEX_VERSION = 1
_NAN4 = (float("nan"),) * 4


class StringTable:
    """Many byte strings in one ``uint8`` buffer with ``int64`` offsets."""

    __slots__ = ("blob", "offsets")

    def __init__(self, blob: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64]) -> None:
        self.blob = blob
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def raw(self, i: int) -> bytes:
        """The ``i``-th entry's bytes (``b""`` for ``i < 0``)."""
        if i < 0:
            return b""
        return self.blob[self.offsets[i] : self.offsets[i + 1]].tobytes()

    def get(self, i: int) -> str | None:
        """The ``i``-th entry as text, or ``None`` for ``i < 0``."""
        return None if i < 0 else self.raw(i).decode("utf-8")

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return int(self.blob.nbytes + self.offsets.nbytes)


class _TableBuilder:
    def __init__(self, *, intern: bool) -> None:
        self._parts: list[bytes] = []
        self._offsets: list[int] = [0]
        self._ids: dict[bytes, int] | None = {} if intern else None

    def add(self, value: str | bytes | None) -> int:
        if value is None:
            return -1
        data = value.encode("utf-8") if isinstance(value, str) else value
        if self._ids is not None:
            found = self._ids.get(data)
            if found is not None:
                return found
        self._parts.append(data)
        self._offsets.append(self._offsets[-1] + len(data))
        i = len(self._parts) - 1
        if self._ids is not None:
            self._ids[data] = i
        return i

    def build(self) -> StringTable:
        blob = np.frombuffer(b"".join(self._parts), np.uint8).copy()
        return StringTable(blob, np.asarray(self._offsets, np.int64))


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=_json_default).encode("utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot serialize {type(value).__name__}")


def _class_raw(c: Classification) -> dict[str, Any]:
    d: dict[str, Any] = {
        "objectId": c.object_id,
        "schemaId": c.schema_id,
        "tool": c.tool,
        "title": c.title,
        "answer": c.answer,
        "classifications": [_class_raw(x) for x in c.classifications],
    }
    if c.page is not None:
        d["page"] = c.page
    if c.metadata is not None:
        d["metadata"] = _meta_raw(c.metadata)
    return d


def _meta_raw(m: ObjectMeta) -> dict[str, Any]:
    d = dict(m.extra)
    if m.created_at is not None:
        d["createdAt"] = m.created_at.isoformat()
    if m.created_by is not None:
        d["createdBy"] = m.created_by
    return d


def _relation_raw(r: Relation) -> dict[str, Any]:
    d: dict[str, Any] = {"objectId": r.object_id, "schemaId": r.schema_id, "title": r.title}
    if r.group is not None:
        d["group"] = list(r.group)
    else:
        d.update({"from": r.from_id, "to": r.to_id, "direction": r.direction})
    if r.page is not None:
        d["page"] = r.page
    return d


class IndexBuilder:
    """Appends parsed :class:`Asset` records to growing columns; :meth:`build` freezes."""

    def __init__(self) -> None:
        self.strings = _TableBuilder(intern=True)
        self.extras = _TableBuilder(intern=True)
        self.titles: dict[str, int] = {}
        self.a: dict[str, list[int]] = {
            k: []
            for k in (
                "asset_id",
                "external_id",
                "url",
                "width",
                "height",
                "snap_start",
                "snap_end",
                "page_start",
                "page_end",
                "extra",
            )
        }
        self.page_urls: list[int] = []
        self.s: dict[str, list[int]] = {
            k: []
            for k in (
                "asset",
                "stage",
                "stage_id",
                "brush",
                "medical_brush",
                "obj_start",
                "obj_end",
                "extra",
            )
        }
        self.o: dict[str, list[int]] = {
            k: [] for k in ("kind", "title", "object_id", "schema_id", "page", "ring_start", "extra")
        }
        self.bbox: list[tuple[float, float, float, float]] = []
        self.ring_vert: list[int] = []
        self.ring_zone: list[int] = []
        self.ring_hole: list[bool] = []
        self.verts: list[npt.NDArray[np.float32]] = []
        self.nverts = 0

    def __len__(self) -> int:
        return len(self.a["asset_id"])

    def _ring(self, pts: npt.NDArray[np.float32], zone: int, hole: bool) -> None:
        self.ring_vert.append(self.nverts)
        self.ring_zone.append(zone)
        self.ring_hole.append(hole)
        self.verts.append(pts)
        self.nverts += len(pts)

    def _object(self, t: ToolObject) -> None:
        o, g = self.o, t.geometry
        o["kind"].append(int(t.kind))
        title = self.titles.setdefault(t.title, len(self.titles))
        o["title"].append(title)
        o["object_id"].append(self.strings.add(t.object_id))
        o["schema_id"].append(self.strings.add(t.schema_id))
        o["page"].append(-1 if t.page is None else t.page)
        o["ring_start"].append(len(self.ring_vert))
        extra: dict[str, Any] = {}
        bbox = _NAN4
        if isinstance(g, BoundingBox):
            bbox = g.xyxy()
        elif isinstance(g, (Polygon, Polyline)):
            self._ring(g.points, 0, False)
            bbox = _bounds(g.points)
        elif isinstance(g, RotatedBox):
            self._ring(g.corners, 0, False)
            bbox = _bounds(g.corners)
            extra["g"] = [g.x, g.y, g.width, g.height, g.rotation]
        elif isinstance(g, Point):
            bbox = (g.x, g.y, g.x, g.y)
        elif isinstance(g, Segmentation):
            regions = []
            for z, zone in enumerate(g.zones):
                self._ring(zone.region, z, False)
                regions.append(zone.region)
                for hole in zone.holes:
                    self._ring(hole, z, True)
            pts = [r for r in regions if len(r)]
            if pts:
                bbox = _bounds(np.concatenate(pts))
        elif isinstance(g, Ner):
            extra["g"] = [g.start, g.end, g.selection]
        elif isinstance(g, Pdf):
            extra["g"] = g.raw
        elif isinstance(g, OtherGeometry):
            extra["g"] = [g.key, g.raw]
        self.bbox.append(bbox)
        if t.classifications:
            extra["c"] = [_class_raw(c) for c in t.classifications]
        if t.metadata is not None:
            extra["m"] = _meta_raw(t.metadata)
        if t.interpolation_stopped:
            extra["i"] = True
        o["extra"].append(self.extras.add(_dumps(extra)) if extra else -1)

    def _snapshot(self, asset: int, s: Snapshot) -> None:
        d = self.s
        d["asset"].append(asset)
        d["stage"].append(self.strings.add(s.stage))
        d["stage_id"].append(self.strings.add(s.stage_id))
        d["brush"].append(self.strings.add(s.brush_url))
        d["medical_brush"].append(self.strings.add(s.medical_brush_url))
        d["obj_start"].append(len(self.o["kind"]))
        for t in s.tools:
            self._object(t)
        d["obj_end"].append(len(self.o["kind"]))
        extra: dict[str, Any] = {}
        if s.classifications:
            extra["c"] = [_class_raw(c) for c in s.classifications]
        if s.relations:
            extra["r"] = [_relation_raw(r) for r in s.relations]
        if s.completed_at is not None:
            extra["t"] = s.completed_at.isoformat()
        if s.completed_by is not None:
            extra["b"] = s.completed_by
        d["extra"].append(self.extras.add(_dumps(extra)) if extra else -1)

    def add(self, asset: Asset) -> None:
        """Append one parsed asset."""
        a, i = self.a, len(self)
        a["asset_id"].append(self.strings.add(asset.asset_id))
        a["external_id"].append(self.strings.add(asset.external_id))
        a["url"].append(self.strings.add(asset.url))
        a["width"].append(-1 if asset.width is None else asset.width)
        a["height"].append(-1 if asset.height is None else asset.height)
        a["page_start"].append(len(self.page_urls))
        self.page_urls.extend(self.strings.add(p) for p in asset.pages)
        a["page_end"].append(len(self.page_urls))
        a["snap_start"].append(len(self.s["asset"]))
        self._snapshot(i, asset.task.answer)
        for snap in asset.task.history:
            self._snapshot(i, snap)
        a["snap_end"].append(len(self.s["asset"]))
        t = asset.task
        extra = {
            "m": dict(asset.metadata),
            "b": list(asset.batches),
            "g": asset.generation,
            "t": [t.task_id, t.type, t.updated_at.isoformat() if t.updated_at else None,
                  t.updated_by],
        }
        a["extra"].append(self.extras.add(_dumps(extra)))

    def build(self, *, digest: str = "") -> ExportIndex:
        """Freeze the columns into an :class:`ExportIndex`."""
        i32, i64 = np.int32, np.int64
        arrays: dict[str, npt.NDArray[Any]] = {}
        for k, v in self.a.items():
            arrays[f"asset_{k}"] = np.asarray(v, i32)
        arrays["page_urls"] = np.asarray(self.page_urls, i32)
        for k, v in self.s.items():
            arrays[f"snap_{k}"] = np.asarray(v, i32)
        for k, v in self.o.items():
            arrays[f"obj_{k}"] = np.asarray(v, np.uint8 if k == "kind" else i32)
        arrays["obj_bbox"] = np.asarray(self.bbox, np.float32).reshape(-1, 4)
        arrays["obj_ring_end"] = np.append(arrays["obj_ring_start"][1:], len(self.ring_vert)).astype(i32)  # noqa: E501
        arrays["ring_vert"] = np.asarray([*self.ring_vert, self.nverts], i64)
        arrays["ring_zone"] = np.asarray(self.ring_zone, i32)
        arrays["ring_hole"] = np.asarray(self.ring_hole, bool)
        arrays["verts"] = (
            np.concatenate(self.verts).astype(np.float32, copy=False)
            if self.verts
            else np.zeros((0, 2), np.float32)
        )
        strings, extras = self.strings.build(), self.extras.build()
        arrays["strings_blob"], arrays["strings_offsets"] = strings.blob, strings.offsets
        arrays["extras_blob"], arrays["extras_offsets"] = extras.blob, extras.offsets
        titles = sorted(self.titles, key=self.titles.__getitem__)
        arrays["titles"] = np.frombuffer(_dumps(titles), np.uint8).copy()
        arrays["meta"] = np.frombuffer(
            _dumps({"version": INDEX_VERSION, "digest": digest}), np.uint8
        ).copy()
        return ExportIndex(arrays)


def _bounds(pts: npt.NDArray[np.float32]) -> tuple[float, float, float, float]:
    if not len(pts):
        return _NAN4
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


@dataclass(frozen=True, slots=True)
class ObjectRows:
    """Column views of a contiguous run of objects (one snapshot)."""

    kind: npt.NDArray[np.uint8]
    title: npt.NDArray[np.int32]
    page: npt.NDArray[np.int32]
    bbox: npt.NDArray[np.float32]
    start: int


class ExportIndex:
    """A frozen, columnar index of an export (see the module docstring for the layout).

    Plain numpy data: pickles cheaply and is shared, not copied, by forked workers.
    """

    def __init__(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        self.arrays = arrays
        for k, v in arrays.items():
            v.flags.writeable = False
            setattr(self, k, v)
        self.strings = StringTable(arrays["strings_blob"], arrays["strings_offsets"])
        self.extras = StringTable(arrays["extras_blob"], arrays["extras_offsets"])
        self.titles: list[str] = json.loads(arrays["titles"].tobytes())
        meta = json.loads(arrays["meta"].tobytes())
        if meta.get("version") != INDEX_VERSION:
            raise ExportFormatError(f"index version {meta.get('version')}, expected {INDEX_VERSION}")
        self.digest: str = meta.get("digest", "")

    # Column attributes are set dynamically; declare the ones used for typing.
    asset_asset_id: npt.NDArray[np.int32]
    asset_external_id: npt.NDArray[np.int32]
    asset_url: npt.NDArray[np.int32]
    asset_width: npt.NDArray[np.int32]
    asset_height: npt.NDArray[np.int32]
    asset_snap_start: npt.NDArray[np.int32]
    asset_snap_end: npt.NDArray[np.int32]
    asset_page_start: npt.NDArray[np.int32]
    asset_page_end: npt.NDArray[np.int32]
    asset_extra: npt.NDArray[np.int32]
    page_urls: npt.NDArray[np.int32]
    snap_asset: npt.NDArray[np.int32]
    snap_stage: npt.NDArray[np.int32]
    snap_stage_id: npt.NDArray[np.int32]
    snap_brush: npt.NDArray[np.int32]
    snap_medical_brush: npt.NDArray[np.int32]
    snap_obj_start: npt.NDArray[np.int32]
    snap_obj_end: npt.NDArray[np.int32]
    snap_extra: npt.NDArray[np.int32]
    obj_kind: npt.NDArray[np.uint8]
    obj_title: npt.NDArray[np.int32]
    obj_object_id: npt.NDArray[np.int32]
    obj_schema_id: npt.NDArray[np.int32]
    obj_page: npt.NDArray[np.int32]
    obj_ring_start: npt.NDArray[np.int32]
    obj_ring_end: npt.NDArray[np.int32]
    obj_extra: npt.NDArray[np.int32]
    obj_bbox: npt.NDArray[np.float32]
    ring_vert: npt.NDArray[np.int64]
    ring_zone: npt.NDArray[np.int32]
    ring_hole: npt.NDArray[np.bool_]
    verts: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return len(self.asset_asset_id)

    def __getstate__(self) -> dict[str, npt.NDArray[Any]]:
        return self.arrays

    def __setstate__(self, state: dict[str, npt.NDArray[Any]]) -> None:
        self.__init__(state)  # type: ignore[misc]

    @property
    def nbytes(self) -> int:
        """Total bytes held by the index's arrays."""
        return int(sum(v.nbytes for v in self.arrays.values()))

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to ``path`` (``.npz``, uncompressed) atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **self.arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ExportIndex:
        """Read an index written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls({k: z[k] for k in z.files})
        except (OSError, ValueError, KeyError) as exc:
            raise ExportFormatError(f"index {str(path)!r} is unreadable ({exc})") from exc

    # -- lookups -----------------------------------------------------------------------
    def string(self, i: int) -> str | None:
        """An entry of the string table (``None`` for -1)."""
        return self.strings.get(int(i))

    def extra(self, i: int) -> dict[str, Any]:
        """A decoded entry of the extras table (``{}`` for -1)."""
        return loads(self.extras.raw(int(i))) if i >= 0 else {}

    def stages(self, asset: int) -> list[tuple[str | None, str | None]]:
        """``(stage, stage_id)`` of each snapshot of an asset, the answer first."""
        s0, s1 = int(self.asset_snap_start[asset]), int(self.asset_snap_end[asset])
        return [
            (self.string(self.snap_stage[s]), self.string(self.snap_stage_id[s]))
            for s in range(s0, s1)
        ]

    def rings(self, obj: int) -> list[tuple[npt.NDArray[np.float32], int, bool]]:
        """``(points [N, 2], zone, is_hole)`` of every ring of object row ``obj``."""
        r0, r1 = int(self.obj_ring_start[obj]), int(self.obj_ring_end[obj])
        return [
            (
                self.verts[self.ring_vert[r] : self.ring_vert[r + 1]],
                int(self.ring_zone[r]),
                bool(self.ring_hole[r]),
            )
            for r in range(r0, r1)
        ]

    # -- records -----------------------------------------------------------------------
    def geometry(self, obj: int, extra: dict[str, Any] | None = None) -> Geometry:
        """Rebuild the geometry record of object row ``obj``."""
        kind = ToolKind(int(self.obj_kind[obj]))
        extra = self.extra(int(self.obj_extra[obj])) if extra is None else extra
        g = extra.get("g")
        rings = self.rings(obj)
        if kind is ToolKind.BOUNDING_BOX:
            x1, y1, x2, y2 = (float(v) for v in self.obj_bbox[obj])
            return BoundingBox(x1, y1, x2 - x1, y2 - y1)
        if kind is ToolKind.POLYGON:
            return Polygon(rings[0][0])
        if kind is ToolKind.POLYLINE:
            return Polyline(rings[0][0])
        if kind is ToolKind.ROTATED_BOUNDING_BOX:
            x, y, w, h, r = g if g else (None,) * 5
            return RotatedBox(rings[0][0], x, y, w, h, r)
        if kind is ToolKind.POINT:
            return Point(float(self.obj_bbox[obj][0]), float(self.obj_bbox[obj][1]))
        if kind is ToolKind.SEGMENTATION:
            zones: dict[int, list[Any]] = {}
            for pts, z, hole in rings:
                entry = zones.setdefault(z, [None, []])
                if hole:
                    entry[1].append(pts)
                else:
                    entry[0] = pts
            return Segmentation(tuple(Zone(r, tuple(h)) for r, h in zones.values()))
        if kind is ToolKind.NER:
            return Ner(*(g or (None, None, None)))
        if kind is ToolKind.PDF:
            return _parse._pdf(g or {}, _parse._Loc(None, -1))
        key, raw = g or ("", None)
        return OtherGeometry(key, raw)

    def tool(self, obj: int) -> ToolObject:
        """Rebuild the :class:`ToolObject` of object row ``obj``."""
        extra = self.extra(int(self.obj_extra[obj]))
        page = int(self.obj_page[obj])
        return ToolObject(
            object_id=self.string(self.obj_object_id[obj]) or "",
            schema_id=self.string(self.obj_schema_id[obj]),
            title=self.titles[int(self.obj_title[obj])],
            kind=ToolKind(int(self.obj_kind[obj])),
            geometry=self.geometry(obj, extra),
            classifications=_parse.parse_classifications(extra.get("c")),
            page=None if page < 0 else page,
            interpolation_stopped=bool(extra.get("i", False)),
            metadata=_parse.parse_meta(extra.get("m")),
        )

    def snapshot(self, s: int) -> Snapshot:
        """Rebuild snapshot row ``s``."""
        extra = self.extra(int(self.snap_extra[s]))
        o0, o1 = int(self.snap_obj_start[s]), int(self.snap_obj_end[s])
        return Snapshot(
            stage=self.string(self.snap_stage[s]),
            stage_id=self.string(self.snap_stage_id[s]),
            tools=tuple(self.tool(o) for o in range(o0, o1)),
            classifications=_parse.parse_classifications(extra.get("c")),
            relations=_parse.parse_relations(extra.get("r")),
            brush_url=self.string(self.snap_brush[s]),
            medical_brush_url=self.string(self.snap_medical_brush[s]),
            completed_at=_parse.parse_time(extra.get("t")),
            completed_by=extra.get("b"),
        )

    def asset(self, i: int) -> Asset:
        """Rebuild the :class:`Asset` record of asset ``i``."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"asset index {i} out of range for an export of {n} assets")
        i %= n
        extra = self.extra(int(self.asset_extra[i]))
        s0, s1 = int(self.asset_snap_start[i]), int(self.asset_snap_end[i])
        task_id, task_type, updated_at, updated_by = extra.get("t", [None] * 4)
        w, h = int(self.asset_width[i]), int(self.asset_height[i])
        p0, p1 = int(self.asset_page_start[i]), int(self.asset_page_end[i])
        return Asset(
            index=i,
            asset_id=self.string(self.asset_asset_id[i]) or "",
            external_id=self.string(self.asset_external_id[i]) or "",
            url=self.string(self.asset_url[i]),
            task=Task(
                task_id=task_id,
                answer=self.snapshot(s0),
                history=tuple(self.snapshot(s) for s in range(s0 + 1, s1)),
                type=task_type,
                updated_at=_parse.parse_time(updated_at),
                updated_by=updated_by,
            ),
            width=None if w < 0 else w,
            height=None if h < 0 else h,
            batches=tuple(extra.get("b", ())),
            pages=tuple(self.string(p) or "" for p in self.page_urls[p0:p1]),
            metadata=extra.get("m", {}),
            generation=int(extra.get("g", 3)),
        )

    def __iter__(self) -> Iterator[Asset]:
        for i in range(len(self)):
            yield self.asset(i)


def build_index(assets: Iterable[Asset], *, digest: str = "") -> ExportIndex:
    """Index parsed assets (in order)."""
    b = IndexBuilder()
    for a in assets:
        b.add(a)
    return b.build(digest=digest)


