"""Raw assets → index, in this process or, for large files, in several.

Each asset is decoded and turned into columns (:func:`._columns.asset_columns`); with
``on_error="skip"`` malformed ones are recorded as :class:`Skipped` instead of raising.
For a large export, batches of raw assets (split from the file by the main process)
are indexed by worker processes, and their partial indexes are concatenated in order.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy.typing as npt

from .._progress import progress
from ..errors import ExportFormatError
from ..limits import current
from . import _typed
from ._blocks import Block
from ._build import IndexBuilder, concat
from ._columns import asset_columns
from ._read import RawAsset, check_parsed_depth, decode_raw
from ._split import piece_error
from .index import ExportIndex

__all__ = [
    "PARALLEL_MIN_BYTES",
    "PARALLEL_STARTED_MIN_BYTES",
    "SkipLog",
    "Skipped",
    "default_workers",
    "index_dicts",
    "index_raw",
]

OnError = Literal["raise", "skip"]

PARALLEL_MIN_BYTES = 32 << 20
"""Files smaller than this are indexed in-process (starting workers would not pay).
Two forked workers against one process on 2 cores (``benchmarks/index.py`` (g), medians
of 7, then 3, alternating runs): 0.69x at 8 MiB, 0.91x / 1.01x at 16 MiB, 1.09x / 1.15x
at 32 MiB, 1.35x / 1.30x at 48 MiB.  More cores move the break-even lower.  (It was
64 MiB before this was measured.)"""
PARALLEL_STARTED_MIN_BYTES = 128 << 20
"""The same where workers cannot be forked and start as fresh interpreters (~0.3 s
each).  On 2 cores, two forkserver workers against one process, their start included
(medians of 3 alternating runs, ``benchmarks/index.py``): 1.06x on the 79 MiB mixed
export, 0.97x at 135 MiB (1.13x in an ad-hoc run: at the threshold the gain is within
that machine's noise), 1.28x at 396 MiB.  More cores move the break-even lower.
"""
BATCH_BYTES = 4 << 20


@dataclass(frozen=True, slots=True)
class Skipped:
    """An asset (or object) left out under ``on_error="skip"``, and why."""

    index: int
    asset: str | None
    reason: str
    object_id: str | None = None


class SkipLog:
    """The first ``keep`` skipped assets (reasons and all), and how many there were.

    Bounded so that a file of a hundred million broken assets cannot fill memory under
    ``on_error="skip"`` (``limits.max_skipped``).
    """

    def __init__(self, keep: int | None = None) -> None:
        self.keep = current().max_skipped if keep is None else keep
        self.kept: list[Skipped] = []
        self.count = 0

    def __iter__(self) -> Iterator[Skipped]:
        return iter(self.kept)

    def append(self, s: Skipped) -> None:
        """Record one skipped asset (kept only while fewer than ``keep`` are)."""
        self.count += 1
        if len(self.kept) < self.keep:
            self.kept.append(s)

    def extend(self, other: SkipLog) -> None:
        """Add another log's records and count, in order."""
        for s in other.kept:
            if len(self.kept) < self.keep:
                self.kept.append(s)
        self.count += other.count


def _add(
    builder: IndexBuilder,
    raw: Any,
    i: int,
    line: int | None,
    on_error: OnError,
    skipped: SkipLog,
    piece: RawAsset | None = None,
) -> None:
    try:
        if piece is None or (piece.last and not piece.part):
            builder.add_columns(asset_columns(raw, i, line=line))
        else:  # one piece of a large asset (._split)
            with piece_error(piece):
                cols = asset_columns(raw, i, line=line, first=piece.first)
            builder.add_columns(cols, part=piece.part, last=piece.last)
    except ExportFormatError as exc:
        builder.discard_open()
        if on_error == "raise":
            raise
        name = raw.get("externalId") if isinstance(raw, Mapping) else None
        skipped.append(Skipped(i, name if isinstance(name, str) else None, str(exc)))


def index_dicts(
    dicts: Iterable[Any], *, on_error: OnError, progress_bar: bool | None = None
) -> tuple[ExportIndex, SkipLog]:
    """Index already-parsed asset dicts (refusing any nested beyond ``max_depth``)."""
    builder, skipped = IndexBuilder(), SkipLog()
    for i, raw in enumerate(progress(dicts, desc="indexing", enabled=progress_bar)):
        check_parsed_depth(raw, i)
        _add(builder, raw, i, None, on_error, skipped)
    return builder.build(), skipped


def _index_serial(
    raws: Iterable[RawAsset | Block],
    name: str,
    on_error: OnError,
    digest: str = "",
    keep: int | None = None,
) -> tuple[ExportIndex, SkipLog]:
    builder, skipped = IndexBuilder(), SkipLog(keep)
    failed = -1  # a skipped asset: its later pieces are passed over
    for chunk in _typed_first(raws, builder):
        if chunk.part and chunk.index == failed:
            continue
        try:
            with piece_error(chunk):  # (a piece's invalid JSON: positions are the piece's)
                obj = decode_raw(chunk, name)
        except ExportFormatError as exc:
            builder.discard_open()
            if on_error == "raise":
                raise
            skipped.append(Skipped(chunk.index, None, str(exc)))
            failed = chunk.index
            continue
        n = skipped.count
        _add(builder, obj, chunk.index, chunk.line, on_error, skipped, chunk)
        failed = chunk.index if skipped.count > n else failed
    return builder.build(digest=digest), skipped


def _typed_first(raws: Iterable[RawAsset | Block], builder: IndexBuilder) -> Iterator[RawAsset]:
    """Index what typed decoding (:mod:`._typed`) takes, a chunk (or block,
    :mod:`._blocks`) at a time, and yield the rest, in order: the chunks it does not
    take (all of them without msgspec), for the caller to index asset by asset.  Each
    piece of a large asset is a chunk of its own.

    Lazy: each chunk is added only once the caller has indexed every asset yielded
    before it.
    """
    if not _typed.AVAILABLE:  # (then there are no blocks either)
        yield from cast("Iterable[RawAsset]", raws)
        return
    for group in _typed.chunks(raws):
        if isinstance(group[0], Block):
            for block in cast("list[Block]", group):
                columns = (
                    _typed.block_columns(block.data, block.decoded, block.checked)
                    if block.typed
                    else None
                )
                if columns is None:  # its assets one by one, as the scan would give them
                    yield from _typed_first(block.assets(), builder)
                else:
                    builder.add_chunk(columns)
            continue
        whole = cast("list[RawAsset]", group)
        columns = _typed.chunk_columns(whole, whole[0].first if whole[0].part else 0)
        if columns is None:
            yield from whole
        elif whole[0].part or not whole[0].last:  # a piece of a large asset (._split)
            builder.add_piece(columns, part=whole[0].part, last=whole[0].last)
        else:
            builder.add_chunk(columns)


def _work(
    job: tuple[list[RawAsset | Block], str, OnError, int],
) -> tuple[dict[str, npt.NDArray[Any]], SkipLog]:
    batch, name, on_error, keep = job
    index, skipped = _index_serial(batch, name, on_error, keep=keep)
    return index.arrays, skipped


def _work_piece(job: tuple[RawAsset, str, OnError]) -> tuple[str, Any]:
    """The columns of one piece of a large asset (:mod:`._split`): ``("typed",
    ChunkColumns)``, ``("columns", AssetColumns)`` or, under ``"skip"``, ``("skip",
    Skipped)``; the main process joins the pieces in order (:func:`_join_piece`)."""
    raw, name, on_error = job
    columns = _typed.chunk_columns([raw], raw.first) if _typed.AVAILABLE else None
    if columns is not None:
        return "typed", columns
    obj: Any = None
    try:
        with piece_error(raw):
            obj = decode_raw(raw, name)
            return "columns", asset_columns(obj, raw.index, line=raw.line, first=raw.first)
    except ExportFormatError as exc:
        if on_error == "raise":
            raise
        ext = obj.get("externalId") if isinstance(obj, Mapping) else None
        return "skip", Skipped(raw.index, ext if isinstance(ext, str) else None, str(exc))


def _batches(
    raws: Iterable[RawAsset | Block], batch_bytes: int
) -> Iterator[list[RawAsset | Block] | RawAsset]:
    """Runs of whole assets of about ``batch_bytes`` (:func:`._typed.chunks`), and each
    piece of a large asset on its own (a job of its own, so that its pieces are decoded
    in parallel too)."""
    for group in _typed.chunks(raws, batch_bytes):
        first = group[0]
        if isinstance(first, RawAsset) and (first.part or not first.last):
            yield first
        else:
            yield group


def _native_threads() -> int:
    """Threads of this process, native ones included (Linux); ``0`` where unknown."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


# Threads running when this module is imported: the interpreter and numpy's BLAS pool
# (OpenBLAS registers fork handlers, and its pool starts with numpy, before any user
# code could start CUDA or NCCL).  Any thread beyond these makes fork unsafe.
_BASELINE_THREADS = _native_threads()


def _torch_busy() -> bool:
    """Whether torch (if the caller imported it; never imported here) started CUDA or a
    process group: their threads and driver state do not survive a fork."""
    torch: Any = sys.modules.get("torch")
    if torch is None:
        return False
    try:
        if torch.cuda.is_initialized():
            return True
    except (AttributeError, RuntimeError):
        return True  # a torch we cannot query: do not bet a fork on it
    return _distributed()


def _fork_ok() -> bool:
    """Whether worker processes may be forked: only from a single-threaded process.

    Python threads are counted by :mod:`threading`; native ones (OpenMP pools, CUDA,
    NCCL, gRPC: e.g. under torchrun) only by the kernel, so the process's task count
    must not have grown since import, and torch must not have started CUDA or a process
    group.
    """
    return (
        "fork" in multiprocessing.get_all_start_methods()
        and sys.version_info < (3, 12)
        and threading.active_count() == 1
        and not _torch_busy()
        and _native_threads() <= _BASELINE_THREADS
    )


def default_workers(nbytes: int | None) -> int:
    """Processes to index a file of ``nbytes`` when the caller does not say.

    One below :data:`PARALLEL_MIN_BYTES`.  Above it, one per CPU this process may run
    on, up to 4, forked where that is safe (see :func:`_fork_ok`); where it is not
    (Python 3.12+, threads running, CUDA started), the workers are started by
    forkserver (spawn where there is none), fresh interpreters that import this package
    (the forkserver once where it can, :func:`_preload_in_forkserver`) and not the
    caller's main script (:func:`_main_hidden`), so only from
    :data:`PARALLEL_STARTED_MIN_BYTES` on, where their start pays (and not in a frozen
    app or an embedding one, :func:`_can_start`).  One inside a process that
    multiprocessing started (a DataLoader worker, daemonic, may not have children; a
    ``ProcessPoolExecutor`` or ``torch.multiprocessing.spawn`` worker shares the CPUs
    with its siblings: N of them would start N x 4 indexers, as joblib's loky also
    avoids), and one under torchrun (``WORLD_SIZE`` above 1) or an initialized
    ``torch.distributed`` process group (the ranks already share the machine's CPUs).
    """
    if nbytes is None or nbytes < PARALLEL_MIN_BYTES:
        return 1
    if _child() or _distributed() or _ranks() > 1:
        return 1
    if not _fork_ok() and (nbytes < PARALLEL_STARTED_MIN_BYTES or not _can_start()):
        return 1
    return max(1, min(4, _cpus()))


def _child() -> bool:
    """Whether multiprocessing started this process (a pool's or a DataLoader's worker,
    ``torch.multiprocessing.spawn``'s ranks...): its siblings share the CPUs."""
    return multiprocessing.current_process().daemon or multiprocessing.parent_process() is not None


def _can_start() -> bool:
    """Whether this interpreter can start fresh ones by default: not in a frozen app
    (PyInstaller: without ``freeze_support()`` its spawned workers run the app again)
    nor where ``sys.executable`` is unknown (an embedding application)."""
    return not getattr(sys, "frozen", False) and bool(sys.executable)


def _cpus() -> int:
    """CPUs this process may run on (its affinity where the OS says, as in a container
    given a cpuset; a CPU quota is not seen)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def _ranks() -> int:
    """Processes of a job launched by torchrun (its ``WORLD_SIZE``), also before it
    initializes its process group: each rank indexing with workers would oversubscribe
    the machine."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def _distributed() -> bool:
    """Whether the caller's torch (never imported here) has a process group."""
    torch: Any = sys.modules.get("torch")
    if torch is None:
        return False
    try:
        dist = getattr(torch, "distributed", None)
        return bool(dist is not None and dist.is_available() and dist.is_initialized())
    except (AttributeError, RuntimeError):
        return True  # a torch we cannot query: as if it had one


_HIDING = threading.Lock()
_saved: dict[str, Any] = {}  # what __main__ held, while any start is hiding it
_hiders = 0
_MAIN_KEYS = ("__file__", "__spec__")


@contextlib.contextmanager
def _main_hidden() -> Iterator[None]:
    """The caller's ``__main__`` hidden from :mod:`multiprocessing` while a worker starts.

    A spawn or forkserver worker otherwise imports the parent's main script (or module)
    before its first job: a script's top-level code runs again in every worker, all of
    it where it lacks the ``if __name__ == "__main__":`` guard (the worker then fails, and
    indexing fell back to one process after seconds; found by running an unguarded
    script with ``workers=2`` on forkserver), and its imports (torch's among them)
    cost seconds per worker.  The workers need only this package: with no ``__file__``
    and no ``__spec__`` on ``__main__``, multiprocessing sends neither (it already does
    so for a REPL).  Held only while ``Process.start`` runs.

    Threads that start workers at once share one hiding (a count under a lock: the
    first saves and hides, the last restores; nested saves lost ``__file__`` for good,
    found by review).  A process another thread starts by spawn/forkserver within that
    window (milliseconds) also starts without the main script.
    """
    global _hiders
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    with _HIDING:
        if not _hiders:
            _saved.clear()
            _saved.update((k, main.__dict__[k]) for k in _MAIN_KEYS if k in main.__dict__)
            main.__dict__.pop("__file__", None)
            main.__dict__["__spec__"] = None
        _hiders += 1
    try:
        yield
    finally:
        with _HIDING:
            _hiders -= 1
            if not _hiders:
                main.__dict__.pop("__file__", None)
                main.__dict__.pop("__spec__", None)
                main.__dict__.update(_saved)


class _WithoutMain:
    """A worker :class:`multiprocessing.Process` started with :func:`_main_hidden` (the
    forkserver too, when its first worker starts it: it then does not import the main
    script either).  Pickled to the child, so its classes live in this module."""

    def start(self) -> None:
        with _main_hidden():
            super().start()  # type: ignore[misc]


class _SpawnProcess(_WithoutMain, multiprocessing.context.SpawnProcess):
    pass


class _SpawnContext(multiprocessing.context.SpawnContext):
    Process = _SpawnProcess


_CONTEXTS: dict[str, Any] = {"spawn": _SpawnContext()}

if sys.platform != "win32":

    class _ForkServerProcess(_WithoutMain, multiprocessing.context.ForkServerProcess):
        pass

    class _ForkServerContext(multiprocessing.context.ForkServerContext):
        Process = _ForkServerProcess

    _CONTEXTS["forkserver"] = _ForkServerContext()


def _context() -> Any:
    # fork starts instantly, but is only safe in a single-threaded process, and from
    # Python 3.12 on it warns whenever the process has other (also native) threads.
    # forkserver workers start in a fraction of a second: they import this module, not
    # torch (ango_torch loads torch lazily), nor the caller's main script.
    methods = multiprocessing.get_all_start_methods()
    if _fork_ok():
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        _preload_in_forkserver()
        return _CONTEXTS["forkserver"]
    return _CONTEXTS["spawn"]


def _server_path_is_callers(version: tuple[int, ...] | None = None) -> bool:
    """Whether a forkserver started now imports its preload list from the caller's
    ``sys.path``: from Python 3.12.8 and 3.13.1 on.  Before (CPython gh-117378) it
    ignored the path it was sent and imported from the default one of ``python -c``
    (the current directory first), which may hold another copy of this package than
    the caller's: its workers would then run that copy (found by review, issue 14)."""
    v = tuple(sys.version_info[:3]) if version is None else version
    return v >= (3, 13, 1) or (3, 12, 8) <= v < (3, 13)


def _preload_in_forkserver() -> None:
    """Have the forkserver import this module when it starts, so that each indexing
    worker is a fork of it with the imports done, instead of a fresh import of this
    package (~0.3 s of CPU per worker).

    Only where the server imports from the caller's ``sys.path``
    (:func:`_server_path_is_callers`), and only added to the server's preload list: its
    entries are kept (by default ``["__main__"]``, which :func:`_main_hidden` keeps
    from importing the caller's script), an empty list (the caller's choice: preload
    nothing) is left alone, and the list is set directly, not through
    ``set_forkserver_preload``, whose other settings (3.15's ``on_error``) a second call
    could reset.  Where the server already runs (started by the caller's own forkserver
    use) its workers import this module, as before.  The server is one per process and
    serves the caller's own forkserver children too: they start with this module (numpy,
    msgspec) already imported, the same copy as the caller's.

    On 2 cores, the 79 MiB mixed export with 2 workers started by forkserver, 4
    alternating fresh processes of 3 loads each (issue 14): the first load 1.41-1.91 s
    (median 1.63) against 1.48-2.00 s (1.73) without, the server's one import being on
    the path as the workers' two were; the next loads 1.04-1.56 s (median 1.16) against
    1.30-1.95 s (1.52), 1.31x faster.
    """
    if not _server_path_is_callers():
        return
    from multiprocessing import forkserver

    server: Any = getattr(forkserver, "_forkserver", None)
    modules = getattr(server, "_preload_modules", None)
    if not isinstance(modules, list) or not modules or __name__ in modules:
        return
    server._preload_modules = [*modules, __name__]


def index_raw(
    raws: Iterable[RawAsset | Block],
    name: str,
    *,
    on_error: OnError,
    workers: int = 1,
    digest: str = "",
    progress_bar: bool | None = None,
    batch_bytes: int = BATCH_BYTES,
) -> tuple[ExportIndex, SkipLog]:
    """Index raw assets, with ``workers`` processes when more than one."""
    if workers <= 1:
        return _index_serial(
            progress(raws, desc="indexing", enabled=progress_bar), name, on_error, digest
        )
    parts: list[ExportIndex] = []
    skipped = SkipLog()
    big = IndexBuilder()  # the large asset whose pieces are coming back
    failed = -1

    def collect(job: list[RawAsset | Block] | RawAsset, result: Any) -> None:
        nonlocal failed
        if isinstance(job, list):
            arrays, skips = result
            parts.append(ExportIndex(arrays))
            skipped.extend(skips)
            return
        kind, value = result
        if kind == "skip":
            big.discard_open()
            if job.index != failed:
                skipped.append(value)
            failed = job.index
        elif kind == "typed":
            big.add_piece(value, part=job.part, last=job.last)
        else:
            big.add_columns(value, part=job.part, last=job.last)
        if job.last and len(big):
            parts.append(big.build())

    # A bounded window of batches in flight keeps memory flat; results come back in
    # order, and a worker's ExportFormatError is raised here, in order.  A worker that
    # cannot start raises BrokenProcessPool instead of hanging (load_export then indexes
    # in one process).
    try:
        executor = ProcessPoolExecutor(workers, mp_context=_context())
    except (OSError, NotImplementedError) as exc:  # no semaphores or /dev/shm (a sandbox)
        raise BrokenProcessPool(f"cannot make the worker pool ({exc!r})") from exc
    try:
        pending: deque[tuple[list[RawAsset | Block] | RawAsset, Future[Any]]] = deque()
        batches = progress(_batches(raws, batch_bytes), desc="indexing (batches)",
                           enabled=progress_bar)  # fmt: skip
        jobs = iter(batches)
        read_error: Exception | None = None
        while True:
            try:
                job = next(jobs)
            except StopIteration:
                break
            except Exception as exc:  # reading failed: the batches read before come first
                read_error = exc  # (their errors too), as in one process (found by fuzzing)
                break
            future: Future[Any]
            try:  # (spawn/forkserver workers start here, as jobs need them)
                if isinstance(job, list):
                    future = executor.submit(_work, (job, name, on_error, skipped.keep))
                else:
                    future = executor.submit(_work_piece, (job, name, on_error))
            except (OSError, NotImplementedError, EOFError) as exc:  # the forkserver's
                # socket; EOFError: a server that died (a module it preloads failed)
                raise BrokenProcessPool(f"a worker cannot start ({exc!r})") from exc
            pending.append((job, future))
            if len(pending) >= 2 * workers:
                done, future = pending.popleft()
                collect(done, future.result())
        while pending:
            done, future = pending.popleft()
            collect(done, future.result())
        if read_error is not None:
            raise read_error
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return concat(parts, digest=digest), skipped
