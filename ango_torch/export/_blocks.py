"""A JSON array export cut into blocks of whole assets, without scanning every byte.

The numpy scan (:mod:`._scan`) finds where each asset ends by looking at every quote,
bracket and comma of the file: on a polygon export that is a third of its bytes, and it
was ~30% of indexing (issue 14).  Here the array is instead cut into blocks of about
:data:`BLOCK_BYTES` of whole assets, at the separators between two assets, found by a
regular expression: ``}``, a comma, then ``{`` and the first asset's first key (e.g.
``}, {"asset"``).  A candidate may be no separator at all (the same bytes inside a
string, or between two objects nested in an asset); each block is therefore checked by
decoding it, in C, as a JSON list of raw values (msgspec): ``[`` + the bytes from an
asset's first ``{`` up to a candidate's ``}`` + ``]`` is valid JSON only when that ``}``
closes an asset (one inside a string leaves the string open, one inside an asset leaves
the asset open).  A wrong candidate can only make a block invalid, never wrong.
:func:`._typed.block_columns` then decodes the whole block at once.

The scan's limits hold: a block is at most ``min(SPLIT_BYTES, max_asset_bytes)``, so
every asset in it is too; and its nesting is measured on its bytes (:func:`deepest`),
before anything decodes it, so a block with an asset beyond ``max_depth`` is never
made (the scan then reaches that asset and refuses it).  Measuring what was decoded
would not do: a duplicated key's first value is dropped by the decoders, however deep
(found by review, issue 14).  Anything else (no separator within that size: a large
asset; a block that does not decode; an element that is not an object, or one nested
too deep; an unusual end of the array) hands the
rest of the file, from the asset where the doubt starts, to the numpy scan, so every
error and its message are the scan's.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

import numpy as np

from ..limits import Limits
from . import _split, _typed
from ._bytescan import _BLANKS, _OPEN, _QUOTE, RawAsset, json_list
from ._scan import iter_array, max_depth

__all__ = ["BLOCK_BYTES", "Block", "deepest", "iter_blocks", "ndjson_block", "usable"]

BLOCK_BYTES = 1 << 20
"""Bytes read at a time, so about the size of a block.  Measured on a 10k-asset mixed
export (``benchmarks/index.py``): 1 MiB blocks decode ~2x faster than one call per
asset, and as fast as 8 MiB ones, with an eighth of the temporaries."""

MIN_DEPTH = 16
"""Below this ``max_depth`` every asset goes through the scan (the typed schema alone
nests 13 levels)."""

_WS = rb"[ \t\r\n]*"
_HEAD = re.compile(rb"(?:\xef\xbb\xbf)?" + _WS + rb"\[" + _WS)
_FIRST_KEY = re.compile(rb"\{" + _WS + rb'"([A-Za-z0-9_]{1,64})"')

try:
    import msgspec
except ImportError:  # pragma: no cover - without the [fast] extra
    _ELEMENTS: Any = None
else:
    _ELEMENTS = msgspec.json.Decoder(list[msgspec.Raw]).decode

    class _Object(msgspec.Struct, gc=False):
        """Any JSON object (its keys are skipped, in C)."""

    _OBJECTS = msgspec.json.Decoder(list[_Object]).decode


@dataclass(frozen=True, slots=True)
class Block:
    """A run of whole assets of an array export: ``data`` is ``[``, their bytes as in the
    file, ``]``; ``index`` is the first one's.  Checked to be a JSON list of objects."""

    index: int
    data: bytes
    name: str
    limits: Limits
    decoded: Any = None
    """Its assets decoded by :func:`._typed.decode_block`, where the reader did."""
    typed: bool = True
    """Whether typed decoding may take it (``False``: its decode already failed)."""
    count: int = 0
    """How many assets it holds."""
    lines: tuple[int, ...] | None = None
    """For NDJSON: each asset's line number (1-based)."""
    # What chunks of raw assets are grouped by (:func:`._typed.chunks`): whole assets.
    part: int = 0
    last: bool = True
    checked: bool = False
    """Whether its text was read whole as typed decoding's check reads it (simdjson:
    :func:`._typed.checked_objects`), so that :func:`._typed.block_columns` need not."""

    def assets(self) -> list[RawAsset]:
        """Its assets one by one (for the parser, where typed decoding gives up)."""
        lines = self.lines or ()
        return [
            RawAsset(self.index + k, bytes(memoryview(e)), lines[k] if lines else None)
            for k, e in enumerate(_ELEMENTS(self.data))
        ]


def ndjson_block(
    lines: list[tuple[int, bytes, int]], name: str, lim: Limits, decode: bool
) -> Block | None:
    """NDJSON lines ``(index, bytes, line number)`` (consecutive assets, none blank or
    large) as one block, or ``None`` where they cannot be one (then each line is read on
    its own, as before).

    They are one block when ``[`` + the lines joined by commas + ``]`` is a JSON list of
    exactly one object per line, each as long as its line without its blanks (so no
    line holds two assets or part of one: the file's lines are checked, not only their
    join), and none nested beyond ``max_depth`` (on the bytes, :func:`deepest`).
    """
    if not usable(lim) or not lines:
        return None
    data = json_list([line for _, line, _ in lines])
    if deepest(data) > lim.max_depth + 1:
        return None
    try:
        elements = _ELEMENTS(data)
    except (msgspec.DecodeError, RecursionError):
        return None
    if len(elements) != len(lines) or any(
        len(e) != len(line.strip(_BLANKS)) or memoryview(e)[0] != _BRACE
        for e, (_, line, _) in zip(elements, lines, strict=True)
    ):
        return None
    decoded = _typed.decode_block(data) if decode else None
    first, numbers = lines[0][0], tuple(n for _, _, n in lines)
    typed = decoded is not None or not decode
    return Block(first, data, name, lim, decoded, typed, len(lines), numbers)


def usable(lim: Limits) -> bool:
    """Whether blocks can be made under ``lim`` (msgspec installed, ``max_depth`` at
    least :data:`MIN_DEPTH`)."""
    return _ELEMENTS is not None and _typed.AVAILABLE and lim.max_depth >= MIN_DEPTH


def _separators(
    buf: bytes, searched: int, sep: re.Pattern[bytes], literal: bytes
) -> list[tuple[int, int]]:
    """The last separators in ``buf[searched:]``: (its ``}``, the next asset's ``{``),
    in order; by ``rfind`` of ``literal`` where it is found, else by ``sep``."""
    if literal:
        at = buf.rfind(literal, searched)
        if at >= 0:
            out = [at]
            for _ in range(2):  # up to two candidates before it
                at = buf.rfind(literal, searched, at)
                if at < 0:
                    break
                out.append(at)
            return [(c, c + literal.index(b"{")) for c in reversed(out)]
    return [(m.start(), m.start(1)) for m in sep.finditer(buf, searched)]


class _Prefixed:
    """``prefix`` then the rest of ``stream``, as one readable stream."""

    def __init__(self, prefix: bytes, stream: IO[bytes]) -> None:
        self.prefix, self.stream = prefix, stream

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all with ``-1``); the stream is read to fill them, so the
        scan reads as far as it would have (and trips the archive's limits as soon)."""
        if not self.prefix:
            return self.stream.read(n)
        out, self.prefix = (self.prefix, b"") if n < 0 or n >= len(self.prefix) else (
            self.prefix[:n], self.prefix[n:])  # fmt: skip
        if n < 0:
            return out + self.stream.read()
        return out + self.stream.read(n - len(out)) if len(out) < n else out


_BRACE = ord("{")
_KEEP = b'{}[]"'
_NOT_KEPT = bytes(c for c in range(256) if c not in _KEEP)


def deepest(data: bytes) -> int:
    """The nesting depth of a JSON text (``[]``: 1), strings and escapes respected.

    Without a backslash, its brackets and quotes are kept (``bytes.translate``, in C),
    then every ``""`` dropped (removing two adjacent quotes changes no other bracket's
    place inside or outside a string), and the depth is the running sum of the brackets
    outside strings (numpy over what is left: ~6% of a typical export's bytes).  With
    backslashes, the scan's :func:`._scan.max_depth`.  ~3-4x faster than the latter on
    the benchmark's mixed export.
    """
    if b"\\" in data:
        return max_depth(data)
    kept = data.translate(None, _NOT_KEPT).replace(b'""', b"")
    a = np.frombuffer(kept, np.uint8)
    if not len(a):
        return 0
    step = _OPEN[a]  # (a quote's step is 0)
    if b'"' in kept:  # a string holding brackets (else no quote is left: ~2x faster)
        step[(np.cumsum(a == _QUOTE, dtype=np.uint8) & 1).view(bool)] = 0  # inside strings
    return int(np.cumsum(step, dtype=np.int32 if len(a) < 2**31 else np.int64).max())


def _block(index: int, data: bytes, name: str, lim: Limits, decode: bool) -> Block | None:
    """A block of ``data`` where it is a JSON list of objects none of which nests beyond
    ``max_depth``, else ``None``."""
    depth = deepest(data)
    if depth > lim.max_depth + 1:  # (the list is a level)
        return None
    if decode:
        decoded = _typed.decode_block(data)
        if decoded is not None:
            return Block(index, data, name, lim, decoded, count=len(decoded))
    n, whole = _checked(data, depth)
    return Block(index, data, name, lim, typed=not decode, count=n, checked=whole) if n else None


CHECK_WHOLE_MAX = 4 << 20
"""Larger blocks (a large asset's) are checked by msgspec only: simdjson's parser keeps
buffers of a few times the largest text it parsed for the life of the thread (a 39 MiB
block kept ~180 MiB in the reader's process; found by review)."""


def _checked(data: bytes, depth: int) -> tuple[int, bool]:
    """How many objects the list ``data`` (nesting ``depth`` levels) holds, or ``0``
    where it is not a JSON list of objects (or nests too deep for msgspec); and whether
    its text was read whole as the typed path's check reads it
    (:func:`._typed.checked_objects`, with simdjson).

    simdjson only where msgspec, which splits the block into its assets where typed
    decoding gives up (:meth:`Block.assets`), surely has the stack for it: it counts
    its nesting against Python's recursion limit (3.11), and a lowered limit that it
    would hit makes this a job for the scan, as before (found by review).
    """
    if len(data) <= CHECK_WHOLE_MAX and depth + 500 <= sys.getrecursionlimit():
        n = _typed.checked_objects(data)
        if n is not None:
            return n, True
    try:
        return len(_OBJECTS(data)), False
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return 0, False


def iter_blocks(
    stream: IO[bytes], name: str, lim: Limits, *, decode: bool = False
) -> Iterator[Block | RawAsset]:
    """The assets of a JSON array export as :class:`Block`\\ s, and as the scan's
    :class:`RawAsset`\\ s from wherever a block cannot be made (see the module's text).

    ``decode``: decode each block as it is cut (:func:`._typed.decode_block`, which
    then is its check too): for an index built in this process, where it saves a pass.

    Without msgspec (the ``fast`` extra), or with ``max_depth`` below
    :data:`MIN_DEPTH`, the whole file goes through the scan.
    """
    if not usable(lim):
        yield from iter_array(stream, name, lim)
        return
    cap = min(_split.SPLIT_BYTES, lim.max_asset_bytes)
    buf = stream.read(BLOCK_BYTES)
    head = _HEAD.match(buf)
    key = _FIRST_KEY.match(buf, head.end()) if head else None
    if head is None or key is None:  # not an array of objects, or not plainly so
        yield from iter_array(cast("IO[bytes]", _Prefixed(buf, stream)), name, lim)
        return
    sep = re.compile(rb"\}" + _WS + rb"," + _WS + rb"(\{)" + _WS + b'"' + key.group(1) + b'"')
    literal = b""  # the first separator's bytes: found again by rfind, ~10x faster
    start = head.end()  # the first byte of the next asset in buf
    offset = 0  # of buf in the file
    index = 0
    searched = start  # no separator starts in buf[start:searched]
    while more := stream.read(BLOCK_BYTES):
        buf += more
        cuts = _separators(buf, searched, sep, literal)
        if cuts and not literal:
            close, cut = cuts[0]
            literal = buf[close : sep.match(buf, close).end()]  # type: ignore[union-attr]
        if not cuts:
            if len(buf) - start > cap:
                break  # a large asset: the scan reads it in pieces
            # A separator starts at a "}": any starting before the last one is whole.
            searched = max(searched, buf.rfind(b"}", searched))
            continue
        for close, cut in reversed(cuts[-3:]):  # the last candidate, else 2 before it
            data = b"".join((b"[", memoryview(buf)[start : close + 1], b"]"))  # one copy
            block = _block(index, data, name, lim, decode) if len(data) <= cap else None
            if block is not None:
                yield block
                index += block.count
                buf, offset, start = buf[cut:], offset + cut, 0
                searched = 0
                break
        else:
            break  # no candidate makes a block: the scan takes over
    else:  # the end of the file: the last assets and "]"
        tail = b"".join((b"[", memoryview(buf)[start:]))
        block = _block(index, tail, name, lim, decode) if len(tail) <= cap else None
        if block is not None:
            yield block
            return
    rest = cast("IO[bytes]", _Prefixed(b"[" + buf[start:], stream))
    yield from iter_array(rest, name, lim, first_index=index, first_offset=offset + start - 1)
