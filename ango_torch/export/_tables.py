"""Byte tables and raw JSON forms used by the index.

:class:`StringTable` holds many byte strings in one ``uint8`` buffer with ``int64``
offsets; ``dumps`` is compact JSON (orjson where installed); ``class_raw``,
``meta_raw`` and ``relation_raw`` turn records back into the export's raw form, which
is what the index stores for the parts it does not hold as numeric columns.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Sequence
from itertools import compress, repeat
from operator import is_, is_not
from typing import Any

import numpy as np
import numpy.typing as npt

from ..records import Classification, ObjectMeta, Relation

__all__ = ["StringTable", "class_raw", "dumps", "meta_raw", "relation_raw"]


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

    def get_many(self, ids: npt.ArrayLike) -> list[str | None]:
        """:meth:`get` of each of ``ids`` (integers; any below 0 is ``None``), in bulk:
        each entry decoded straight from the buffer (~3x faster than :meth:`get` per id
        on 10,000 externalIds; dataset construction looks up every asset's)."""
        given = np.asarray(ids).reshape(-1)
        if not len(given):
            return []
        if given.dtype.kind not in "iu":
            raise TypeError(f"string table ids must be integers, not {given.dtype}")
        if int(given.max()) >= len(self):
            raise IndexError(f"string table entry {int(given.max())} of {len(self)}")
        at = np.maximum(given.astype(np.int64), -1)  # (unsigned ones fit: checked above)
        starts = self.offsets[np.maximum(at, 0)].tolist()  # (an id of -1: never read)
        ends = self.offsets[at + 1].tolist()
        buf = memoryview(self.blob.data)  # (a 1-D uint8 array: one byte per item)
        return [
            None if i < 0 else str(buf[a:b], "utf-8")
            for i, a, b in zip(at.tolist(), starts, ends, strict=True)
        ]

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return int(self.blob.nbytes + self.offsets.nbytes)


INTERN_MAX = 1 << 16  # distinct values a deduplicating table remembers


class _TableBuilder:
    """Appends byte strings to one growing buffer (no Python object kept per entry).

    A table that dedups remembers its first :data:`INTERN_MAX` distinct values (stage
    names, brush URLs of repeated stages...: the values that repeat come early); later
    new values are appended as they come, so an export of a million assets, whose ids
    and URLs are all distinct, keeps no dict of a million strings.  An equal string may
    therefore have two ids (as it may across the parallel indexer's parts): compare
    strings, not ids.
    """

    def __init__(self, *, intern: bool) -> None:
        self._blob = bytearray()
        self._offsets = array("q", [0])
        self._ids: dict[bytes, int] | None = {} if intern else None

    def add(self, value: str | bytes | None) -> int:
        if value is None:
            return -1
        data = value.encode("utf-8") if isinstance(value, str) else value
        ids = self._ids
        if ids is not None:
            found = ids.get(data)
            if found is not None:
                return found
        self._blob += data
        self._offsets.append(len(self._blob))
        i = len(self._offsets) - 2
        if ids is not None and len(ids) < INTERN_MAX:
            ids[data] = i
        return i

    def add_many(self, values: Sequence[str | bytes | None]) -> npt.NDArray[np.int64]:
        """:meth:`add` of each value in turn, in bulk: the same ids and the same table.

        The typed decoder's chunks add ~10 values per asset; one call per value was
        ~7% of indexing the benchmark's mixed export (py-spy, issue 14).
        """
        n = len(values)
        out = np.full(n, -1, np.int64)
        present = np.fromiter(map(is_not, values, repeat(None)), bool, n)
        datas: list[Any] = list(compress(values, present))  # (bytes, once encoded)
        if str in set(map(type, datas)):
            datas = [v.encode("utf-8") if type(v) is str else v for v in datas]
        ids = self._ids
        if ids is None:  # every value a new entry
            out[present] = self._append(datas)
            return out
        found: list[Any] = list(map(ids.get, datas))
        missing = np.fromiter(map(is_, found, repeat(None)), bool, len(found))
        if not missing.any():
            out[present] = found
            return out
        new = list(compress(datas, missing))
        unique = list(dict.fromkeys(new))
        if len(ids) + len(unique) <= INTERN_MAX:  # all remembered: repeats share an id
            ids.update(zip(unique, self._append(unique).tolist(), strict=True))
            out[present] = list(map(ids.__getitem__, datas))
        elif len(ids) >= INTERN_MAX:  # none remembered: each a new entry
            got = np.array([-1 if f is None else f for f in found], np.int64)
            got[missing] = self._append(new)
            out[present] = got
        else:  # the table fills up within these values: one by one, as add does
            return np.fromiter(map(self.add, values), np.int64, n)
        return out

    def _append(self, datas: list[Any]) -> npt.NDArray[np.int64]:
        """Append each of ``datas`` (bytes) as a new entry; their ids."""
        first = len(self._offsets) - 1
        ends = np.cumsum(np.fromiter(map(len, datas), np.int64, len(datas))) + len(self._blob)
        self._blob += b"".join(datas)
        self._offsets.frombytes(ends.tobytes())
        return np.arange(first, first + len(datas), dtype=np.int64)

    def build(self) -> StringTable:
        # Views of the builder's buffers, not copies: the builder is dropped after build.
        blob = np.frombuffer(self._blob, np.uint8) if self._blob else np.zeros(0, np.uint8)
        return StringTable(blob, np.frombuffer(self._offsets, np.int64))


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot serialize {type(value).__name__}")


try:
    import orjson

    def dumps(value: Any) -> bytes:
        """Compact JSON bytes (orjson where installed)."""
        return orjson.dumps(value, default=_json_default)

except ImportError:  # pragma: no cover - without the [fast] extra

    def dumps(value: Any) -> bytes:
        """Compact JSON bytes (orjson where installed)."""
        return json.dumps(value, separators=(",", ":"), default=_json_default).encode()


def class_raw(c: Classification) -> dict[str, Any]:
    """A classification record back in the export's raw form."""
    d: dict[str, Any] = {
        "objectId": c.object_id,
        "schemaId": c.schema_id,
        "tool": c.tool,
        "title": c.title,
        "answer": c.answer,
        "classifications": [class_raw(x) for x in c.classifications],
    }
    if c.page is not None:
        d["page"] = c.page
    if c.metadata is not None:
        d["metadata"] = meta_raw(c.metadata)
    if c.interpolation_stopped:
        d["interpolationStopped"] = True
    return d


def meta_raw(m: ObjectMeta) -> dict[str, Any]:
    """Object metadata back in the export's raw form: as exported where known, else
    rebuilt (times as ISO strings)."""
    if m.raw is not None:
        return dict(m.raw)
    d = dict(m.extra)
    if m.created_at is not None:
        d["createdAt"] = m.created_at.isoformat()
    if m.created_by is not None:
        d["createdBy"] = m.created_by
    return d


def relation_raw(r: Relation) -> dict[str, Any]:
    """A relation record back in the export's raw form."""
    d: dict[str, Any] = {"objectId": r.object_id, "schemaId": r.schema_id, "title": r.title}
    if r.group is not None:
        d["group"] = list(r.group)
    else:
        d.update({"from": r.from_id, "to": r.to_id, "direction": r.direction})
    if r.page is not None:
        d["page"] = r.page
    return d
