"""Stream raw assets out of an export file: JSON array, NDJSON, ZIP or gzip.

The JSON array is split into its elements by a vectorized scan (strings, escapes and
nesting depth tracked with numpy over 8 MiB chunks), so each asset is decoded on its
own and peak memory grows with one asset, not with the object tree of the file.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from .errors import AssetFetchError, ExportFormatError, missing_filesystem, where

try:  # orjson is the [fast] extra: ~3x faster than json on exports.
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
    _DecodeErrors: tuple[type[Exception], ...] = (orjson.JSONDecodeError, ValueError)
except ImportError:  # pragma: no cover - exercised when the extra is absent
    _loads = json.loads
    _DecodeErrors = (ValueError,)

__all__ = ["RawAsset", "iter_raw_assets", "loads", "open_export"]

CHUNK = 8 << 20
_QUOTE, _BSLASH = ord('"'), ord("\\")
_OPEN = np.zeros(256, np.int8)
_OPEN[[ord("{"), ord("[")]] = 1
_OPEN[[ord("}"), ord("]")]] = -1
_SPECIAL = np.zeros(256, bool)
_SPECIAL[[ord(c) for c in '{}[],"\\']] = True


def loads(data: bytes | str) -> Any:
    """Decode JSON with orjson where installed, else the standard library."""
    return _loads(data)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class RawAsset:
    """One undecoded asset: its JSON bytes and where it came from."""

    index: int
    data: bytes
    line: int | None = None


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


def file_stamp(source: str, storage_options: dict[str, Any] | None = None) -> str | None:
    """``protocol|path|size|mtime-or-ETag`` of a file, or ``None`` when it has no marker.

    Like git's stat cache: a cheap key under which a file's content hash is remembered,
    so that re-opening an unchanged multi-GB export does not hash it again.
    """
    import fsspec.core

    try:
        fs, path = fsspec.core.url_to_fs(source, **(storage_options or {}))
        info = fs.info(path)
    except (OSError, ValueError, ImportError):
        return None
    marker = next(
        (
            info[k]
            for k in ("mtime", "LastModified", "ETag", "etag", "updated", "created")
            if info.get(k)
        ),
        None,
    )
    if marker is None or info.get("size") is None:
        return None
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return f"{protocol}|{path}|{info['size']}|{marker}"


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
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] == b"[":
        return "array"
    if text[:1] == b"{":
        return "ndjson"
    if not text:
        return "empty"
    return "unknown"


def iter_raw_assets(f: IO[bytes], name: str) -> Iterator[RawAsset]:
    """Yield every asset of an export stream, undecoded, in file order.

    Detects ZIP (one ``.json``/``.ndjson`` member), gzip, JSON array and NDJSON by
    content, not by file name.
    """
    stream: Any = f
    head = stream.peek(64)[:64] if hasattr(stream, "peek") else b""
    if not head:
        buffered = io.BufferedReader(stream, CHUNK)
        head, stream = buffered.peek(64)[:64], buffered
    kind = _sniff(head)
    if kind == "zip":
        yield from _iter_zip(stream, name)
    elif kind == "gzip":
        with gzip.GzipFile(fileobj=stream) as g:
            gz: Any = io.BufferedReader(g, CHUNK)
            yield from iter_raw_assets(gz, f"{name} (gzip)")
    elif kind == "array":
        yield from _iter_array(stream, name)
    elif kind == "ndjson":
        yield from _iter_ndjson(stream, name)
    elif kind == "empty":
        raise ExportFormatError(f"export {name!r}: the file is empty, expected a JSON array")
    else:
        raise ExportFormatError(
            f"export {name!r}: not an Ango export (expected a JSON array, NDJSON or a ZIP "
            f"of one; the file starts with {head[:16]!r})"
        )


def _iter_zip(stream: IO[bytes], name: str) -> Iterator[RawAsset]:
    data = stream.read()
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ExportFormatError(f"export {name!r}: corrupt ZIP ({exc})") from exc
    members = [
        i
        for i in zf.infolist()
        if not i.is_dir()
        and not i.filename.startswith(("__MACOSX/", "."))
        and i.filename.lower().endswith((".json", ".ndjson", ".jsonl", ".json.gz"))
    ]
    if not members:
        listed = ", ".join(i.filename for i in zf.infolist()) or "nothing"
        raise ExportFormatError(
            f"export {name!r}: the ZIP holds no .json or .ndjson file (it holds {listed})"
        )
    if len(members) > 1:
        listed = ", ".join(m.filename for m in members)
        raise ExportFormatError(
            f"export {name!r}: the ZIP holds {len(members)} export files ({listed}), expected one"
        )
    with zf.open(members[0]) as inner:
        reader: Any = io.BufferedReader(inner, CHUNK)
        yield from iter_raw_assets(reader, f"{name}!{members[0].filename}")


def _iter_ndjson(stream: IO[bytes], name: str) -> Iterator[RawAsset]:
    index = 0
    for lineno, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        yield RawAsset(index, line, lineno)
        index += 1


def _escaped_quotes(
    a: np.ndarray, quotes: np.ndarray, first_escaped: bool
) -> tuple[np.ndarray, bool]:
    """Drop quotes preceded by an unescaped backslash; return them and the carry-over."""
    bs = np.flatnonzero(a == _BSLASH)
    if not len(bs) and not first_escaped:
        return quotes, False
    esc = np.zeros(len(a) + 1, bool)
    esc[0] = first_escaped
    for p in bs.tolist():  # backslashes are rare in exports: a Python loop is fine
        if not esc[p]:
            esc[p + 1] = True
    return quotes[~esc[quotes]], bool(esc[-1])


def _iter_array(stream: IO[bytes], name: str) -> Iterator[RawAsset]:
    """Split a JSON array into its elements, tracking strings and depth sparsely.

    Only the positions of quotes, brackets and commas are examined (numpy over each
    chunk): a bracket or comma is structural when an even number of unescaped quotes
    precede it, and the depth is the running sum of the structural brackets.
    """
    depth = 0
    in_string = False
    escaped = False
    pending: list[bytes] = []
    started = closed = False
    index = commas = offset = 0
    while chunk := stream.read(CHUNK):
        a = np.frombuffer(chunk, np.uint8)
        # One gather finds every quote, backslash, bracket and comma of the chunk.
        special = np.flatnonzero(_SPECIAL[a])
        kinds = a[special]
        quotes = special[kinds == _QUOTE]
        if escaped or (kinds == _BSLASH).any():
            quotes, escaped_next = _escaped_quotes(a, quotes, escaped)
        else:
            escaped_next = False
        marks = special[(kinds != _QUOTE) & (kinds != _BSLASH)]
        # Quotes before each mark (plus the carried string state) → inside a string?
        outside = ((np.searchsorted(quotes, marks) + in_string) & 1) == 0
        marks = marks[outside]
        step = _OPEN[a[marks]]
        dcum = np.cumsum(step, dtype=np.int64) + depth
        if not started:
            if not len(marks) or a[marks[0]] != ord("["):
                raise ExportFormatError(f"export {name!r}: expected a JSON array of assets")
            started = True
        is_open, is_close = step > 0, step < 0
        starts = marks[is_open & (dcum == 2)].tolist()
        ends = marks[is_close & (dcum == 1)].tolist()
        commas += int(np.count_nonzero((step == 0) & (dcum == 1)))
        top_close = marks[is_close & (dcum <= 0)]
        if len(top_close):
            closed = True
            last = int(top_close[0])
            if chunk[last + 1 :].strip() or stream.read(1).strip():
                raise ExportFormatError(f"export {name!r}: unexpected data after the array")
        e_i = 0
        if pending:
            if not ends:
                pending.append(chunk)
            else:
                pending.append(chunk[: ends[0] + 1])
                yield RawAsset(index, b"".join(pending))
                index += 1
                pending = []
                e_i = 1
        for start in starts:
            if e_i < len(ends):
                yield RawAsset(index, chunk[start : ends[e_i] + 1])
                index += 1
                e_i += 1
            else:
                pending = [chunk[start:]]
        if len(dcum):
            depth = int(dcum[-1])
        in_string = bool((len(quotes) + in_string) & 1)
        escaped = escaped_next
        offset += len(chunk)
        if closed:
            break
    if not started:
        raise ExportFormatError(f"export {name!r}: the file is empty, expected a JSON array")
    if not closed:
        raise ExportFormatError(
            f"export {name!r}: truncated: the file ends inside the JSON array "
            f"(after {index} complete assets, at byte {offset})"
        )
    if (index and commas != index - 1) or (not index and commas):
        raise ExportFormatError(
            f"export {name!r}: the JSON array holds {commas + 1} elements but only {index} "
            "are objects; every asset must be a JSON object"
        )


def decode_raw(raw: RawAsset, name: str) -> Any:
    """Decode one asset's JSON, naming its index (and line) on failure."""
    try:
        return _loads(raw.data)
    except _DecodeErrors as exc:
        loc = where(index=raw.index, line=raw.line)
        raise ExportFormatError(f"export {name!r}, {loc}: invalid JSON ({exc})") from exc
