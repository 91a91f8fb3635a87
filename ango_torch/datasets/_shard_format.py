"""The shards' format: deterministic tar members and each shard's parsed index.

``index/<shard>.npz`` holds a shard's stored records already parsed and checked, as the
columns of an :class:`~ango_torch.export.index.ExportIndex`; :func:`read_index` opens it
for :class:`~ango_torch.AngoShards`.  Used by the writer (``shard_writer``) and the reader
(``shards``).
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from collections.abc import Sequence
from typing import Any, overload

import numpy as np

from ..errors import ExportFormatError
from ..export.index import SCHEMA, ExportIndex
from ..export.load import load_export

__all__ = ["FORMAT_VERSION", "index_name", "read_index"]

FORMAT_VERSION = 2  # 2: a parsed index per shard (index/<shard>.npz)


def _member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info, data


class _TarStream:
    """One shard being written: each member goes to ``<path>.tmp`` as it is added (a
    shard's images are never all in memory); :meth:`close` ends the archive and renames
    it to ``path``.  The bytes are those of ``tarfile`` writing the same members to one
    buffer (ustar, end blocks, padded to a 10 KiB record)."""

    def __init__(self, fs: Any, path: str) -> None:
        self.fs, self.path = fs, path
        self._file = fs.open(f"{path}.tmp", "wb")  # closed by close() or abandon()
        self._tar = tarfile.TarFile(fileobj=self._file, mode="w", format=tarfile.USTAR_FORMAT)

    def add(self, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        for info, data in members:
            self._tar.addfile(info, io.BytesIO(data))

    def close(self) -> int:
        """Finish the shard and put it in place; returns its size in bytes."""
        self._tar.close()  # the end blocks and the record padding
        size = int(self._file.tell())
        self._file.close()
        self.fs.mv(f"{self.path}.tmp", self.path)
        return size

    def abandon(self) -> None:
        """Close the unfinished ``.tmp`` file (an interrupted run writes it again)."""
        self._file.close()


class _Records(Sequence[dict[str, Any]]):
    """A shard's stored records kept as their compact JSON bytes, decoded one at a time
    when the shard's index is built (not a parsed tree per sample)."""

    def __init__(self) -> None:
        self._raw: list[bytes] = []

    def append(self, raw: bytes) -> None:
        self._raw.append(raw)

    def __len__(self) -> int:
        return len(self._raw)

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[dict[str, Any]]: ...
    def __getitem__(self, i: int | slice) -> dict[str, Any] | Sequence[dict[str, Any]]:
        if isinstance(i, slice):
            return [json.loads(r) for r in self._raw[i]]
        value: dict[str, Any] = json.loads(self._raw[i])
        return value


def index_name(shard: str) -> str:
    """The path, relative to the shards' folder, of ``shard``'s parsed index."""
    return f"index/{shard}.npz"


def _index_bytes(records: Sequence[dict[str, Any]]) -> bytes:
    """The :class:`ExportIndex` of ``records`` as an ``.npz`` with fixed member times
    (``np.savez`` stamps the clock), so the same records give the same bytes."""
    index = load_export(records, progress_bar=False).index
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, value in sorted(index.arrays.items()):
            column = io.BytesIO()
            np.save(column, np.ascontiguousarray(value), allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"{name}.npy", (1980, 1, 1, 0, 0, 0)), column.getvalue())
    return buf.getvalue()


def read_index(data: bytes, label: str) -> ExportIndex:
    """The :class:`ExportIndex` stored by :func:`_index_bytes` (``label`` names it).

    Raises:
        ExportFormatError: unreadable, or written by another version of the parser.
    """
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            index = ExportIndex({k: z[k] for k in z.files})
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ExportFormatError(f"{label}: unreadable shard index ({exc})") from exc
    if index.schema != SCHEMA:
        raise ExportFormatError(
            f"{label}: written by another version of the parser (schema "
            f"{index.schema or 'none'!r}, expected {SCHEMA!r}); write the shards again"
        )
    return index
