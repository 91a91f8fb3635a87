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
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ExportFormatError
from ..records import (
    Asset,
    BoundingBox,
    BoundingBox3D,
    Classification,
    Geometry,
    Ner,
    OtherGeometry,
    Point,
    Polygon,
    Polyline,
    RotatedBox,
    Segmentation,
    Snapshot,
    Task,
    ToolKind,
    ToolObject,
    Zone,
)
from . import _parse
from ._fields import _Loc, parse_time
from ._parse_geometry import _pdf
from ._read import loads
from ._schema import INDEX_VERSION, SCHEMA, schema_key
from ._tables import StringTable

__all__ = ["INDEX_VERSION", "SCHEMA", "ExportIndex", "StringTable", "schema_key"]


class ExportIndex:
    """A frozen, columnar index of an export (see the module docstring for the layout).

    Plain numpy data: pickles cheaply and is shared, not copied, by forked workers.
    """

    def __init__(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        # Memory-mapped columns become plain ndarray views of the mapping.
        self.arrays = arrays = {
            k: v.view(np.ndarray) if isinstance(v, np.memmap) else v for k, v in arrays.items()
        }
        for k, v in arrays.items():
            v.flags.writeable = False
            setattr(self, k, v)
        self.strings = StringTable(arrays["strings_blob"], arrays["strings_offsets"])
        self.extras = StringTable(arrays["extras_blob"], arrays["extras_offsets"])
        self.titles: list[str] = json.loads(arrays["titles"].tobytes())
        meta = json.loads(arrays["meta"].tobytes())
        if meta.get("version") != INDEX_VERSION:
            raise ExportFormatError(
                f"index version {meta.get('version')}, expected {INDEX_VERSION}"
            )
        self.digest: str = meta.get("digest", "")
        self.schema: str = meta.get("schema", "")
        self.source: Path | None = None  # the folder the columns are mapped from

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
    asset_objects: npt.NDArray[np.int32]
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
    obj_page: npt.NDArray[np.int32]
    obj_ring_start: npt.NDArray[np.int64]
    obj_bbox: npt.NDArray[np.float32]
    ring_vert: npt.NDArray[np.int64]
    ring_zone: npt.NDArray[np.int32]
    ring_hole: npt.NDArray[np.bool_]
    verts: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return len(self.asset_asset_id)

    def __getstate__(self) -> dict[str, Any]:
        # A saved index travels as its folder: a spawned worker maps the same pages
        # instead of receiving (and holding) a copy of every column.
        if self.source is not None:
            return {"__path__": str(self.source)}
        return self.arrays

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "__path__" in state:
            loaded = type(self).load(state["__path__"])
            self.__dict__.update(loaded.__dict__)
            return
        self.__init__(state)  # type: ignore[misc]

    @property
    def nbytes(self) -> int:
        """Total bytes held by the index's arrays."""
        return int(sum(v.nbytes for v in self.arrays.values()))

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to the folder ``path`` (one ``.npy`` per column), atomically.

        :meth:`load` memory-maps the columns: re-opening costs next to nothing, and
        every process that opens (or unpickles) the index shares the same pages.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, suffix=".tmp"))
        try:
            for name, value in self.arrays.items():
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(value), allow_pickle=False)
            try:
                os.replace(tmp, path)
            except OSError:
                if not (path / "meta.npy").exists():  # not a concurrent writer's copy
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ExportIndex:
        """Open an index written by :meth:`save` (its columns memory-mapped, read-only)."""
        path = Path(path)
        try:
            if path.is_dir():
                arrays = {f.stem: _map(f) for f in sorted(path.glob("*.npy"))}
                index = cls(arrays)
                if index.schema != SCHEMA:
                    raise ExportFormatError(
                        f"index {str(path)!r} was built by another version of the parser "
                        f"(schema {index.schema or 'none'!r}, expected {SCHEMA!r})"
                    )
                index.source = path
                return index
            with np.load(path, allow_pickle=False) as z:  # an .npz of an earlier version
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

    def rings(self, obj: int) -> list[tuple[npt.NDArray[np.float32], int, bool]]:
        """``(points [N, 2], zone, is_hole)`` of every ring of object row ``obj``."""
        r0, r1 = int(self.obj_ring_start[obj]), int(self.obj_ring_start[obj + 1])
        rv = self.ring_vert
        return [
            (self.verts[rv[r] : rv[r + 1]], int(self.ring_zone[r]), bool(self.ring_hole[r]))
            for r in range(r0, r1)
        ]

    def first_object(self, asset: int) -> int:
        """Row of the asset's first object (its answer's first, then each stage's)."""
        return int(self.snap_obj_start[self.asset_snap_start[asset]])

    def object_extras(self, asset: int) -> list[list[Any]]:
        """Per object of ``asset`` (all snapshots, row order): ``[objectId, schemaId,
        classifications, metadata, geometry extra, interpolationStopped]`` as raw JSON."""
        return self.extra(int(self.asset_objects[asset])) or []  # type: ignore[return-value]

    def snapshot_objects(self, snapshot_rows: npt.NDArray[np.int32]) -> npt.NDArray[np.bool_]:
        """Mask over the object rows: those of snapshot rows ``snapshot_rows`` (``-1``:
        none, skipped)."""
        rows = snapshot_rows[snapshot_rows >= 0]
        mark = np.zeros(len(self.obj_kind) + 1, np.int64)
        np.add.at(mark, self.snap_obj_start[rows], 1)
        np.add.at(mark, self.snap_obj_end[rows], -1)
        return np.asarray(np.cumsum(mark)[:-1] > 0)

    def brush_version(self, row: int) -> tuple[str, str, str]:
        """What tells apart the versions of snapshot row ``row``'s brush strokes.

        ``("task", taskId, updatedAt)`` for an asset's exported answer, ``("stage",
        stage id or name, completedAt)`` for a stageHistory snapshot; times as ISO-8601
        UTC instants (both parse paths agree on instants, not on their spelling), the
        raw text where a time does not parse. Keys the brush mask's file
        (:func:`~ango_torch.assets.layout.brush_content_key`).
        """
        asset = int(self.snap_asset[row])
        if row == int(self.asset_snap_start[asset]):
            task = self.extra(int(self.asset_extra[asset])).get("t") or [None] * 4
            return "task", str(task[0] or ""), _instant(task[2])
        extra = self.extra(int(self.snap_extra[row]))
        stage = self.string(self.snap_stage_id[row]) or self.string(self.snap_stage[row]) or ""
        return "stage", stage, _instant(extra.get("completedAt"))

    def snapshot_classifications(self, s: int) -> tuple[Classification, ...]:
        """The image-level classification answers of snapshot row ``s``."""
        extra = self.extra(int(self.snap_extra[s]))
        return _parse.parse_classifications(extra.get("classifications"))

    def object_classifications(
        self, asset: int, rows: list[int]
    ) -> list[tuple[Classification, ...]]:
        """The classification answers (attributes) of ``asset``'s object rows ``rows``."""
        extras, first = self.object_extras(asset), self.first_object(asset)
        return [_parse.parse_classifications(extras[row - first][2]) for row in rows]

    # -- records -----------------------------------------------------------------------
    def geometry(self, obj: int, gx: Any = None) -> Geometry:
        """Rebuild the geometry record of object row ``obj`` (``gx``: its extra)."""
        kind = ToolKind(int(self.obj_kind[obj]))
        rings = self.rings(obj)
        if kind is ToolKind.BOUNDING_BOX:
            x1, y1, x2, y2 = (float(v) for v in self.obj_bbox[obj])
            return BoundingBox(x1, y1, x2 - x1, y2 - y1)
        if kind is ToolKind.POLYGON:
            return Polygon(rings[0][0])
        if kind is ToolKind.POLYLINE:
            return Polyline(rings[0][0])
        if kind is ToolKind.ROTATED_BOUNDING_BOX:
            x, y, w, h, r = gx if gx else (None,) * 5
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
            return Ner(*(gx or (None, None, None)))
        if kind is ToolKind.PDF:
            return _pdf(gx or {}, _Loc(None, -1))
        key, raw = gx or ("", None)
        if key == "bounding-box" and isinstance(raw, list):  # stored by a 3D box only
            return BoundingBox3D(*(float(v) for v in raw))
        return OtherGeometry(key, raw)

    def tool(self, obj: int, extra: list[Any]) -> ToolObject:
        """Rebuild the :class:`ToolObject` of object row ``obj`` given its extras row."""
        oid, schema_id, classifications, meta, gx, interp = extra
        page = int(self.obj_page[obj])
        return ToolObject(
            object_id=oid,
            schema_id=schema_id,
            title=self.titles[int(self.obj_title[obj])],
            kind=ToolKind(int(self.obj_kind[obj])),
            geometry=self.geometry(obj, gx),
            classifications=_parse.parse_classifications(classifications),
            page=None if page < 0 else page,
            interpolation_stopped=bool(interp),
            metadata=_parse.parse_meta(meta),
        )

    def snapshot(self, s: int, objects: list[list[Any]] | None = None) -> Snapshot:
        """Rebuild snapshot row ``s``."""
        asset = int(self.snap_asset[s])
        objects = self.object_extras(asset) if objects is None else objects
        first = self.first_object(asset)
        extra = self.extra(int(self.snap_extra[s]))
        o0, o1 = int(self.snap_obj_start[s]), int(self.snap_obj_end[s])
        return Snapshot(
            stage=self.string(self.snap_stage[s]),
            stage_id=self.string(self.snap_stage_id[s]),
            tools=tuple(self.tool(o, objects[o - first]) for o in range(o0, o1)),
            classifications=_parse.parse_classifications(extra.get("classifications")),
            relations=_parse.parse_relations(extra.get("relations")),
            brush_url=self.string(self.snap_brush[s]),
            medical_brush_url=self.string(self.snap_medical_brush[s]),
            completed_at=_parse.parse_time(extra.get("completedAt")),
            completed_by=extra.get("completedBy"),
        )

    def asset(self, i: int) -> Asset:
        """Rebuild the :class:`Asset` record of asset ``i``."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"asset index {i} out of range for an export of {n} assets")
        i %= n
        extra = self.extra(int(self.asset_extra[i]))
        objects = self.object_extras(i)
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
                answer=self.snapshot(s0, objects),
                history=tuple(self.snapshot(s, objects) for s in range(s0 + 1, s1)),
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


def _map(file: Path) -> npt.NDArray[Any]:
    """A ``.npy`` file memory-mapped read-only (read normally where it cannot be mapped)."""
    try:
        return np.load(file, mmap_mode="r", allow_pickle=False)  # type: ignore[no-any-return]
    except ValueError:  # e.g. an empty column
        return np.load(file, allow_pickle=False)  # type: ignore[no-any-return]


def _instant(value: object) -> str:
    try:
        parsed = parse_time(value)
    except Exception:  # a malformed time still keys the file, by its text
        parsed = None
    return "" if value is None else parsed.isoformat() if parsed else str(value)
