"""Stream raw assets out of an export file: JSON array, NDJSON, ZIP or gzip.

The JSON array is split into its elements by a vectorized scan (strings, escapes and
nesting depth tracked with numpy over 8 MiB chunks), so each asset is decoded on its
own and peak memory grows with one asset, not with the object tree of the file.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from ..errors import (
    ArchiveError,
    AssetFetchError,
    ExportFormatError,
    LimitError,
    missing_filesystem,
    where,
)
from ..limits import Limits, current, hint
from ._archive import CHUNK, Fault, open_gzip, open_zip_member

try:  # orjson is the [fast] extra: ~3x faster than json on exports.
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
    _DecodeErrors: tuple[type[Exception], ...] = (orjson.JSONDecodeError, ValueError)
except ImportError:  # pragma: no cover - exercised when the extra is absent
    _loads = json.loads
    _DecodeErrors = (ValueError,)

__all__ = ["RawAsset", "check_parsed_depth", "iter_raw_assets", "loads", "open_export"]

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


def iter_raw_assets(
    f: IO[bytes], name: str, limits: Limits | None = None, *, _layers: tuple[str, ...] = ()
) -> Iterator[RawAsset]:
    """Yield every asset of an export stream, undecoded, in file order.

    Detects ZIP (one ``.json``/``.ndjson``/``.json.gz`` member), gzip, JSON array and
    NDJSON by content, not by file name.  Enforces ``limits`` (default: the ones in
    force, :func:`ango_torch.limits.current`) on the bytes, before anything is decoded.

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
            yield from _located(iter_raw_assets(reader, inner, lim, _layers=layers), inner)
    elif kind == "array":
        yield from _iter_array(stream, name, lim)
    elif kind == "ndjson":
        yield from _iter_ndjson(stream, name, lim)
    elif kind == "empty":
        raise ExportFormatError(f"export {name!r}: the file is empty, expected a JSON array")
    else:
        raise ExportFormatError(
            f"export {name!r}: not an Ango export (expected a JSON array, NDJSON or a ZIP "
            f"of one; the file starts with {head[:16]!r})"
        )


def _located(assets: Iterator[RawAsset], name: str) -> Iterator[RawAsset]:
    """Re-raise a decompression fault naming the asset being read when it happened."""
    following = 0
    try:
        for raw in assets:
            following = raw.index + 1
            yield raw
    except Fault as fault:
        loc = where(index=following)
        raise fault.cls(f"export {name!r}, {loc}: {fault.text}") from fault.__cause__


def _too_large(name: str, lim: Limits, index: int, line: int | None = None) -> LimitError:
    return LimitError(
        f"export {name!r}, {where(index=index, line=line)}: the asset's JSON is larger than "
        f"max_asset_bytes={lim.max_asset_bytes}; {hint('max_asset_bytes')}"
    )


def _too_deep(name: str, lim: Limits, loc: str) -> LimitError:
    return LimitError(
        f"export {name!r}, {loc}: JSON nested more than {lim.max_depth} levels deep "
        f"(max_depth); {hint('max_depth')}"
    )


def _iter_ndjson(stream: IO[bytes], name: str, lim: Limits) -> Iterator[RawAsset]:
    index = lineno = 0
    cap = lim.max_asset_bytes
    while line := stream.readline(cap + 1):  # bounded: never one unbounded line
        lineno += 1
        if len(line) > cap and not line.endswith(b"\n"):
            raise _too_large(name, lim, index, lineno)
        if not line.strip():
            continue
        if line.count(b"{") + line.count(b"[") > lim.max_depth and (
            _max_depth(line) > lim.max_depth
        ):
            raise _too_deep(name, lim, where(index=index, line=lineno))
        yield RawAsset(index, line, lineno)
        index += 1


def _max_depth(data: bytes) -> int:
    """Deepest nesting of objects/arrays in one JSON text (strings and escapes skipped)."""
    a = np.frombuffer(data, np.uint8)
    special = np.flatnonzero(_SPECIAL[a])
    kinds = a[special]
    quotes = special[kinds == _QUOTE]
    if (kinds == _BSLASH).any():
        quotes, _ = _escaped_quotes(a, quotes, False)
    marks = special[(kinds != _QUOTE) & (kinds != _BSLASH)]
    marks = marks[(np.searchsorted(quotes, marks) & 1) == 0]
    if not len(marks):
        return 0
    return int(np.cumsum(_OPEN[a[marks]], dtype=np.int64).max())


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
            raise _too_deep("<list>", lim, _where_parsed(raw, index))
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


# Events at the array's top level, to find an element that is not an object.
_START, _ELEM, _CLOSE, _COMMA, _END = range(5)


def _iter_array(stream: IO[bytes], name: str, lim: Limits) -> Iterator[RawAsset]:
    """Split a JSON array into its elements, tracking strings and depth sparsely.

    Only the positions of quotes, brackets and commas are examined (numpy over each
    chunk): a bracket or comma is structural when an even number of unescaped quotes
    precede it, and the depth is the running sum of the structural brackets.  The
    depth limit and the size limit of one element are checked here, on the bytes.
    """
    depth = 0
    in_string = False
    escaped = False
    pending: list[bytes] = []
    pending_bytes = 0
    started = closed = False
    index = commas = offset = 0
    last_event, blank = _START, True  # blank: nothing yet between '[' and the 1st event
    cap, max_level = lim.max_asset_bytes, lim.max_depth + 1  # the array is level 1
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
        body = 0  # where this chunk's part of the array body starts
        if not started:
            if not len(marks) or a[marks[0]] != ord("["):
                raise ExportFormatError(f"export {name!r}: expected a JSON array of assets")
            started, body = True, int(marks[0]) + 1
        is_open, is_close = step > 0, step < 0
        starts = marks[is_open & (dcum == 2)].tolist()
        ends = marks[is_close & (dcum == 1)].tolist()
        if len(dcum) and dcum.max() > max_level:
            at = int(marks[np.argmax(dcum > max_level)])
            j = int(np.searchsorted(np.asarray(starts, np.int64), at))
            bad = index + j - (0 if pending else 1)
            raise _too_deep(name, lim, where(index=bad))
        top = (step == 0) & (dcum == 1)
        commas_before = commas
        commas += int(np.count_nonzero(top))
        top_close = marks[is_close & (dcum <= 0)]
        if len(top_close):
            closed = True
            last = int(top_close[0])
            if chunk[last + 1 :].strip() or stream.read(1).strip():
                raise ExportFormatError(f"export {name!r}: unexpected data after the array")
        last_event, blank = _check_elements(
            name, chunk, body, marks, step, dcum, top, last_event, blank, commas_before
        )
        e_i = 0
        if pending:
            if not ends:
                pending.append(chunk)
                pending_bytes += len(chunk)
                if pending_bytes > cap:
                    raise _too_large(name, lim, index)
            else:
                pending.append(chunk[: ends[0] + 1])
                if pending_bytes + ends[0] + 1 > cap:
                    raise _too_large(name, lim, index)
                yield RawAsset(index, b"".join(pending))
                index += 1
                pending, pending_bytes = [], 0
                e_i = 1
        for start in starts:
            if e_i < len(ends):
                if ends[e_i] + 1 - start > cap:
                    raise _too_large(name, lim, index)
                yield RawAsset(index, chunk[start : ends[e_i] + 1])
                index += 1
                e_i += 1
            else:
                pending = [chunk[start:]]
                pending_bytes = len(chunk) - start
                if pending_bytes > cap:
                    raise _too_large(name, lim, index)
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


def _check_elements(
    name: str,
    chunk: bytes,
    body: int,
    marks: np.ndarray,
    step: np.ndarray,
    dcum: np.ndarray,
    top: np.ndarray,
    last_event: int,
    blank: bool,
    commas_before: int,
) -> tuple[int, bool]:
    """Find a top-level element that is not an object (``[1]``, ``[{…}, null]``).

    Between two commas, after ``[`` or before ``]`` there must be an element that
    opens with a bracket; returns the last top-level event and whether the array body
    is still blank, both carried to the next chunk.
    """
    events = np.full(len(marks), -1, np.int8)
    events[(step > 0) & (dcum == 2)] = _ELEM
    events[(step < 0) & (dcum == 1)] = _CLOSE
    events[top] = _COMMA
    events[(step < 0) & (dcum == 0)] = _END
    keep = events >= 0
    ev, pos = events[keep], marks[keep]
    if not len(ev):
        if last_event == _START and chunk[body:].strip():
            blank = False
        return last_event, blank
    prev = np.concatenate([np.array([last_event], np.int8), ev[:-1]])
    bad = ((ev == _COMMA) & ((prev == _COMMA) | (prev == _START))) | (
        (ev == _END) & (prev == _COMMA)
    )
    if last_event == _START and ev[0] == _END and (not blank or chunk[body : pos[0]].strip()):
        bad[0] = True
    if bad.any():
        k = int(np.argmax(bad))
        element = commas_before + int(np.count_nonzero(ev[:k] == _COMMA))
        raise ExportFormatError(
            f"export {name!r}: the JSON array's element #{element} is not an object; every "
            "asset must be a JSON object"
        )
    return int(ev[-1]), blank


def decode_raw(raw: RawAsset, name: str) -> Any:
    """Decode one asset's JSON, naming its index (and line) on failure."""
    try:
        return _loads(raw.data)
    except _DecodeErrors as exc:
        loc = where(index=raw.index, line=raw.line)
        raise ExportFormatError(f"export {name!r}, {loc}: invalid JSON ({exc})") from exc
