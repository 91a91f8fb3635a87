"""Copy an export's images and brush masks into a folder that ``root=`` reads.

:func:`prefetch_items` lists the files of an export (every image or page, and the
brush mask of the selected stage); :func:`prefetch` downloads them with a thread pool
into the layout of :mod:`ango_torch.assets.layout` (the one ``root=`` reads),
resumably: files already at the destination are skipped.  :func:`expiry_of_export`
says how many of an export's signed URLs have expired or expire soon.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from ..errors import UnsafePathError, where
from ._local import check_inside
from .expiry import ExpiryReport, expiry_report
from .fetch import AssetStore, RetryPolicy
from .layout import (
    Kind,
    asset_path,
    base_folder,
    brush_content_key,
    brush_stage_key,
    shared_assets,
)
from .volume_io import VOLUME_EXTENSIONS, medical_content_key, read_volume

if TYPE_CHECKING:
    from ..export.load import AngoExport

__all__ = [
    "DEFAULT_CONCURRENCY",
    "PrefetchItem",
    "PrefetchReport",
    "expiry_of_export",
    "prefetch",
    "prefetch_items",
]

DEFAULT_CONCURRENCY: Final = 16
"""Default threads of :func:`prefetch`: at 20 ms per request 8 stay under 10× the
one-by-one rate, 16 reach about 14× (``benchmarks/fetch.py``)."""
_DEFAULT_RETRY: Final = RetryPolicy()


@dataclass(frozen=True, slots=True)
class PrefetchItem:
    """One file for :func:`prefetch` to download (where:
    :func:`~ango_torch.assets.layout.asset_path`).

    ``content_key`` (brush masks: :func:`brush_content_key`) and ``shared`` (the
    externalId is not unique: :func:`shared_assets`) choose its name.
    """

    asset_id: str
    external_id: str
    url: str | None
    kind: Kind = "image"
    page: int | None = None
    stage_key: str | None = None
    content_key: str | None = None
    shared: bool = False
    index: int | None = field(default=None, compare=False)
    """The asset's index in the export, for messages only (not compared)."""
    volume: bool = False
    """A medical volume or ``.seg.nrrd`` (verified with the ``medical`` readers)."""


@dataclass(frozen=True, slots=True)
class PrefetchReport:
    """What :func:`prefetch` did.

    Attributes:
        fetched: Files downloaded, checked and written.
        skipped: Files already complete at the destination.
        failed: ``(item, error message)`` for every file that could not be prefetched.
    """

    fetched: int = 0
    skipped: int = 0
    failed: list[tuple[PrefetchItem, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failed

    def summary(self) -> str:
        """One line, e.g. ``'498 fetched, 0 skipped, 2 failed'``."""
        return f"{self.fetched} fetched, {self.skipped} skipped, {len(self.failed)} failed"


def prefetch_items(
    export: AngoExport, *, stage: str | None = None, brush: bool = True
) -> list[PrefetchItem]:
    """Every file of ``export`` that a dataset reads, for :func:`prefetch`.

    Per asset, in export order: its image, or for a multi-page asset each URL of its
    ``dataset`` as pages ``0..n-1`` (instead of the image); then, with ``brush``, the
    brush PNG of its selected snapshot when that snapshot has one.  Assets without a
    URL are listed too (``url=None``), so that :func:`prefetch` reports them.

    Args:
        export: A loaded export.
        stage: Whose brush masks: ``None`` for the exported answer, else a stage name or
            id as in :meth:`~ango_torch.AngoExport.snapshot_rows` (assets without that
            stage contribute their images only).
        brush: Include brush masks.

    Raises:
        StageNotFoundError: No asset has ``stage``.
    """
    idx = export.index
    rows = export.snapshot_rows(stage)
    shared = shared_assets(idx).tolist()
    items: list[PrefetchItem] = []
    for i in range(len(idx)):
        asset_id = idx.string(idx.asset_asset_id[i]) or ""
        external_id = idx.string(idx.asset_external_id[i]) or ""
        p0, p1 = int(idx.asset_page_start[i]), int(idx.asset_page_end[i])
        if p1 > p0:
            items.extend(
                PrefetchItem(
                    asset_id,
                    external_id,
                    idx.string(idx.page_urls[p]) or None,
                    page=k,
                    shared=shared[i],
                    index=i,
                )
                for k, p in enumerate(range(p0, p1))
            )
        else:
            items.append(
                PrefetchItem(
                    asset_id,
                    external_id,
                    idx.string(idx.asset_url[i]),
                    shared=shared[i],
                    index=i,
                )
            )
        row = int(rows[i])
        if not brush or row < 0:
            continue
        # The 2D brush PNG, then the voxel brush's .seg.nrrd (where AngoVolumeDataset reads it).
        for urls, content_key, volume in (
            (idx.snap_brush, brush_content_key, False),
            (idx.snap_medical_brush, medical_content_key, True),
        ):
            url = idx.string(urls[row])
            if url:
                items.append(
                    PrefetchItem(
                        asset_id,
                        external_id,
                        url,
                        kind="brush",
                        stage_key=brush_stage_key(idx, row),
                        content_key=content_key(idx, row),
                        index=i,
                        volume=volume,
                    )
                )
    return items


def expiry_of_export(
    export: AngoExport, *, now: datetime | None = None, horizon: timedelta = timedelta(hours=24)
) -> ExpiryReport:
    """:func:`~ango_torch.assets.expiry.expiry_report` over every distinct asset, page and
    brush-mask URL of ``export`` (all snapshots, every stage)."""
    idx = export.index
    ids = np.unique(np.concatenate([idx.asset_url, idx.page_urls, idx.snap_brush]))
    return expiry_report((idx.string(i) for i in ids[ids >= 0]), now=now, horizon=horizon)


def _item_label(item: PrefetchItem) -> str:
    return where(asset=item.external_id, index=item.index)


def _placement(item: PrefetchItem) -> dict[str, Any]:
    """The keyword arguments that place ``item`` in a folder: the same for
    :func:`asset_path` (where prefetch writes) and :meth:`AssetStore.fetch` (where the
    dataset then reads), so the two cannot drift apart."""
    return {
        "asset_id": item.asset_id,
        "external_id": item.external_id,
        "page": item.page,
        "kind": item.kind,
        "stage_key": item.stage_key,
        "content_key": item.content_key,
        "shared": item.shared,
        "label": _item_label(item),
    }


def _check_inside(base: str, dest: str, label: str) -> None:
    """Refuse a local ``dest`` whose real path (symlinks resolved) is not inside ``base``'s."""
    if "://" not in base:  # object stores have no symlinks; ids were checked by asset_path
        check_inside(
            dest, base_folder(base), label, what="the destination", remedy="refusing to write"
        )


def prefetch(
    items: Iterable[PrefetchItem],
    *,
    to: str | os.PathLike[str],
    concurrency: int = DEFAULT_CONCURRENCY,
    storage_options: Mapping[str, Any] | None = None,
    retry: RetryPolicy = _DEFAULT_RETRY,
    progress: bool | None = None,
    verify: bool = True,
    allow_local_urls: bool = False,
) -> PrefetchReport:
    """Download assets into a folder laid out so that ``root=to`` reads them.

    Resumable: files already at the destination are skipped, and every file is
    written to a temporary name and renamed, so an interrupted run never leaves a
    partial file under a final name.  Individual failures are reported, not raised.

    Args:
        items: The files to fetch (duplicates are fetched once).
        to: Destination: a local folder, or an fsspec URL (written with one put each).
        concurrency: Parallel downloads (threads).
        storage_options: fsspec options for ``to`` and non-HTTP URLs.
        retry: Retry policy per file.
        progress: Show a tqdm bar; default: when tqdm is installed and stderr is a TTY.
        verify: Decode every file before writing it (images to RGB, brush masks to
            RGBA); undecodable files are reported as failures and not written.
        allow_local_urls: Read item URLs that name this machine's files (paths,
            ``file://``); off by default (such items fail with ``LocalURLError``).

    Nothing is ever written outside ``to``: every destination is checked after the
    ids are placed (no ``..``, absolute or templated ids) and, for a local ``to``,
    after symlinks are resolved; an item that would leave it fails (``UnsafePathError``).

    Returns:
        Counts of fetched and skipped files and the list of failures.
    """
    from .._progress import progress as progress_bar
    from .decode import decode_image, decode_rgba

    if concurrency < 1:
        raise ValueError(f"concurrency must be ≥ 1, got {concurrency}")
    base = os.fspath(to).removeprefix("file://")  # file:// is a local folder
    store = AssetStore(
        storage_options=storage_options, retry=retry, allow_local_urls=allow_local_urls
    )
    unique: dict[str, PrefetchItem] = {}
    failed: list[tuple[PrefetchItem, str]] = []
    for item in items:
        try:
            dest = asset_path(base, **_placement(item))
        except (UnsafePathError, ValueError) as exc:
            failed.append((item, str(exc)))
            continue
        unique.setdefault(dest, item)

    def one(dest: str, item: PrefetchItem) -> bool:
        if store.exists(dest):
            return False
        label = _item_label(item)
        data = store.fetch(url=item.url, **_placement(item))
        if verify:
            check: Callable[..., Any] = decode_rgba if item.kind == "brush" else decode_image
            if item.volume or item.external_id.lower().endswith(VOLUME_EXTENSIONS):
                check = read_volume
            check(data, label=label)
        _check_inside(base, dest, label)  # the final path, just before writing
        store.write(dest, data)
        return True

    fetched = skipped = 0
    jobs = iter(unique.items())
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="prefetch") as pool:
        pending: dict[Future[bool], PrefetchItem] = {}

        def fill() -> None:
            # Bounded submission: millions of items must not become millions of futures.
            while len(pending) < 2 * concurrency:
                nxt = next(jobs, None)
                if nxt is None:
                    return
                pending[pool.submit(one, *nxt)] = nxt[1]

        def completed() -> Iterable[tuple[PrefetchItem, Future[bool]]]:
            fill()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield pending.pop(fut), fut
                fill()

        try:
            for item, fut in progress_bar(
                completed(), desc="prefetch", total=len(unique), enabled=progress
            ):
                error = fut.exception()
                if error is None:
                    if fut.result():
                        fetched += 1
                    else:
                        skipped += 1
                elif isinstance(error, Exception):
                    failed.append((item, str(error) or type(error).__name__))
                else:
                    raise error
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
    return PrefetchReport(fetched, skipped, failed)
