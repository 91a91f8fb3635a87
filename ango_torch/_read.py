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

from .errors import AssetFetchError, ExportFormatError, where

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


def loads(data: bytes | str) -> Any:
    """Decode JSON with orjson where installed, else the standard library."""
    return _loads(data)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class RawAsset:
    """One undecoded asset: its JSON bytes and where it came from."""

    index: int
    data: bytes
    line: int | None = None


class _Hashing(io.RawIOBase):
    """Wraps a binary file and hashes every byte read through it."""

    def __init__(self, f: IO[bytes], h: Any) -> None:
        self._f = f
        self._h = h

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._f.read(len(b))
        self._h.update(data)
        n = len(data)
        b[:n] = data
        return n


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
    except OSError as exc:
        raise AssetFetchError(f"export {source!r}: cannot open ({exc})") from exc


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


def iter_raw_assets(f: IO[bytes], name: str, *, hasher: Any = None) -> Iterator[RawAsset]:
    """Yield every asset of an export stream, undecoded, in file order.

    Detects ZIP (one ``.json``/``.ndjson`` member), gzip, JSON array and NDJSON by
    content, not by file name.  ``hasher`` (a hashlib object) receives every raw byte.
    """
    stream: IO[bytes] = f
    if hasher is not None:
        stream = io.BufferedReader(_Hashing(f, hasher), CHUNK)
    head = stream.peek(64)[:64] if hasattr(stream, "peek") else b""
    if not head:
        buffered = io.BufferedReader(stream, CHUNK)  # type: ignore[arg-type]
        head, stream = buffered.peek(64)[:64], buffered
    kind = _sniff(head)
    if kind == "zip":
        yield from _iter_zip(stream, name)
    elif kind == "gzip":
        with gzip.GzipFile(fileobj=stream) as g:
            yield from iter_raw_assets(io.BufferedReader(g, CHUNK), f"{name} (gzip)")  # type: ignore[arg-type]
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
        if not i.is_dir() and not i.filename.startswith(("__MACOSX/", "."))
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
        yield from iter_raw_assets(
            io.BufferedReader(inner, CHUNK), f"{name}!{members[0].filename}"  # type: ignore[arg-type]
        )


def _iter_ndjson(stream: IO[bytes], name: str) -> Iterator[RawAsset]:
    index = 0
    for lineno, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        yield RawAsset(index, line, lineno)
        index += 1


def _escaped(a: np.ndarray, first_escaped: bool) -> tuple[np.ndarray | None, bool]:
    """Mask of characters preceded by an unescaped backslash; and carry-over."""
    bs = np.flatnonzero(a == _BSLASH)
    if not len(bs) and not first_escaped:
        return None, False
    esc = np.zeros(len(a) + 1, bool)
    esc[0] = first_escaped
    for p in bs.tolist():
        if not esc[p]:
            esc[p + 1] = True
    return esc[:-1], bool(esc[-1])


def _iter_array(stream: IO[bytes], name: str) -> Iterator[RawAsset]:
    depth = 0  # nesting depth before the current chunk
    in_string = False
    escaped = False
    pending: list[bytes] = []  # bytes of the element being assembled
    started = False  # saw the top-level '['
    closed = False
    index = 0
    commas = 0
    offset = 0
    while chunk := stream.read(CHUNK):
        a = np.frombuffer(chunk, np.uint8)
        esc, escaped_next = _escaped(a, escaped)
        quotes = a == _QUOTE
        if esc is not None:
            quotes &= ~esc
        qcum = np.cumsum(quotes, dtype=np.int64)
        outside = ((qcum + in_string) & 1) == 0
        delta = _OPEN[a] * outside
        dcum = np.cumsum(delta, dtype=np.int64) + depth
        if not started:
            first = int(np.flatnonzero(delta > 0)[0]) if (delta > 0).any() else -1
            if first < 0 or a[first] != ord("["):
                raise ExportFormatError(f"export {name!r}: expected a JSON array of assets")
            started = True
        # Element starts: an opening bracket that takes the depth from 1 to 2.
        starts = np.flatnonzero((delta > 0) & (dcum == 2))
        ends = np.flatnonzero((delta < 0) & (dcum == 1))
        commas += int(np.count_nonzero((a == ord(",")) & outside & (dcum == 1)))
        if (dcum < 0).any() or ((delta < 0) & (dcum == 0)).any():
            closed = True
            # Anything other than whitespace after the closing ']' is an error.
            last = int(np.flatnonzero((delta < 0) & (dcum == 0))[0])
            if chunk[last + 1 :].strip() or stream.read(1).strip():
                raise ExportFormatError(f"export {name!r}: unexpected data after the array")
        s_i = e_i = 0
        s_list, e_list = starts.tolist(), ends.tolist()
        if pending:
            if not e_list:
                pending.append(chunk)
            else:
                end = e_list[0]
                pending.append(chunk[: end + 1])
                yield RawAsset(index, b"".join(pending))
                index += 1
                pending = []
                e_i = 1
        while s_i < len(s_list):
            start = s_list[s_i]
            if e_i < len(e_list):
                end = e_list[e_i]
                yield RawAsset(index, chunk[start : end + 1])
                index += 1
                e_i += 1
            else:
                pending = [chunk[start:]]
            s_i += 1
        depth = int(dcum[-1]) if len(dcum) else depth
        in_string = bool((int(qcum[-1]) + in_string) & 1) if len(qcum) else in_string
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
    if index and commas != index - 1 or (not index and commas):
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
