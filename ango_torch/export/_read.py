"""Stream raw assets out of an export file: JSON array, NDJSON, ZIP or gzip.

The JSON array is split into its elements by a vectorized scan (:mod:`._scan`: strings,
escapes and nesting depth tracked with numpy over 8 MiB chunks), so each asset is decoded
on its own and peak memory grows with one asset, not with the object tree of the file;
for the index, most of an array is instead cut into blocks of whole assets at the
separators between them (:mod:`._blocks`), checked by decoding each block in C.
"""

from __future__ import annotations

import email.utils
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from typing import IO, Any, Literal, TypeVar, overload

from ..errors import (
    ArchiveError,
    AssetFetchError,
    ExportFormatError,
    missing_filesystem,
    where,
)
from ..limits import Limits, current
from . import _blocks, _split
from ._archive import CHUNK, Fault, open_gzip, open_zip_member
from ._blocks import Block, iter_blocks
from ._bytescan import _BLANKS, _BOM
from ._scan import RawAsset, iter_array, max_depth, too_deep

try:  # orjson is the [fast] extra: ~3x faster than json on exports.
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
    _DecodeErrors: tuple[type[Exception], ...] = (orjson.JSONDecodeError, ValueError)
except ImportError:  # pragma: no cover - exercised when the extra is absent
    _loads = json.loads
    _DecodeErrors = (ValueError,)

_R = TypeVar("_R", RawAsset, RawAsset | Block)

__all__ = ["RawAsset", "check_parsed_depth", "iter_raw_assets", "loads", "open_export"]


def loads(data: bytes | str) -> Any:
    """Decode JSON with orjson where installed, else the standard library."""
    return _loads(data)  # type: ignore[arg-type]


def open_export(
    source: str, storage_options: dict[str, Any] | None = None
) -> tuple[IO[bytes], str]:
    """Open ``source`` (path or fsspec URL) as a binary stream; returns (file, name)."""
    import fsspec

    try:
        of = fsspec.open(source, "rb", **(storage_options or {}))
        return of.open(), str(source)
    except FileNotFoundError as exc:
        raise AssetFetchError(f"export {source!r}: file not found") from exc
    except ImportError as exc:
        raise missing_filesystem(str(source), exc) from exc
    except OSError as exc:
        raise AssetFetchError(f"export {source!r}: cannot open ({exc})") from exc


def file_size(source: str, storage_options: dict[str, Any] | None = None) -> int | None:
    """Size in bytes of an export file (``None`` where the filesystem does not say)."""
    import fsspec.core

    try:
        fs, path = fsspec.core.url_to_fs(source, **(storage_options or {}))
        size = fs.info(path).get("size")
    except (OSError, ValueError, ImportError):
        return None
    return int(size) if isinstance(size, (int, float)) else None


# Fields of fs.info that say when a file changed ("ctime": os.stat's, added for a local
# file), and the markers of change: those, or an ETag (no time: "20261204" is no date).
_TIMES = ("mtime", "LastModified", "Last-Modified", "updated", "created", "ctime")
_MARKERS = (*_TIMES, "ETag", "etag")
# Fields left out of a stamp: times that change on a read, not a write (SFTP's "time",
# atime), and HTTP's "url", the address after redirects, whose signature changes on
# every request (GitHub releases, Hugging Face): with it no hash would be remembered.
_VOLATILE = frozenset({"atime", "accessed", "last_accessed", "time", "url"})


def file_stamp(
    source: str, storage_options: dict[str, Any] | None = None
) -> tuple[str, float | None] | None:
    """A key under which a file's content hash is remembered, and when the file last changed.

    Like git's stat cache: re-opening an unchanged multi-GB export does not hash it
    again. The key is the protocol, the path and what the filesystem says about the
    file (``fs.info``, as fsspec's own ``ukey``, less :data:`_VOLATILE`): size, mtime or
    ETag and the like; for a local file also ``os.stat``'s ctime (in ns: fsspec's
    ``created`` is the birth time on macOS and Windows) and inode, which a copy that
    restores the mtime (``cp -p``, ``rsync -t``, unzip) does not set back (on Windows,
    which has no change time, only a new inode or birth time shows such a copy).
    ``None`` when the file has no marker of change (no mtime, ETag or the like): its
    content is hashed on every open. The second item is the newest of its timestamps
    in seconds (``None`` when it has none), for the racy-write guard of the caller.
    """
    import fsspec.core

    try:
        fs, path = fsspec.core.url_to_fs(source, **(storage_options or {}))
        info = dict(fs.info(path))
        from fsspec.implementations.local import LocalFileSystem

        # (a local file behind simplecache::/filecache::/blockcache:: too: same path)
        if isinstance(fs, LocalFileSystem) or isinstance(getattr(fs, "fs", None), LocalFileSystem):
            st = os.stat(path)
            info |= {"st_ctime_ns": st.st_ctime_ns, "st_mtime_ns": st.st_mtime_ns}
            info |= {"st_ino": st.st_ino, "st_dev": st.st_dev, "ctime": st.st_ctime}
    except (OSError, ValueError, ImportError):
        return None
    if info.get("size") is None or not any(info.get(k) for k in _MARKERS):
        return None
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    facts = sorted((str(k), repr(v)) for k, v in info.items() if k not in _VOLATILE)
    times = [_seconds(info[k]) for k in _TIMES if k in info]
    changed = max((t for t in times if t is not None), default=None)
    return f"{protocol}|{path}|{facts!r}", changed


def _seconds(value: object) -> float | None:
    """A timestamp from ``fs.info`` in seconds since the epoch (``None`` if not one):
    a number, a ``datetime`` (naive read as UTC), an ISO 8601 string (GCS's
    ``updated``) or an HTTP date (``Last-Modified``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    when = value
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                return None
    if isinstance(when, datetime):
        aware = when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
        return aware.timestamp()
    return None


def file_digest(f: IO[bytes]) -> str:
    """BLAKE2b content hash of a whole stream (the persisted index's key)."""
    h = hashlib.blake2b(digest_size=16)
    while chunk := f.read(CHUNK):
        h.update(chunk)
    return h.hexdigest()


def _sniff(head: bytes) -> str:
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"PK\x03\x04" or head[:4] == b"PK\x05\x06":
        return "zip"
    text = head.removeprefix(_BOM).lstrip(_BLANKS)  # (one BOM, at the start only)
    if text[:1] == b"[":
        return "array"
    if text[:1] == b"{":
        return "ndjson"
    if not text:
        return "empty"
    return "unknown"


@overload
def iter_raw_assets(
    f: IO[bytes],
    name: str,
    limits: Limits | None = None,
    *,
    blocks: Literal[False] = False,
    _layers: tuple[str, ...] = (),
) -> Iterator[RawAsset]: ...


@overload
def iter_raw_assets(
    f: IO[bytes],
    name: str,
    limits: Limits | None = None,
    *,
    blocks: bool | Literal["decoded"],
    _layers: tuple[str, ...] = (),
) -> Iterator[RawAsset | Block]: ...


def iter_raw_assets(
    f: IO[bytes],
    name: str,
    limits: Limits | None = None,
    *,
    blocks: bool | Literal["decoded"] = False,
    _layers: tuple[str, ...] = (),
) -> Iterator[RawAsset | Block]:
    """Yield every asset of an export stream, undecoded, in file order.

    Detects ZIP (one ``.json``/``.ndjson``/``.json.gz`` member), gzip, JSON array and
    NDJSON by content, not by file name.  Enforces ``limits`` (default: the ones in
    force, :func:`ango_torch.limits.current`) on the bytes, before anything is decoded.
    With ``blocks``, a JSON array comes (where it can) as blocks (:class:`._blocks.Block`) of
    whole assets instead, for the index (:func:`._typed.block_columns`); with
    ``"decoded"``, each already decoded (for an index built in this process).

    Raises:
        ArchiveError: a corrupt, truncated, encrypted or nested archive.
        DecompressionBombError: the data expands beyond ``max_expansion_ratio``.
        LimitError: one asset beyond ``max_asset_bytes`` or ``max_depth``.
        ExportFormatError: not an export, or an element that is not an object.
    """
    lim = limits or current()
    stream: Any = f
    head = stream.peek(64)[:64] if hasattr(stream, "peek") else b""
    if not head:
        buffered = io.BufferedReader(stream, CHUNK)
        head, stream = buffered.peek(64)[:64], buffered
    kind = _sniff(head)
    if kind in ("zip", "gzip") and _layers and (kind == "zip" or kind in _layers):
        # ZIP needs random access, so only the outermost file may be one; gzip may
        # appear once.  Anything deeper is how ZIP and gzip bombs nest.
        raise ArchiveError(
            f"export {name!r}: a {kind} archive inside a {_layers[-1]} archive; nested "
            "archives are not read (only a ZIP holding one .json.gz is); unpack it first"
        )
    if kind in ("zip", "gzip"):
        if kind == "zip":
            reader, inner = open_zip_member(stream, name, lim)
        else:
            reader, inner = open_gzip(stream, lim), f"{name} (gzip)"
        with reader:
            layers = (*_layers, kind)
            inside = iter_raw_assets(reader, inner, lim, blocks=blocks, _layers=layers)
            yield from _located(inside, inner)
    elif kind == "array":
        if blocks:
            yield from iter_blocks(stream, name, lim, decode=blocks == "decoded")
        else:
            yield from iter_array(stream, name, lim)
    elif kind == "ndjson":
        yield from _iter_ndjson(stream, name, lim, blocks)
    elif kind == "empty":
        raise ExportFormatError(f"export {name!r}: the file is empty, expected a JSON array")
    else:
        raise ExportFormatError(
            f"export {name!r}: not an Ango export (expected a JSON array, NDJSON or a ZIP "
            f"of one; the file starts with {head[:16]!r})"
        )


def _located(assets: Iterator[_R], name: str) -> Iterator[_R]:
    """Re-raise a decompression fault naming the asset being read when it happened."""
    following = 0
    try:
        for raw in assets:
            following = raw.index + (raw.count if isinstance(raw, Block) else 1)
            yield raw
    except Fault as fault:
        loc = where(index=following)
        raise fault.cls(f"export {name!r}, {loc}: {fault.text}") from fault.__cause__


def _iter_ndjson(
    stream: IO[bytes], name: str, lim: Limits, blocks: bool | Literal["decoded"] = False
) -> Iterator[RawAsset | Block]:
    """The lines of an NDJSON export; with ``blocks``, runs of about
    :data:`._blocks.BLOCK_BYTES` of them as one block each where they can be
    (:func:`._blocks.ndjson_block`), else line by line."""
    index = lineno = 0
    split_at = min(_split.SPLIT_BYTES, lim.max_asset_bytes)
    run: list[tuple[int, bytes, int]] = []  # lines waiting to be a block
    size = 0
    hold = bool(blocks) and _blocks.usable(lim)  # else each line goes out as it is read

    def flush() -> Iterator[RawAsset | Block]:
        nonlocal run, size
        block = _blocks.ndjson_block(run, name, lim, blocks == "decoded") if blocks else None
        if block is not None:
            yield block
        else:
            for i, line, n in run:
                if line.count(b"{") + line.count(b"[") > lim.max_depth and (
                    max_depth(line) > lim.max_depth
                ):
                    raise too_deep(name, lim, where(index=i, line=n))
                yield RawAsset(i, line, n)
        run, size = [], 0

    while True:
        try:
            line = stream.readline(split_at + 1)  # bounded: never one unbounded line
        except Fault:  # a corrupt archive: the lines read before it come first (their
            yield from flush()  # errors too), and the fault names the asset being read
            raise
        if not line:
            break
        lineno += 1
        read = len(line)  # (whether the line goes on: before its BOM is taken off)
        if lineno == 1:  # (the file's BOM)
            line = line.removeprefix(_BOM)
        if read > split_at and not line.endswith(b"\n"):
            yield from flush()
            # A large asset: scanned as it is read, and yielded in pieces along its
            # task.tools (bounded by max_asset_bytes and max_streamed_asset_bytes).
            splitter = _split.Splitter(name, lim, index, lineno)
            splitter.feed(line)
            while not line.endswith(b"\n") and (line := stream.readline(CHUNK)):
                # The line's end and the blanks before it are not the asset's bytes (nor
                # counted in its limits, as for a line read whole; found by fuzzing).
                end = line.rstrip(_BLANKS) if line.endswith(b"\n") else line
                if end:
                    splitter.feed(end)
                yield from splitter.take()  # pieces made before the line ends
            yield from splitter.pieces()
            index += 1
            continue
        if not line.strip(_BLANKS):  # (JSON's blanks: not \x0b or \x0c, found by fuzzing)
            continue
        run.append((index, line, lineno))
        size += len(line)
        index += 1
        if not hold or size >= _blocks.BLOCK_BYTES:
            yield from flush()
    yield from flush()


def check_parsed_depth(raw: Any, index: int, limits: Limits | None = None) -> None:
    """Refuse an already-parsed asset nested deeper than ``max_depth`` (iteratively), or
    holding strings that are not valid Unicode (lone surrogates).

    Raises:
        LimitError: naming the asset's externalId and index.
    """
    lim = limits or current()
    containers = (Mapping, list, tuple)
    stack: list[tuple[Any, int]] = [(raw, 1)] if isinstance(raw, containers) else []
    while stack:
        value, depth = stack.pop()
        if depth > lim.max_depth:
            raise too_deep("<list>", lim, _where_parsed(raw, index))
        if isinstance(value, Mapping):
            _check_strings(value.keys(), raw, index)
            children: Any = value.values()
        else:
            children = value
        _check_strings(children, raw, index)
        stack.extend((c, depth + 1) for c in children if isinstance(c, containers))


def _where_parsed(raw: Any, index: int) -> str:
    ext = raw.get("externalId") if isinstance(raw, Mapping) else None
    return where(asset=ext if isinstance(ext, str) and ext.isprintable() else None, index=index)


def _check_strings(values: Any, raw: Any, index: int) -> None:
    """Refuse strings that are not valid Unicode text (lone surrogates), which a file's
    JSON decoder would have refused: they cannot be stored in the index's UTF-8 tables."""
    for v in values:
        if isinstance(v, str) and not v.isascii():
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ExportFormatError(
                    f"{_where_parsed(raw, index)}: a string holds a lone surrogate "
                    f"at position {exc.start}, not valid Unicode text"
                ) from None


def decode_raw(raw: RawAsset, name: str) -> Any:
    """Decode one asset's JSON, naming its index (and line) on failure."""
    try:
        return _loads(raw.data)
    except _DecodeErrors as exc:
        loc = where(index=raw.index, line=raw.line)
        raise ExportFormatError(f"export {name!r}, {loc}: invalid JSON ({exc})") from exc
