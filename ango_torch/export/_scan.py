"""The vectorized scan that splits a JSON array export into its elements.

Strings, escapes and nesting depth are tracked with numpy over each chunk, so each
asset is decoded on its own and peak memory grows with one asset, not with the object
tree of the file; the size and depth limits are checked on the bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

import numpy as np
import numpy.typing as npt

from ..errors import ExportFormatError, where
from ..limits import Limits
from . import _split
from ._archive import CHUNK
from ._bytescan import (
    _BLANKS,
    _BOM,
    _BSLASH,
    _OPEN,
    _QUOTE,
    _SPECIAL,
    RawAsset,
    _escaped_quotes,
    too_deep,
    too_large,
)

__all__ = ["RawAsset", "iter_array", "max_depth", "too_deep", "too_large"]


def max_depth(data: bytes) -> int:
    """Deepest nesting of objects/arrays in one JSON text (strings and escapes skipped)."""
    a = np.frombuffer(data, np.uint8)
    special = np.flatnonzero(_SPECIAL[a])
    kinds = a[special]
    quotes = special[kinds == _QUOTE]
    if (kinds == _BSLASH).any():
        quotes, _ = _escaped_quotes(a, quotes, False)
    marks = _structural(special, kinds, quotes, False)
    if not len(marks):
        return 0
    return int(np.cumsum(_OPEN[a[marks]], dtype=np.int64).max())


def _structural(
    special: np.ndarray, kinds: np.ndarray, quotes: np.ndarray, in_string: bool
) -> np.ndarray:
    """The brackets and commas among ``special`` that are outside strings.

    A mark is outside a string when an even number of unescaped ``quotes`` (plus the
    carried ``in_string``) precede it: a running parity over the special characters
    (``uint8`` cumsum, wrapping keeps bit 0), measured ~2x faster than a searchsorted of
    every mark among the quotes on a polygon-heavy export (issue 14).
    """
    is_quote = kinds == _QUOTE
    if len(quotes) != int(np.count_nonzero(is_quote)):  # escaped quotes do not count
        is_quote[is_quote] = np.isin(special[is_quote], quotes, assume_unique=True)
    parity = np.cumsum(is_quote, dtype=np.uint8)
    if in_string:
        parity += 1
    keep: np.ndarray = ((parity & 1) == 0) & (kinds != _QUOTE) & (kinds != _BSLASH)
    out: np.ndarray = special[keep]
    return out


# Events at the array's top level, to find an element that is not an object.
_START, _ELEM, _CLOSE, _COMMA, _END = range(5)


def iter_array(
    stream: IO[bytes], name: str, lim: Limits, first_index: int = 0, first_offset: int = 0
) -> Iterator[RawAsset]:
    """Split a JSON array into its elements, tracking strings and depth sparsely.

    Only the positions of quotes, brackets and commas are examined (numpy over each
    chunk): a bracket or comma is structural when an even number of unescaped quotes
    precede it, and the depth is the running sum of the structural brackets.  The
    depth limit and the size limit of one element are checked here, on the bytes.

    ``first_index``/``first_offset``: where ``stream`` takes over from :mod:`._blocks`
    (``"["`` and the rest of the array from the asset numbered ``first_index``, whose
    ``"["`` stands for the file's byte ``first_offset``): assets and elements are
    numbered, and byte offsets given, as in the whole file.
    """
    depth = 0
    in_string = False
    escaped = False
    splitter: _split.Splitter | None = None  # the element that goes on past a chunk
    split_at = min(_split.SPLIT_BYTES, lim.max_asset_bytes)

    def element(data: bytes) -> Iterator[RawAsset]:
        """One element, whole or (when large) in pieces along its task.tools."""
        if len(data) <= split_at:
            yield RawAsset(index, data)
            return
        sp = _split.Splitter(name, lim, index)
        sp.feed(data)
        yield from sp.pieces()

    started = closed = False
    index = commas = first_index
    offset = first_offset
    last_event = _START
    pending: tuple[int, bytes] | None = None  # the first byte since it that is not blank
    max_level = lim.max_depth + 1  # the array is level 1
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
        marks = _structural(special, kinds, quotes, in_string)
        step = _OPEN[a[marks]]
        dcum = np.cumsum(step, dtype=np.int64) + depth
        body = 0  # where this chunk's part of the array body starts
        if not started:  # blanks (after one BOM at the file's start), then "["
            lead = 3 if offset == 0 and chunk.startswith(_BOM) else 0
            first = len(chunk) - len(chunk[lead:].lstrip(_BLANKS))
            if first == len(chunk):
                offset += len(chunk)
                continue
            if chunk[first] != ord("["):
                raise ExportFormatError(f"export {name!r}: expected a JSON array of assets")
            started, body = True, first + 1
        is_open, is_close = step > 0, step < 0
        starts = marks[is_open & (dcum == 2)].tolist()
        ends = marks[is_close & (dcum == 1)].tolist()
        # A failure found in this chunk, at byte ``stop``: the elements that end before
        # it are handed out first, so that the first error is the file's first (an
        # invalid asset before a too-deep one in the same chunk; found by fuzzing, #14).
        failures: list[tuple[int, ExportFormatError]] = []
        if len(dcum) and dcum.max() > max_level:
            at = int(marks[np.argmax(dcum > max_level)])
            j = int(np.searchsorted(np.asarray(starts, np.int64), at))
            bad = index + j - (0 if splitter else 1)
            failures.append((at, too_deep(name, lim, where(index=bad))))
        top = (step == 0) & (dcum == 1)
        commas_before = commas
        commas += int(np.count_nonzero(top))
        top_close = marks[is_close & (dcum <= 0)]
        if len(top_close):
            closed = True
            last = int(top_close[0])
            if chunk[last] != ord("]"):
                failures.append(
                    (
                        last,
                        ExportFormatError(
                            f"export {name!r}: invalid JSON: '}}' where ']' closes the array "
                            f"(byte {offset + last})"
                        ),
                    )
                )
            elif not _blank(chunk[last + 1 :]) or not _blank_to_the_end(stream):
                failures.append(
                    (
                        last + 1,
                        ExportFormatError(f"export {name!r}: unexpected data after the array"),
                    )
                )
        last_event, pending, not_object = _check_elements(
            name, chunk, body, marks, step, dcum, top, last_event, pending, commas_before, offset
        )
        if not_object is not None:
            failures.append(not_object)
        stop, failure = min(failures, key=lambda f: f[0]) if failures else (len(chunk), None)
        e_i = 0
        if splitter is not None:
            if ends and ends[0] < stop:  # the element's last bytes
                k = int(np.searchsorted(marks, ends[0], "right"))
                splitter.feed(chunk[: ends[0] + 1], (marks[:k], step[:k], dcum[:k] - 1))
                yield from splitter.pieces()
                index += 1
                splitter, e_i = None, 1
            elif failure is None:
                splitter.feed(chunk, (marks, step, dcum - 1))
                yield from splitter.take()  # pieces made before the element ends
        for start in starts if splitter is None else ():
            if e_i < len(ends) and ends[e_i] < stop:
                yield from element(chunk[start : ends[e_i] + 1])
                index += 1
                e_i += 1
            elif failure is None:  # an element that goes on in the next chunk
                k = int(np.searchsorted(marks, start))
                splitter = _split.Splitter(name, lim, index)
                splitter.feed(chunk[start:], (marks[k:] - start, step[k:], dcum[k:] - 1))
                yield from splitter.take()
            else:
                break
        if failure is not None:
            raise failure
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


def _blank(data: bytes) -> bool:
    """Whether ``data`` is JSON whitespace only."""
    return not data.strip(_BLANKS)


def _blank_to_the_end(stream: IO[bytes]) -> bool:
    """Whether the rest of ``stream`` is blank (read a chunk at a time: blanks then
    data across a chunk's end were taken for the end, found by review, issue 14)."""
    while more := stream.read(CHUNK):
        if not _blank(more):
            return False
    return True


def _check_elements(
    name: str,
    chunk: bytes,
    body: int,
    marks: np.ndarray,
    step: np.ndarray,
    dcum: np.ndarray,
    top: np.ndarray,
    last_event: int,
    pending: tuple[int, bytes] | None,
    commas_before: int,
    offset: int,
) -> tuple[int, tuple[int, bytes] | None, tuple[int, ExportFormatError] | None]:
    """Find a top-level element that is not an object (``[1]``, ``[{…}, null]``), or
    data between the elements (``[{…} x]``, ``[{…} {…}]``).

    Between two commas, after ``[`` or before ``]`` there must be an element that
    opens with a bracket, and only JSON whitespace around it.  Returns the last
    top-level event and the first byte after it that is not blank (its offset in the
    file, and the byte), both carried to the next chunk, and the first failure's error
    with the byte of ``chunk`` where it is found (for the caller to raise once the
    elements before are handed out).  ``offset``: the chunk's in the file.  Each
    message names bytes of the file, so it does not depend on where the reads fall.
    """
    events = np.full(len(marks), -1, np.int8)
    events[(step > 0) & (dcum == 2)] = _ELEM
    events[(step < 0) & (dcum == 1)] = _CLOSE
    events[top] = _COMMA
    events[(step < 0) & (dcum == 0)] = _END
    keep = events >= 0
    ev, pos = events[keep], marks[keep]
    prev = np.concatenate([np.array([last_event], np.int8), ev])
    nxt = np.concatenate([ev, np.array([-1], np.int8)])  # (-1: the chunk's end)
    # The gaps before each event and after the last, [starts[k], ends[k]): only those
    # outside the elements (and before the array's end) are measured.
    starts = np.concatenate([[body], pos + 1]).astype(np.int64)
    ends = np.concatenate([pos, [len(chunk)]]).astype(np.int64)
    outside = (prev != _ELEM) & (prev != _END)
    found = _first_data(chunk, starts, np.where(outside, ends, starts))
    # The first byte of data in each gap: its offset in the file (-1: none).
    data = np.where(found >= 0, found + offset, -1)
    if pending is not None:  # (the first gap began in an earlier chunk)
        data[0] = pending[0]

    def byte(k: int) -> bytes:
        if k == 0 and pending is not None:
            return pending[1]
        return chunk[int(found[k]) : int(found[k]) + 1]

    slot = (prev == _START) | (prev == _COMMA)  # an element's place
    failures: list[tuple[int, ExportFormatError]] = []
    # Where the element's place holds no bracket: a non-object (or no) element.
    bad = slot & (nxt == _COMMA) | (prev == _COMMA) & (nxt == _END)
    bad |= (prev == _START) & (nxt == _END) & (data >= 0)  # [x]
    if bad.any():
        k = int(np.argmax(bad))
        element = commas_before + int(np.count_nonzero(ev[:k] == _COMMA))
        error = ExportFormatError(
            f"export {name!r}: the JSON array's element #{element} is not an object; every "
            "asset must be a JSON object"
        )
        failures.append((int(pos[k]), error))
    # Otherwise only blanks lie outside the elements: before one, and after one (data
    # after an element is refused at once, whatever follows).
    stray = (data >= 0) & (slot & (nxt == _ELEM) | (prev == _CLOSE))
    if stray.any():
        k = int(np.argmax(stray))
        element = commas_before + int(np.count_nonzero(ev[:k] == _COMMA))
        at = int(data[k])
        error = ExportFormatError(
            f"export {name!r}: invalid JSON: unexpected {byte(k)!r} between the array's "
            f"elements, by element #{element} (byte {at})"
        )
        failures.append((max(at - offset, 0), error))
    joined = np.flatnonzero((prev == _CLOSE) & (nxt == _ELEM) & (data < 0))
    if len(joined):  # no comma between two elements
        k = int(joined[0])
        element = commas_before + int(np.count_nonzero(ev[:k] == _COMMA))
        error = ExportFormatError(
            f"export {name!r}: invalid JSON: no comma between the array's elements "
            f"#{element} and #{element + 1} (byte {offset + int(pos[k])})"
        )
        failures.append((int(pos[k]), error))
    if len(ev):
        last_event = int(ev[-1])
    inside = last_event in (_ELEM, _END)  # (inside an element, or after the array)
    pending = None if data[-1] < 0 or inside else (int(data[-1]), byte(len(data) - 1))
    failure = min(failures, key=lambda f: f[0]) if failures else None
    return last_event, pending, failure


_NOT_BLANK = np.ones(256, bool)
_NOT_BLANK[list(_BLANKS)] = False


def _first_data(
    chunk: bytes, lo: npt.NDArray[np.int64], hi: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """For each byte range ``[lo, hi)`` of ``chunk``, its first byte that is not blank,
    or ``-1``.  Their bytes are gathered at once: blanks between elements are few (a
    Python check per range cost ~1 us per element)."""
    lens = np.maximum(hi - lo, 0)
    ends = np.cumsum(lens)
    out = np.full(len(lo), -1, np.int64)
    total = int(ends[-1]) if len(ends) else 0
    if not total:
        return out
    if total > CHUNK // 8:  # (mostly blanks: few, long ranges)
        for k in np.flatnonzero(lens).tolist():
            rest = len(chunk[lo[k] : hi[k]].lstrip(_BLANKS))
            out[k] = int(hi[k]) - rest if rest else -1
        return out
    at = np.repeat(lo - (ends - lens), lens) + np.arange(total)
    hits = np.flatnonzero(_NOT_BLANK[np.frombuffer(chunk, np.uint8)[at]])
    if len(hits):
        gaps, first = np.unique(np.searchsorted(ends, hits, "right"), return_index=True)
        out[gaps] = at[hits[first]]
    return out
