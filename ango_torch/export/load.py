"""Loading an export: :func:`load_export` and the :class:`AngoExport` it returns."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import multiprocessing
import os
import shutil
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..errors import AngoTorchError, AngoTorchWarning, ExportFormatError, StageNotFoundError
from ..limits import Limits, override
from ..records import Asset
from ._build import release_freed_memory as _release_freed_memory
from ._fields import parse_time
from ._indexing import SkipLog, Skipped, default_workers, index_dicts, index_raw
from ._read import file_digest, file_size, file_stamp, iter_raw_assets, open_export
from .index import ExportIndex

__all__ = ["AngoExport", "Skipped", "load_export"]

OnError = Literal["raise", "skip"]


class AngoExport:
    """A loaded export: a sequence of read-only :class:`~ango_torch.records.Asset` records.

    Backed by a compact :class:`~ango_torch.export.index.ExportIndex`; records are rebuilt on
    access.  ``skipped`` lists the assets left out under ``on_error="skip"`` (the first
    ``limits.max_skipped`` of them); ``skipped_count`` counts them all.
    """

    def __init__(
        self,
        index: ExportIndex,
        *,
        source: str = "<list>",
        skipped: Sequence[Skipped] | SkipLog = (),
    ) -> None:
        self.index = index
        self.source = source
        if isinstance(skipped, SkipLog):
            self.skipped: tuple[Skipped, ...] = tuple(skipped.kept)
            self.skipped_count: int = skipped.count
        else:
            self.skipped = tuple(skipped)
            self.skipped_count = len(self.skipped)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> Asset:
        return self.index.asset(i)

    def __iter__(self) -> Iterator[Asset]:
        return iter(self.index)

    def __repr__(self) -> str:
        return f"AngoExport({self.source!r}, assets={len(self)}, skipped={self.skipped_count})"

    @property
    def titles(self) -> list[str]:
        """Every object title in the export (all stages), sorted."""
        return sorted(self.index.titles)

    def stage_names(self) -> dict[str, int]:
        """``{stage name: number of snapshots}`` over the answer and every stageHistory."""
        idx = self.index
        names: dict[str, int] = {}
        for s in range(len(idx.snap_asset)):
            name = idx.string(idx.snap_stage[s]) or idx.string(idx.snap_stage_id[s]) or "?"
            names[name] = names.get(name, 0) + 1
        return names

    def snapshot_rows(self, stage: str | None = None) -> npt.NDArray[np.int32]:
        """Snapshot row per asset for ``stage`` (``-1`` where the asset lacks it).

        ``None`` selects the exported answer.  Otherwise the stageHistory entry whose
        stage name or stage id equals ``stage``, else the answer if its own stage
        matches.  Where an asset went through that stage more than once, the latest
        entry by ``completedAt`` wins (entries without one count as older; ties go to
        the later list position): exports do not promise the history is in order.

        Raises:
            StageNotFoundError: no asset has that stage; the message lists those present.
        """
        idx = self.index
        if stage is None:
            return np.array(idx.asset_snap_start, np.int32)
        ids = {i for i in range(len(idx.strings)) if idx.strings.get(i) == stage}
        match = np.isin(idx.snap_stage, list(ids)) | np.isin(idx.snap_stage_id, list(ids))
        rows = np.full(len(idx), -1, np.int32)
        is_answer = np.zeros(len(idx.snap_asset), bool)
        is_answer[idx.asset_snap_start] = True
        hist = np.flatnonzero(match & ~is_answer)
        rows[idx.snap_asset[hist]] = hist  # later rows overwrite earlier
        repeated = np.bincount(idx.snap_asset[hist], minlength=len(idx)) > 1
        if repeated.any():
            _latest_by_completion(idx, hist[repeated[idx.snap_asset[hist]]], rows)
        ans = np.flatnonzero(match & is_answer)
        free = rows[idx.snap_asset[ans]] < 0
        rows[idx.snap_asset[ans][free]] = ans[free]
        if not (rows >= 0).any() and len(idx):
            present = ", ".join(sorted(self.stage_names())) or "none"
            raise StageNotFoundError(
                f"stage {stage!r} is in no asset of {self.source!r}; stages present: {present}"
            )
        return rows


def _latest_by_completion(
    idx: ExportIndex, candidates: npt.NDArray[np.intp], rows: npt.NDArray[np.int32]
) -> None:
    """Set ``rows[asset]`` to the latest of its ``candidates`` snapshot rows.

    The key is ``(has completedAt, completedAt, list position)``: the stored time was
    normalized by the parser at load (ISO or epoch ms → ISO UTC).
    """
    best: dict[int, tuple[bool, datetime, int]] = {}
    for s in candidates.tolist():
        when = parse_time(idx.extra(int(idx.snap_extra[s])).get("completedAt"))
        key = (when is not None, when or _EPOCH, s)
        a = int(idx.snap_asset[s])
        if a not in best or key > best[a]:
            best[a] = key
    for a, key in best.items():
        rows[a] = key[2]


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while indexing.

    Decoding creates millions of short-lived, acyclic dicts and lists (freed by
    reference counting); the collector would otherwise rescan the survivors over and
    over (about 20% of the indexing time).
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _cache_path(cache_dir: str | os.PathLike[str], digest: str) -> Path:
    return Path(cache_dir) / "index" / f"{digest}.index"


def load_export(
    source: AngoExport | str | os.PathLike[str] | Sequence[Mapping[str, Any]],
    *,
    storage_options: dict[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    on_error: OnError = "raise",
    progress_bar: bool | None = None,
    workers: int | None = None,
    limits: Limits | None = None,
) -> AngoExport:
    """Read an Ango export.

    Args:
        source: a local path or fsspec URL of a ``.json``, ``.ndjson``, ``.zip`` or
            ``.json.gz`` export (v3 ``task`` or legacy v2 ``tasks[]`` shape, detected per
            asset), an already-parsed list of asset dicts, or an :class:`AngoExport`.
        storage_options: passed to fsspec.
        cache_dir: where to persist the index, keyed by the file's BLAKE2b content
            hash; a second load of the same bytes skips parsing (and so ``limits``,
            which bound reading: the saved index is what any successful read of
            those bytes builds).  Only a read that skipped nothing is saved.
        on_error: ``"raise"`` (default) stops at the first malformed asset;
            ``"skip"`` leaves it out and records it in :attr:`AngoExport.skipped`.
        progress_bar: force the progress bar on or off (default: on for a TTY).
        workers: processes that index in parallel (the main process splits the file
            into assets and hands them out in batches).  Default: up to 4 (one per CPU)
            for files of 32 MiB and more where they can be forked, of 128 MiB and more
            where they start fresh (forkserver/spawn: Python 3.12+, threads running),
            else 1 (in-process).  Inside a daemonic process (a DataLoader worker), which
            may not start processes, always 1 (with a warning where more were asked);
            by default 1 in any other process that multiprocessing started (a
            ``ProcessPoolExecutor`` worker: its siblings share the CPUs).
        limits: safety limits for this call (default: :func:`ango_torch.limits.current`).

    Raises:
        ExportFormatError: a malformed file or asset, naming the asset and field.
        ArchiveError: a corrupt, truncated, encrypted or nested gzip/ZIP.
        LimitError: an asset beyond a safety limit (size, nesting depth), or a
            decompression bomb (:class:`~ango_torch.errors.DecompressionBombError`);
            raised whatever ``on_error`` says.
        AssetFetchError: the file cannot be opened.
    """
    if isinstance(source, AngoExport):
        return source
    if limits is not None:
        with override(**dataclasses.asdict(limits)):
            return load_export(
                source,
                storage_options=storage_options,
                cache_dir=cache_dir,
                on_error=on_error,
                progress_bar=progress_bar,
                workers=workers,
            )
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if not isinstance(source, (str, os.PathLike)):
        if not isinstance(source, Sequence):
            raise ExportFormatError(
                "load_export expects a path, URL or list of asset dicts, "
                f"got {type(source).__name__}"
            )
        index, skipped = index_dicts(source, on_error=on_error, progress_bar=progress_bar)
        return AngoExport(index, skipped=skipped)

    name = os.fspath(source)
    digest, stamp, began = "", None, _clock()
    if cache_dir is not None:
        cache_dir = Path(cache_dir).expanduser()
        digest, stamp = _cached_digest(name, storage_options, Path(cache_dir), began)
        path = _cache_path(cache_dir, digest)
        if path.exists():
            try:
                return AngoExport(ExportIndex.load(path), source=name)
            except AngoTorchError:
                shutil.rmtree(path, ignore_errors=True)  # stale or corrupt: rebuild below
    if workers is None:
        workers = default_workers(file_size(name, storage_options))
    elif workers > 1 and multiprocessing.current_process().daemon:
        warnings.warn(
            f"export {name!r}: workers={workers}, but this is a daemonic process (e.g. a "
            "DataLoader worker), which may not start processes; indexing in this process",
            AngoTorchWarning,
            stacklevel=2,
        )
        workers = 1
    try:
        index, skipped = _index_file(name, storage_options, on_error, workers, digest, progress_bar)
    except BrokenProcessPool as exc:
        warnings.warn(
            f"export {name!r}: indexing worker processes failed to start ({exc}); "
            "indexing in this process instead",
            AngoTorchWarning,
            stacklevel=2,
        )
        index, skipped = _index_file(name, storage_options, on_error, 1, digest, progress_bar)
    _release_freed_memory()
    if (
        cache_dir is not None
        and not skipped.count
        and _unchanged(name, storage_options, stamp, digest, began)
    ):
        index.save(_cache_path(cache_dir, digest))
        # Use the saved, memory-mapped columns from now on: pages shared by every
        # process, and a pickle (for spawn workers) that carries only the path.
        index = ExportIndex.load(_cache_path(cache_dir, digest))
    return AngoExport(index, source=name, skipped=skipped)


def _index_file(
    name: str,
    storage_options: dict[str, Any] | None,
    on_error: OnError,
    workers: int,
    digest: str,
    progress_bar: bool | None,
) -> tuple[ExportIndex, SkipLog]:
    f, _ = open_export(name, storage_options)
    with f, _gc_paused():
        return index_raw(
            # Blocks decoded as they are cut where they are indexed here (the decode is
            # also their check), else checked only and decoded by the workers.
            iter_raw_assets(f, name, blocks="decoded" if workers <= 1 else True),
            name,
            on_error=on_error,
            workers=workers,
            digest=digest,
            progress_bar=progress_bar,
        )


# A file changed less than this many seconds before its content was hashed may be
# changed again without its stamp changing (timestamps are coarse: a kernel tick, a
# second on some filesystems): its hash is not remembered, as git treats "racily clean"
# entries.
_RACY_SECONDS = 2.0
_clock = time.time  # (a name of its own, so that tests can move this clock alone)


def _cached_digest(
    name: str, storage_options: dict[str, Any] | None, cache_dir: Path, began: float
) -> tuple[str, tuple[str, float | None] | None]:
    """The file's content hash, remembered under its stamp (:func:`._read.file_stamp`),
    and that stamp (``None``: the file has none).

    The hash is remembered only when the stamp is the same after hashing as before, and
    the file last changed :data:`_RACY_SECONDS` before ``began`` (the clock before
    the stamp was taken).
    """
    stamp = file_stamp(name, storage_options)
    memo = None
    if stamp is not None:
        key = hashlib.blake2b(stamp[0].encode(), digest_size=16).hexdigest()
        memo = cache_dir / "index" / f"stat-{key}.txt"
        try:
            return memo.read_text().strip(), stamp
        except OSError:
            pass
    digest = _digest(name, storage_options)
    if (
        memo is not None
        and stamp is not None
        and not _racy(stamp, began)
        and file_stamp(name, storage_options) == stamp
    ):
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(digest)
        os.replace(tmp, memo)
    return digest, stamp


def _racy(stamp: tuple[str, float | None], began: float) -> bool:
    """Whether the file changed less than :data:`_RACY_SECONDS` before ``began``."""
    changed = stamp[1]
    return changed is not None and changed > began - _RACY_SECONDS


def _unchanged(
    name: str,
    storage_options: dict[str, Any] | None,
    stamp: tuple[str, float | None] | None,
    digest: str,
    began: float,
) -> bool:
    """Whether the file read is the one hashed as ``digest`` (else its index would be
    saved under another content's hash). A new stamp shows a change; within a timestamp
    tick of the last write (racy) only the bytes can, so they are hashed again (0.15 s
    against 1.4 s of indexing the benchmark's 79 MiB mixed export). A file without a
    stamp is taken as read."""
    if stamp is None:
        return True
    if file_stamp(name, storage_options) != stamp:
        return False
    return not _racy(stamp, began) or _digest(name, storage_options) == digest


def _digest(name: str, storage_options: dict[str, Any] | None) -> str:
    f, _ = open_export(name, storage_options)
    with f:
        return file_digest(f)
