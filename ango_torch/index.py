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

import hashlib
import json
import os
import shutil
import tempfile
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _parse
from ._columns import AssetColumns
from ._fields import _Loc
from ._parse_geometry import _pdf
from ._read import loads
from ._tables import StringTable, _TableBuilder, dumps
from .errors import ExportFormatError
from .records import (
    Asset,
    BoundingBox,
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

__all__ = ["INDEX_VERSION", "SCHEMA", "ExportIndex", "IndexBuilder", "StringTable", "schema_key"]

INDEX_VERSION = 1

# The modules whose code decides what an index holds: reading, parsing, columns, layout.
_SCHEMA_MODULES = (
    "_columns.py",
    "_fields.py",
    "_indexing.py",
    "_parse.py",
    "_parse_geometry.py",
    "_read.py",
    "_tables.py",
    "index.py",
    "records.py",
)


def schema_key(package: Path | None = None) -> str:
    """A hash of the sources of the modules that build an index (and the layout version).

    A persisted index records the key it was built with; one with another key was
    written by a different parser and is rebuilt, so a fix to the parser reaches
    cached exports without anyone bumping a version by hand.
    """
    folder = Path(__file__).parent if package is None else package
    h = hashlib.blake2b(f"ango-torch index {INDEX_VERSION}".encode(), digest_size=16)
    for name in _SCHEMA_MODULES:
        try:
            h.update((folder / name).read_bytes())
        except OSError:  # installed without sources (bytecode only): its name at least
            h.update(name.encode())
    return h.hexdigest()


SCHEMA = schema_key()
"""The schema key of this version of the package (see :func:`schema_key`)."""


class IndexBuilder:
    """Appends assets to growing typed arrays; :meth:`build` freezes them."""

    def __init__(self) -> None:
        self.strings = _TableBuilder(intern=True)
        self.extras = _TableBuilder(intern=False)
        self.titles: dict[str, int] = {}
        self.a = {k: array("i") for k in _ASSET_COLS}
        self.page_urls = array("i")
        self.s = {k: array("i") for k in _SNAP_COLS}
        self.obj_kind = array("B")
        self.obj_title = array("i")
        self.obj_page = array("i")
        self.obj_rings = array("i")
        self.bbox = array("f")
        self.ring_len = array("q")
        self.ring_zone = array("i")
        self.ring_hole = array("b")
        self.verts: list[npt.NDArray[np.float32]] = []

    def __len__(self) -> int:
        return len(self.a["asset_id"])

    def add_columns(self, c: AssetColumns) -> None:
        """Append one asset given as columns (see :mod:`ango_torch._columns`)."""
        a, s, strings = self.a, self.s, self.strings
        i = len(self)
        a["asset_id"].append(strings.add(c.asset_id))
        a["external_id"].append(strings.add(c.external_id))
        a["url"].append(strings.add(c.url))
        a["width"].append(c.width)
        a["height"].append(c.height)
        a["page_start"].append(len(self.page_urls))
        self.page_urls.extend(strings.add(p) for p in c.pages)
        a["page_end"].append(len(self.page_urls))
        a["snap_start"].append(len(s["asset"]))
        obj = len(self.obj_kind)
        for stage, stage_id, brush, medical, n, extra in c.snaps:
            s["asset"].append(i)
            s["stage"].append(strings.add(stage))
            s["stage_id"].append(strings.add(stage_id))
            s["brush"].append(strings.add(brush))
            s["medical_brush"].append(strings.add(medical))
            s["obj_start"].append(obj)
            obj += n
            s["obj_end"].append(obj)
            s["extra"].append(self.extras.add(dumps(extra)) if extra else -1)
        a["snap_end"].append(len(s["asset"]))
        a["extra"].append(self.extras.add(dumps(c.extra)))
        a["objects"].append(self.extras.add(dumps(c.obj_extra)) if c.obj_extra else -1)
        titles = self.titles
        self.obj_title.extend(titles.setdefault(t, len(titles)) for t in c.titles)
        self.obj_kind.extend(c.kinds)
        self.obj_page.extend(c.opages)
        self.obj_rings.extend(c.obj_rings)
        self.bbox.extend(c.bbox)
        self.ring_len.extend(c.ring_len)
        self.ring_zone.extend(c.ring_zone)
        self.ring_hole.extend(c.ring_hole)
        if c.verts is not None and len(c.verts):
            self.verts.append(c.verts)

    def build(self, *, digest: str = "") -> ExportIndex:
        """Freeze the columns into an :class:`ExportIndex`."""
        arrays: dict[str, npt.NDArray[Any]] = {}
        for k, v in self.a.items():
            arrays[f"asset_{k}"] = np.frombuffer(v, np.int32)
        arrays["page_urls"] = np.frombuffer(self.page_urls, np.int32)
        for k, v in self.s.items():
            arrays[f"snap_{k}"] = np.frombuffer(v, np.int32)
        arrays["obj_kind"] = np.frombuffer(self.obj_kind, np.uint8)
        arrays["obj_title"] = np.frombuffer(self.obj_title, np.int32)
        arrays["obj_page"] = np.frombuffer(self.obj_page, np.int32)
        rings_per_obj = np.frombuffer(self.obj_rings, np.int32)
        arrays["obj_ring_start"] = np.concatenate([[0], np.cumsum(rings_per_obj)]).astype(np.int64)
        arrays["obj_bbox"] = np.frombuffer(self.bbox, np.float32).reshape(-1, 4)
        ring_len = np.frombuffer(self.ring_len, np.int64)
        arrays["ring_vert"] = np.concatenate([[0], np.cumsum(ring_len)]).astype(np.int64)
        arrays["ring_zone"] = np.frombuffer(self.ring_zone, np.int32)
        arrays["ring_hole"] = np.frombuffer(self.ring_hole, np.int8).astype(bool)
        arrays["verts"] = np.concatenate(self.verts) if self.verts else np.zeros((0, 2), np.float32)
        strings, extras = self.strings.build(), self.extras.build()
        arrays["strings_blob"], arrays["strings_offsets"] = strings.blob, strings.offsets
        arrays["extras_blob"], arrays["extras_offsets"] = extras.blob, extras.offsets
        titles = sorted(self.titles, key=self.titles.__getitem__)
        arrays["titles"] = np.frombuffer(dumps(titles), np.uint8).copy()
        arrays["meta"] = np.frombuffer(
            dumps({"version": INDEX_VERSION, "schema": SCHEMA, "digest": digest}), np.uint8
        ).copy()
        self.__init__()  # type: ignore[misc]  # let go of the growing buffers
        return ExportIndex(arrays)


_ASSET_COLS = (
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
    "objects",
)
_SNAP_COLS = (
    "asset",
    "stage",
    "stage_id",
    "brush",
    "medical_brush",
    "obj_start",
    "obj_end",
    "extra",
)


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

    @classmethod
    def concat(cls, parts: list[ExportIndex], *, digest: str = "") -> ExportIndex:
        """One index of several, in order (the parallel indexer's partial indexes).

        Row ids (snapshots, objects, rings, vertices, table entries) of each part are
        shifted past the parts before it; class titles are merged.
        """
        if not parts:
            return IndexBuilder().build(digest=digest)
        i32, i64 = np.int32, np.int64
        titles: dict[str, int] = {}
        out: dict[str, list[npt.NDArray[Any]]] = {}
        base = dict.fromkeys(("asset", "snap", "obj", "ring", "vert", "page", "str", "extra"), 0)
        blobs = {"str": 0, "extra": 0}

        def add(key: str, value: npt.NDArray[Any]) -> None:
            out.setdefault(key, []).append(value)

        def shift(a: npt.NDArray[Any], by: int) -> npt.NDArray[Any]:
            return np.where(a >= 0, a + by, a).astype(a.dtype)

        for p in parts:
            A = p.arrays
            for k in ("asset_id", "external_id", "url"):
                add(f"asset_{k}", shift(A[f"asset_{k}"], base["str"]))
            for k in ("width", "height"):
                add(f"asset_{k}", A[f"asset_{k}"])
            for k in ("extra", "objects"):
                add(f"asset_{k}", shift(A[f"asset_{k}"], base["extra"]))
            for k, b in (
                ("snap_start", "snap"),
                ("snap_end", "snap"),
                ("page_start", "page"),
                ("page_end", "page"),
            ):
                add(f"asset_{k}", (A[f"asset_{k}"] + base[b]).astype(i32))
            add("page_urls", shift(A["page_urls"], base["str"]))
            add("snap_asset", (A["snap_asset"] + base["asset"]).astype(i32))
            for k in ("stage", "stage_id", "brush", "medical_brush"):
                add(f"snap_{k}", shift(A[f"snap_{k}"], base["str"]))
            for k in ("obj_start", "obj_end"):
                add(f"snap_{k}", (A[f"snap_{k}"] + base["obj"]).astype(i32))
            add("snap_extra", shift(A["snap_extra"], base["extra"]))
            remap = np.array([titles.setdefault(t, len(titles)) for t in p.titles] or [0], i32)
            add("obj_title", remap[A["obj_title"]] if len(A["obj_title"]) else A["obj_title"])
            for k in ("obj_kind", "obj_page", "obj_bbox", "ring_zone", "ring_hole", "verts"):
                add(k, A[k])
            add("obj_ring_start", A["obj_ring_start"][:-1] + base["ring"])
            add("ring_vert", A["ring_vert"][:-1] + base["vert"])
            for table, key in (("strings", "str"), ("extras", "extra")):
                add(f"{table}_blob", A[f"{table}_blob"])
                add(f"{table}_offsets", A[f"{table}_offsets"][:-1] + blobs[key])
                blobs[key] += len(A[f"{table}_blob"])
            base["asset"] += len(p)
            base["snap"] += len(A["snap_asset"])
            base["obj"] += len(A["obj_kind"])
            base["ring"] += len(A["ring_zone"])
            base["vert"] += len(A["verts"])
            base["page"] += len(A["page_urls"])
            base["str"] += len(p.strings)
            base["extra"] += len(p.extras)
        arrays = {k: np.concatenate(v) for k, v in out.items()}
        arrays["obj_ring_start"] = np.append(arrays["obj_ring_start"], base["ring"]).astype(i64)
        arrays["ring_vert"] = np.append(arrays["ring_vert"], base["vert"]).astype(i64)
        arrays["strings_offsets"] = np.append(arrays["strings_offsets"], blobs["str"]).astype(i64)
        arrays["extras_offsets"] = np.append(arrays["extras_offsets"], blobs["extra"]).astype(i64)
        ordered = sorted(titles, key=titles.__getitem__)
        arrays["titles"] = np.frombuffer(dumps(ordered), np.uint8)
        arrays["meta"] = np.frombuffer(
            dumps({"version": INDEX_VERSION, "schema": SCHEMA, "digest": digest}), np.uint8
        )
        return cls(arrays)

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
