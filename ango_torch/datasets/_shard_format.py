"""The shards' format: deterministic tar members and each shard's parsed index.

``index/<shard>.npz`` holds a shard's stored records already parsed and checked, as the
columns of an :class:`~ango_torch.export.index.ExportIndex`; :func:`read_index` opens it
for :class:`~ango_torch.AngoShards`.  Used by the writer (``shard_writer``) and the reader
(``shards``).
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from typing import Any

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


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def index_name(shard: str) -> str:
    """The path, relative to the shards' folder, of ``shard``'s parsed index."""
    return f"index/{shard}.npz"


def _index_bytes(records: list[dict[str, Any]]) -> bytes:
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
