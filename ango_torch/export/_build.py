"""Building an :class:`~ango_torch.export.index.ExportIndex`: from columns, or of parts.

:class:`IndexBuilder` appends each asset's columns (:mod:`~ango_torch.export._columns`)
to growing typed arrays and freezes them; :func:`concat` joins the partial indexes of
the parallel indexer (:mod:`~ango_torch.export._indexing`) into one.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import sys
from array import array
from typing import Any

import numpy as np
import numpy.typing as npt

from ._bytescan import json_list
from ._columns import AssetColumns, ChunkColumns
from ._schema import INDEX_VERSION, SCHEMA
from ._tables import _TableBuilder, dumps
from .index import ExportIndex

__all__ = ["IndexBuilder", "concat", "release_freed_memory"]

_INT32_MAX = 2**31 - 1


def release_freed_memory() -> None:
    """Hand freed heap back to the OS (glibc keeps it otherwise).

    Indexing frees far more than it keeps; without this the main process, and so every
    DataLoader worker forked from it, carries hundreds of MB of free heap.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # not glibc (e.g. musl)
            ctypes.CDLL("libc.so.6").malloc_trim(0)


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
        # The asset being added in pieces: (first object row, len(verts), len(titles),
        # the earlier pieces' object extras, their task.tools count).
        self._open: tuple[int, int, int, list[bytes], int] | None = None

    def __len__(self) -> int:
        return len(self.a["asset_id"])

    def add_columns(self, c: AssetColumns, *, part: int = 0, last: bool = True) -> None:
        """Append one asset given as columns (see :mod:`ango_torch.export._columns`).

        A large asset may come in pieces (:mod:`._split`: ``part`` 0, 1, ... of it,
        ``last`` on the final one), each holding a run of its ``task.tools`` entries:
        the objects of every piece are appended in order, and the final piece, the
        only one with the asset's other task lists (stageHistory, classifications,
        relations), adds the asset and snapshot rows, as one unsplit asset would.
        The pieces of an asset left out (:meth:`discard_open`) are passed over.
        """
        if not self._begin(part):
            return
        self._add_objects(c)
        objects = dumps(c.obj_extra) if c.obj_extra else None
        if not last:
            self._more(objects, c.snaps[0][4] if c.snaps else 0)
            return
        snaps = [(*row[:5], dumps(row[5]) if row[5] else None) for row in c.snaps]
        fields = (c.asset_id, c.external_id, c.url, c.width, c.height, c.pages)
        self._finish(fields, snaps, dumps(c.extra), objects)

    def add_piece(self, c: ChunkColumns, *, part: int, last: bool) -> None:
        """Append one piece of a large asset decoded by the typed path (:mod:`._typed`:
        a chunk of that one piece), as :meth:`add_columns` does."""
        if not self._begin(part):
            return
        self._add_chunk_objects(c)
        if not last:
            self._more(c.objects[0], c.snap_rows[0][4] if c.snap_rows else 0)
            return
        fields = (c.asset_id[0], c.external_id[0], c.url[0], c.width[0], c.height[0], c.pages[0])
        self._finish(fields, c.snap_rows, c.extra[0], c.objects[0])

    def _begin(self, part: int) -> bool:
        """Start an asset (``part`` 0); ``False`` for a piece of one left out."""
        if part == 0:
            self._open = (len(self.obj_kind), len(self.verts), len(self.titles), [], 0)
        return self._open is not None

    def _more(self, objects: bytes | None, n_task: int) -> None:
        """After a piece that is not the asset's last: keep its object rows' JSON and
        count its ``task.tools`` objects."""
        assert self._open is not None
        obj0, verts0, titles0, earlier, n_before = self._open
        earlier.append(objects or b"[]")
        self._open = (obj0, verts0, titles0, earlier, n_before + n_task)

    def _finish(
        self,
        fields: tuple[str, str, str | None, int, int, Any],
        snaps: Any,
        extra: bytes,
        objects: bytes | None,
    ) -> None:
        """Add the asset and snapshot rows of the asset begun by :meth:`_begin`."""
        assert self._open is not None
        obj, _, _, earlier, n_before = self._open
        self._open = None
        a, s, add = self.a, self.s, self.strings.add
        asset_id, external_id, url, width, height, pages = fields
        i = len(self)
        a["asset_id"].append(add(asset_id))
        a["external_id"].append(add(external_id))
        a["url"].append(add(url))
        a["width"].append(width)
        a["height"].append(height)
        a["page_start"].append(len(self.page_urls))
        self.page_urls.extend(add(p) for p in pages)
        a["page_end"].append(len(self.page_urls))
        a["snap_start"].append(len(s["asset"]))
        for k, (stage, stage_id, brush, medical, n, snap_extra) in enumerate(snaps):
            s["asset"].append(i)
            s["stage"].append(add(stage))
            s["stage_id"].append(add(stage_id))
            s["brush"].append(add(brush))
            s["medical_brush"].append(add(medical))
            s["obj_start"].append(obj)
            obj += n + (n_before if k == 0 else 0)  # the earlier pieces' task.tools
            s["obj_end"].append(obj)
            s["extra"].append(self.extras.add(snap_extra))
        a["snap_end"].append(len(s["asset"]))
        a["extra"].append(self.extras.add(extra))
        if earlier:  # one JSON list of the object rows over the pieces
            parts = [p[1:-1] for p in (*earlier, objects or b"[]") if len(p) > 2]
            objects = json_list(parts) if parts else None
        a["objects"].append(self.extras.add(objects))

    def _add_objects(self, c: AssetColumns) -> None:
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

    def discard_open(self) -> None:
        """Drop the objects of an asset whose later piece failed (``on_error="skip"``)."""
        if self._open is None:
            return
        obj0, verts0, titles0, _, _ = self._open
        self._open = None
        rings0 = sum(self.obj_rings[obj0:])
        del self.ring_len[len(self.ring_len) - rings0 :]
        del self.ring_zone[len(self.ring_zone) - rings0 :]
        del self.ring_hole[len(self.ring_hole) - rings0 :]
        for col in (self.obj_title, self.obj_kind, self.obj_page, self.obj_rings):
            del col[obj0:]
        del self.bbox[4 * obj0 :]
        del self.verts[verts0:]
        for t in list(self.titles)[titles0:]:
            del self.titles[t]

    def add_chunk(self, c: ChunkColumns) -> None:
        """Append many whole assets at once (the typed decoder's chunk, :mod:`._typed`):
        the same rows, and table entries in the same order, as :meth:`add_columns` of
        each asset in turn."""
        if c.asset_snaps.count(1) == len(c.asset_snaps) and not any(c.pages):
            self._add_plain_chunk(c)  # (the common case)
            return
        a, s, add, extra = self.a, self.s, self.strings.add, self.extras.add
        obj = len(self.obj_kind)
        rows = iter(c.snap_rows)
        for k, n_snaps in enumerate(c.asset_snaps):
            i = len(self)
            a["asset_id"].append(add(c.asset_id[k]))
            a["external_id"].append(add(c.external_id[k]))
            a["url"].append(add(c.url[k]))
            a["page_start"].append(len(self.page_urls))
            self.page_urls.extend(map(add, c.pages[k]))
            a["page_end"].append(len(self.page_urls))
            a["snap_start"].append(len(s["asset"]))
            for stage, stage_id, brush, medical, n, snap_extra in itertools.islice(rows, n_snaps):
                s["asset"].append(i)
                s["stage"].append(add(stage))
                s["stage_id"].append(add(stage_id))
                s["brush"].append(add(brush))
                s["medical_brush"].append(add(medical))
                s["obj_start"].append(obj)
                obj += n
                s["obj_end"].append(obj)
                s["extra"].append(extra(snap_extra))
            a["snap_end"].append(len(s["asset"]))
            a["extra"].append(extra(c.extra[k]))
            a["objects"].append(extra(c.objects[k]))
        a["width"].extend(c.width)
        a["height"].extend(c.height)
        self._add_chunk_objects(c)

    def _add_plain_chunk(self, c: ChunkColumns) -> None:
        """:meth:`add_chunk` of assets with one snapshot each and no pages, column by
        column: the same rows, and the same table entries in the same order."""
        n = len(c.asset_snaps)
        if not n:
            return
        stage, stage_id, brush, medical, n_objs, snap_extra = zip(*c.snap_rows, strict=True)
        # Table entries in add_columns' order: per asset its ids and URL, then its snapshot.
        per_asset = (c.asset_id, c.external_id, c.url, stage, stage_id, brush, medical)
        ids = self.strings.add_many(
            list(itertools.chain.from_iterable(zip(*per_asset, strict=True)))
        )
        ids = ids.reshape(n, len(per_asset)).T
        extras = self.extras.add_many(
            list(itertools.chain.from_iterable(zip(snap_extra, c.extra, c.objects, strict=True)))
        )
        extras = extras.reshape(n, 3).T
        first, snap0, pages = len(self), len(self.s["asset"]), len(self.page_urls)
        counts = np.asarray(n_objs, np.int64)
        ends = np.cumsum(counts) + len(self.obj_kind)
        asset_cols = {
            "asset_id": ids[0],
            "external_id": ids[1],
            "url": ids[2],
            "width": np.asarray(c.width, np.int64),
            "height": np.asarray(c.height, np.int64),
            "snap_start": np.arange(snap0, snap0 + n),
            "snap_end": np.arange(snap0 + 1, snap0 + n + 1),
            "page_start": np.full(n, pages),
            "page_end": np.full(n, pages),
            "extra": extras[1],
            "objects": extras[2],
        }
        snap_cols = {
            "asset": np.arange(first, first + n),
            "stage": ids[3],
            "stage_id": ids[4],
            "brush": ids[5],
            "medical_brush": ids[6],
            "obj_start": ends - counts,
            "obj_end": ends,
            "extra": extras[0],
        }
        if max(int(ends[-1]), int(ids.max()), int(extras.max()), snap0 + n) > _INT32_MAX:
            raise OverflowError("an index column beyond int32")  # as array("i") would
        for k, v in asset_cols.items():
            self.a[k].frombytes(v.astype(np.int32).tobytes())
        for k, v in snap_cols.items():
            self.s[k].frombytes(v.astype(np.int32).tobytes())
        self._add_chunk_objects(c)

    def _add_chunk_objects(self, c: ChunkColumns) -> None:
        """Append the object, ring and vertex columns of a typed chunk (or piece)."""
        titles = self.titles
        for t in dict.fromkeys(c.titles):  # new titles numbered in order of appearance
            titles.setdefault(t, len(titles))
        ids = np.fromiter(map(titles.__getitem__, c.titles), np.int32, len(c.titles))
        self.obj_title.frombytes(ids.tobytes())  # (~35% faster than array.extend of the map)
        self.obj_kind.frombytes(c.kinds.astype(np.uint8).tobytes())
        self.obj_page.frombytes(c.opages.astype(np.int32).tobytes())
        self.obj_rings.frombytes(c.obj_rings.astype(np.int32).tobytes())
        self.bbox.frombytes(c.bbox.astype(np.float32).tobytes())
        self.ring_len.frombytes(c.ring_len.astype(np.int64).tobytes())
        self.ring_zone.frombytes(c.ring_zone.astype(np.int32).tobytes())
        self.ring_hole.frombytes(c.ring_hole.astype(np.int8).tobytes())
        if len(c.verts):
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


# concat: each column's row base (a count of which earlier rows it points past), or none
_SHIFT = {
    "asset_asset_id": "str",
    "asset_external_id": "str",
    "asset_url": "str",
    "asset_width": None,
    "asset_height": None,
    "asset_extra": "extra",
    "asset_objects": "extra",
    "asset_snap_start": "snap",
    "asset_snap_end": "snap",
    "asset_page_start": "page",
    "asset_page_end": "page",
    "page_urls": "str",
    "snap_asset": "asset",
    "snap_stage": "str",
    "snap_stage_id": "str",
    "snap_brush": "str",
    "snap_medical_brush": "str",
    "snap_obj_start": "obj",
    "snap_obj_end": "obj",
    "snap_extra": "extra",
    "obj_title": None,  # remapped to the merged titles
    "obj_kind": None,
    "obj_page": None,
    "obj_bbox": None,
    "ring_zone": None,
    "ring_hole": None,
    "verts": None,
    "strings_blob": None,
    "extras_blob": None,
}
_NULLABLE = {"str", "extra"}  # -1 (none) stays -1
# columns of row starts with a final sentinel row: the base they are shifted by
_STARTS = {
    "obj_ring_start": "ring",
    "ring_vert": "vert",
    "strings_offsets": "str_byte",
    "extras_offsets": "extra_byte",
}


def concat(parts: list[ExportIndex], *, digest: str = "") -> ExportIndex:
    """One index of several, in order (the parallel indexer's partial indexes).

    Row ids (snapshots, objects, rings, vertices, table entries) of each part are
    shifted past the parts before it; class titles are merged.  Consumes ``parts``:
    the list is emptied and each part's columns are let go as soon as they are joined,
    so joining needs about one index of memory, not two.
    """
    if not parts:
        return IndexBuilder().build(digest=digest)
    columns = [p.arrays for p in parts]
    sizes = {
        "asset": "asset_asset_id",
        "snap": "snap_asset",
        "obj": "obj_kind",
        "ring": "ring_zone",
        "vert": "verts",
        "page": "page_urls",
        "str_byte": "strings_blob",
        "extra_byte": "extras_blob",
    }
    counts = {k: [len(c[col]) for c in columns] for k, col in sizes.items()}
    counts["str"] = [len(c["strings_offsets"]) - 1 for c in columns]
    counts["extra"] = [len(c["extras_offsets"]) - 1 for c in columns]
    base = {k: np.cumsum([0, *v]).tolist() for k, v in counts.items()}
    titles: dict[str, int] = {}
    remaps = [
        np.array([titles.setdefault(t, len(titles)) for t in p.titles] or [0], np.int32)
        for p in parts
    ]
    parts.clear()  # the parts' attributes let go of their columns: `columns` holds them
    arrays: dict[str, npt.NDArray[Any]] = {}
    freed = 0
    for key, by in (*_SHIFT.items(), *_STARTS.items()):
        start = key in _STARTS
        head = columns[0][key]
        n = sum(len(c[key]) - start for c in columns) + start
        dtype = np.int64 if start else np.int32 if by in ("snap", "page", "asset", "obj") else None
        joined = np.empty((n, *head.shape[1:]), dtype or head.dtype)
        at = 0
        for i, c in enumerate(columns):  # copy each piece in, then let it go
            a = c.pop(key)
            if key == "obj_title":
                a = remaps[i][a] if len(a) else a
            elif start:
                a = a[:-1] + base[_STARTS[key]][i]
            elif by in _NULLABLE:
                a = np.where(a >= 0, a + base[by][i], a)
            elif by is not None:
                a = a + base[by][i]
            joined[at : at + len(a)] = a
            at += len(a)
            freed += a.nbytes
            del a
            if freed > 1 << 26:  # the parts' freed pieces sit in glibc's heap: hand
                release_freed_memory()  # them back as the joined copy grows
                freed = 0
        if start:
            joined[-1] = base[_STARTS[key]][-1]
        arrays[key] = joined
    release_freed_memory()
    ordered = sorted(titles, key=titles.__getitem__)
    arrays["titles"] = np.frombuffer(dumps(ordered), np.uint8)
    arrays["meta"] = np.frombuffer(
        dumps({"version": INDEX_VERSION, "schema": SCHEMA, "digest": digest}), np.uint8
    )
    return ExportIndex(arrays)
