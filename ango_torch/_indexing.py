"""Raw assets → index, in this process or, for large files, in several.

Each asset is decoded and turned into columns (:func:`._columns.asset_columns`); with
``on_error="skip"`` malformed ones are recorded as :class:`Skipped` instead of raising.
For a large export, batches of raw assets (split from the file by the main process)
are indexed by worker processes, and their partial indexes are concatenated in order.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy.typing as npt

from ._columns import asset_columns
from ._progress import progress
from ._read import RawAsset, decode_raw
from .errors import ExportFormatError
from .index import ExportIndex, IndexBuilder

__all__ = ["PARALLEL_MIN_BYTES", "Skipped", "default_workers", "index_dicts", "index_raw"]

OnError = Literal["raise", "skip"]

PARALLEL_MIN_BYTES = 64 << 20
"""Files smaller than this are indexed in-process (starting workers would not pay)."""
BATCH_BYTES = 4 << 20


@dataclass(frozen=True, slots=True)
class Skipped:
    """An asset (or object) left out under ``on_error="skip"``, and why."""

    index: int
    asset: str | None
    reason: str
    object_id: str | None = None


def _add(
    builder: IndexBuilder,
    raw: Any,
    i: int,
    line: int | None,
    on_error: OnError,
    skipped: list[Skipped],
) -> None:
    try:
        builder.add_columns(asset_columns(raw, i, line=line))
    except ExportFormatError as exc:
        if on_error == "raise":
            raise
        name = raw.get("externalId") if isinstance(raw, Mapping) else None
        skipped.append(Skipped(i, name if isinstance(name, str) else None, str(exc)))


def index_dicts(
    dicts: Iterable[Any], *, on_error: OnError, progress_bar: bool | None = None
) -> tuple[ExportIndex, list[Skipped]]:
    """Index already-parsed asset dicts."""
    builder, skipped = IndexBuilder(), list[Skipped]()
    for i, raw in enumerate(progress(dicts, desc="indexing", enabled=progress_bar)):
        _add(builder, raw, i, None, on_error, skipped)
    return builder.build(), skipped


def _index_serial(
    raws: Iterable[RawAsset], name: str, on_error: OnError, digest: str = ""
) -> tuple[ExportIndex, list[Skipped]]:
    builder, skipped = IndexBuilder(), list[Skipped]()
    for chunk in raws:
        try:
            obj = decode_raw(chunk, name)
        except ExportFormatError as exc:
            if on_error == "raise":
                raise
            skipped.append(Skipped(chunk.index, None, str(exc)))
            continue
        _add(builder, obj, chunk.index, chunk.line, on_error, skipped)
    return builder.build(digest=digest), skipped


def _work(
    job: tuple[list[RawAsset], str, OnError],
) -> tuple[dict[str, npt.NDArray[Any]], list[Skipped]]:
    index, skipped = _index_serial(*job)
    return index.arrays, skipped


def _batches(raws: Iterable[RawAsset], batch_bytes: int) -> Iterator[list[RawAsset]]:
    batch: list[RawAsset] = []
    size = 0
    for raw in raws:
        batch.append(raw)
        size += len(raw.data)
        if size >= batch_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def default_workers(nbytes: int | None) -> int:
    """Processes to index a file of ``nbytes``: one below :data:`PARALLEL_MIN_BYTES`."""
    if nbytes is None or nbytes < PARALLEL_MIN_BYTES:
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def _context() -> Any:
    # fork starts instantly and needs no importable __main__; it is safe while this
    # process runs a single thread.  Otherwise forkserver (or spawn where it is absent).
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def index_raw(
    raws: Iterable[RawAsset],
    name: str,
    *,
    on_error: OnError,
    workers: int = 1,
    digest: str = "",
    progress_bar: bool | None = None,
    batch_bytes: int = BATCH_BYTES,
) -> tuple[ExportIndex, list[Skipped]]:
    """Index raw assets, with ``workers`` processes when more than one."""
    if workers <= 1:
        return _index_serial(
            progress(raws, desc="indexing", enabled=progress_bar), name, on_error, digest
        )
    parts: list[ExportIndex] = []
    skipped: list[Skipped] = []
    jobs = ((batch, name, on_error) for batch in _batches(raws, batch_bytes))
    with _context().Pool(workers) as pool:
        # imap keeps the order; a worker's ExportFormatError is raised here, in order.
        for arrays, skips in progress(
            pool.imap(_work, jobs), desc="indexing (batches)", enabled=progress_bar
        ):
            parts.append(ExportIndex(arrays))
            skipped.extend(skips)
    return ExportIndex.concat(parts, digest=digest), skipped
