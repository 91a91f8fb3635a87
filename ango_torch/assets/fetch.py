"""Fetch asset bytes: local cache → ``root`` → the export's (signed) URL.

The only fsspec user for assets (the export file itself is opened by
:mod:`ango_torch.export._read`).  :class:`AssetStore` holds
plain, picklable data; filesystem objects are created lazily in each process
(DataLoader workers started by fork, spawn or forkserver each make their own:
fsspec filesystems, with their event loops and sessions, are not fork-safe).

HTTP(S) URLs are fetched with the standard library rather than fsspec's HTTP
filesystem: pre-signed URLs need no credentials, and a plain request exposes the
status *and body* of a failure, which is how an expired signature (S3's
``Request has expired``, GCS's ``ExpiredToken``) is told from a real 403.

Layout under ``root`` (and written by :func:`ango_torch.assets.prefetch.prefetch`): see
:mod:`ango_torch.assets.layout` (``ROOT/<externalId>`` where externalIds are unique,
``ROOT/_assets/<assetId>/<externalId>`` where they are not, brush masks under
``ROOT/_brush/`` named by their content).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import (
    AngoTorchError,
    AssetFetchError,
    LocalURLError,
    missing_filesystem,
    where,
)
from ..limits import Limits, current
from ._http import Retryable, http_get
from ._local import (
    Missing,
    atomic_write,
    check_inside,
    is_local_path,
    is_local_url,
    read_local,
    redact,
    too_large,
)
from .layout import Kind, asset_path, base_folder, cache_name

__all__ = [
    "AssetStore",
    "Kind",
    "RetryPolicy",
    "asset_path",
    "is_local_url",
]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How transient failures are retried: exponential backoff with full jitter.

    Retried: connection errors and resets, timeouts, HTTP 408/425/429 and 5xx.
    Never retried: 404 (missing), 400/401/403 (expired or forbidden), other 4xx.

    Attributes:
        attempts: Requests per asset at most (1 = no retry).
        backoff: Base delay in seconds; attempt ``k`` waits ``uniform(0, min(max_backoff,
            backoff * 2**k))``, or the server's ``Retry-After`` if longer (capped).
        max_backoff: Longest single wait in seconds.
        total_timeout: Budget in seconds for all attempts of one asset together.
        timeout: Per-request timeout in seconds (connect, and each read).
    """

    attempts: int = 5
    backoff: float = 0.25
    max_backoff: float = 8.0
    total_timeout: float = 120.0
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be ≥ 1, got {self.attempts}")
        for name in ("backoff", "max_backoff", "total_timeout", "timeout"):
            if getattr(self, name) < 0:
                raise ValueError(f"RetryPolicy.{name} must be ≥ 0, got {getattr(self, name)}")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        cap = min(self.max_backoff, self.backoff * 2.0**attempt)
        wait = random.uniform(0.0, cap)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_backoff))
        return wait


class AssetStore:
    """Fetches image and brush bytes for assets; picklable, fork- and spawn-safe.

    Args:
        root: Where the images already are: a local folder, an fsspec URL
            (``memory://imgs``, ``s3://bucket/x``) or a template containing
            ``{externalId}`` or ``{assetId}`` (``s3://bucket/imgs/{externalId}``).
            A plain root means ``root/<externalId>`` (``root/_assets/<assetId>/
            <externalId>`` for shared externalIds).  Files missing under root fall
            back to the asset's URL.
        storage_options: Passed to fsspec for ``root`` and non-HTTP URLs.
        cache_dir: Local folder caching fetched images by assetId and brush masks by
            their content key (a second pass over the data makes no request).  Not
            used for files read from a local root.
        retry: Retry policy for transient failures.
        allow_local_urls: Read export URLs that name this machine's files (paths,
            ``file://``, chained fsspec URLs; see :func:`is_local_url`).  Off by
            default: an export is untrusted, and its URLs are remote.
        follow_symlinks: Follow symlinks under a local ``root`` that lead out of it.
            Off by default: such a file raises :class:`UnsafePathError`.
        limits: Safety limits (``max_asset_file_bytes``); default
            :func:`ango_torch.limits.current` when the store is made.

    Raises:
        AssetFetchError: A local ``root`` (or a template's folder) that is a file.
    """

    def __init__(
        self,
        *,
        root: str | os.PathLike[str] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        retry: RetryPolicy = RetryPolicy(),
        allow_local_urls: bool = False,
        follow_symlinks: bool = False,
        limits: Limits | None = None,
    ) -> None:
        self.root = None if root is None else os.fspath(root)
        self.storage_options = dict(storage_options or {})
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        self.retry = retry
        self.allow_local_urls = bool(allow_local_urls)
        self.follow_symlinks = bool(follow_symlinks)
        self.limits = limits if limits is not None else current()
        self._local: dict[str, Any] = {}  # per-process state, see _state()
        if self.root is not None and is_local_path(self.root):
            folder = base_folder(self.root).removeprefix("file://")
            if os.path.exists(folder) and not os.path.isdir(folder):
                raise AssetFetchError(
                    f"root={self.root!r}: {folder!r} is a file, not a folder; pass the "
                    "folder the images are in (ROOT/<externalId>)"
                )

    def __repr__(self) -> str:
        return (
            f"AssetStore(root={self.root!r}, cache_dir={self.cache_dir!r}, retry={self.retry!r}, "
            f"allow_local_urls={self.allow_local_urls}, follow_symlinks={self.follow_symlinks})"
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_local"] = {}  # never ship filesystem objects to another process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # -- per-process filesystems ---------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        local = self._local
        if local.get("pid") != os.getpid():  # fresh process (or forked child): start over
            self._local = local = {"pid": os.getpid(), "lock": threading.Lock(), "fs": {}}
        return local

    def _fs(self, url: str) -> tuple[Any, str]:
        """(filesystem, path) for an fsspec URL, the filesystem made once per process
        per (protocol, options): the options are ``storage_options`` plus those fsspec
        reads from the URL itself (host, user, account of ``ftp://``, ``sftp://``,
        ``abfs://``...), so two hosts or accounts never share one filesystem."""
        import fsspec.core

        local = self._state()
        cache: dict[Any, Any] = local["fs"]
        try:
            key = None if "::" in url else self._fs_key(url)
            with local["lock"]:
                fs = None if key is None else cache.get(key)
                if fs is None:
                    # skip_instance_cache: never share an instance (and its event loop or
                    # session) with the caller's code or with a forked parent.
                    fs, _ = fsspec.core.url_to_fs(
                        url, skip_instance_cache=True, **self.storage_options
                    )
                    if key is not None:
                        cache[key] = fs
        except ImportError as exc:
            raise missing_filesystem(url, exc) from exc
        return fs, fs._strip_protocol(url)

    def _fs_key(self, url: str) -> tuple[str, str]:
        import fsspec
        import fsspec.core
        import fsspec.utils

        protocol = fsspec.core.split_protocol(url)[0] or "file"
        from_url = fsspec.get_filesystem_class(protocol)._get_kwargs_from_urls(url)
        return protocol, fsspec.utils.tokenize(protocol, from_url, self.storage_options)

    # -- destinations (what prefetch writes) ---------------------------------------------

    def exists(self, path: str) -> bool:
        """Whether a file is at ``path``: a local path (or ``file://``) or an fsspec URL."""
        if is_local_path(path):
            return os.path.isfile(path.removeprefix("file://"))
        fs, stripped = self._fs(path)
        return bool(fs.exists(stripped))

    def write(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` so that no reader ever sees a partial file.

        Local paths go through :func:`atomic_write`; fsspec URLs get one put (object
        stores make a put visible all at once).
        """
        if is_local_path(path):
            atomic_write(path.removeprefix("file://"), data)
        else:
            fs, stripped = self._fs(path)
            fs.pipe_file(stripped, data)

    # -- fetch ---------------------------------------------------------------------------

    def fetch(
        self,
        *,
        asset_id: str,
        external_id: str,
        url: str | None,
        page: int | None = None,
        kind: Kind = "image",
        stage_key: str | None = None,
        content_key: str | None = None,
        shared: bool = False,
        label: str = "",
    ) -> bytes:
        """The bytes of one image, page or brush PNG.

        Looks in ``cache_dir``, then under ``root``, then downloads ``url``.

        Args:
            asset_id: The asset's ``assetId`` (cache key of images).
            external_id: The asset's ``externalId`` (file name under ``root``).
            url: The export's URL for this file, or ``None``.
            page: Page index of a multi-page asset (``url`` is that page's URL).
            kind: ``"image"`` or ``"brush"`` (the task's or a stage's brush PNG).
            stage_key: For brush masks of a stage snapshot: the stage's key.
            content_key: Required for brush masks: what names their content
                (:func:`ango_torch.assets.prefetch.brush_content_key`); the cache and ``root``
                file of a brush mask are keyed by it, never by the assetId alone.
            shared: Another asset of the export has this externalId (up to case):
                the image is at ``root/_assets/<assetId>/<externalId>``
                (:func:`ango_torch.assets.layout.shared_external_ids`).
            label: Location for error messages, e.g. ``"asset 'a.jpg' (#3)"``.

        Raises:
            UnsafePathError: ``external_id`` or ``asset_id`` would escape ``root`` or
                names no file, or a symlink under a local ``root`` leads out of it.
            LocalURLError: ``url`` names a file on this machine and the store was not
                made with ``allow_local_urls=True``.
            AssetTooLargeError: The file is over ``limits.max_asset_file_bytes``.
            ExpiredURLError: The signed URL has expired (HTTP 400/403 saying so).
            AssetFetchError: Missing everywhere, or failed after all retries.
            ValueError: A brush mask without ``content_key``.
        """
        label = label or where(asset=external_id)
        if "field " not in label:
            field = "brushDataUrl" if kind == "brush" else "asset" if page is None else "dataset"
            label += f", field {field!r}"
        if page is not None:
            label += f", page {page}"
        if kind == "brush":
            label += ", brush mask" + ("" if stage_key is None else f" of stage {stage_key!r}")
        if kind == "brush" and not content_key:
            raise ValueError(
                f"{label}: brush masks are keyed by their content: pass content_key "
                "(ango_torch.assets.prefetch.brush_content_key), never the assetId alone"
            )
        keys = {"page": page, "kind": kind, "stage_key": stage_key, "content_key": content_key}
        cache_path = None
        if self.cache_dir is not None:
            name = cache_name(asset_id, external_id, label=label, **keys)  # type: ignore[arg-type]
            cache_path = os.path.join(self.cache_dir, name)
            try:
                return self._read_local(cache_path, label)
            except Missing:
                pass
        tried: list[str] = []
        data: bytes | None = None
        local_root = False
        if self.root is not None:
            path = asset_path(
                self.root,
                asset_id=asset_id,
                external_id=external_id,
                shared=shared,
                label=label,
                **keys,  # type: ignore[arg-type]
            )
            if is_local_path(self.root) and not self.follow_symlinks:
                self._contain(path, label)
            try:
                data = self._get(path, label)
                local_root = is_local_path(self.root)
            except Missing:
                tried.append(f"not found at {path!r}")
        if data is None:
            if not url:
                where_ = "; ".join(tried) or "no root= given"
                raise AssetFetchError(f"{label}: no URL in the export and {where_}")
            if not self.allow_local_urls and is_local_url(url):
                where_ = "; ".join(tried) or "no root= given"
                raise LocalURLError(
                    f"{label}: the export's URL {redact(url)!r} names a file on this machine "
                    f"({where_}); an export is untrusted and its URLs are read from remote "
                    "hosts only. Put the file under root=, or pass allow_local_urls=True "
                    "(--allow-local-urls) if the export is yours"
                )
            try:
                data = self._get(url, label)
            except Missing:
                tried.append(f"404 Not Found from {redact(url)}")
                raise AssetFetchError(f"{label}: file is missing: {'; '.join(tried)}") from None
        if cache_path is not None and not local_root:
            atomic_write(cache_path, data)
        return data

    def _get(self, url: str, label: str) -> bytes:
        """One source, with retries; raises Missing for a 404 / missing file."""
        policy = self.retry
        start = time.monotonic()
        http = url.startswith(("http://", "https://"))
        attempt = 0
        while True:
            remaining = policy.total_timeout - (time.monotonic() - start)
            timeout = max(0.001, min(policy.timeout, remaining))
            try:
                return self._get_http(url, label, timeout) if http else self._get_fs(url, label)
            except Retryable as exc:
                attempt += 1
                elapsed = time.monotonic() - start
                wait = policy.delay(attempt - 1, exc.retry_after)
                if attempt >= policy.attempts or elapsed + wait >= policy.total_timeout:
                    raise AssetFetchError(
                        f"{label}: fetching {redact(url)} failed after {attempt} attempt(s) "
                        f"in {elapsed:.1f}s (RetryPolicy(attempts={policy.attempts}, "
                        f"total_timeout={policy.total_timeout})): last error: {exc}"
                    ) from exc
                time.sleep(wait)

    def _contain(self, path: str, label: str) -> None:
        assert self.root is not None
        check_inside(
            path,
            base_folder(self.root),
            label,
            what="root",
            remedy="pass follow_symlinks=True (--follow-symlinks) to follow it",
        )

    def _read_local(self, path: str, label: str) -> bytes:
        return read_local(path, label, self.limits.max_asset_file_bytes)

    def _get_fs(self, url: str, label: str) -> bytes:
        if is_local_path(url):
            return self._read_local(url.removeprefix("file://"), label)
        limit = self.limits.max_asset_file_bytes
        try:
            fs, path = self._fs(url)
            data: bytes = fs.cat_file(path, start=0, end=limit + 1)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise Missing(str(exc)) from exc
        except (ConnectionError, TimeoutError) as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}") from exc
        except AngoTorchError:
            raise
        except Exception as exc:  # fsspec backends raise anything: unknown protocol...
            raise AssetFetchError(
                f"{label}: cannot read {redact(url)!r}: {type(exc).__name__}: {exc}"
            ) from exc
        if len(data) > limit:
            raise too_large(label, url, f"over {limit:,}", limit)
        return data

    def _get_http(self, url: str, label: str, timeout: float) -> bytes:
        return http_get(url, label, timeout, self.limits.max_asset_file_bytes)
