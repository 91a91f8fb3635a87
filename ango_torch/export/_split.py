"""Splitting one large asset into pieces along its ``task.tools`` list, on the bytes.

A long video is one asset whose ``task.tools`` holds one entry per object per frame: an
hour at 30 fps with 50 tracks is 5.4 million entries, about 1 GB of JSON.  Decoding it
as one JSON tree would take several times that in memory.  Instead, once an asset's
bytes pass :data:`SPLIT_BYTES`, :class:`Splitter` scans them as they arrive (strings,
escapes and nesting tracked with numpy, as :mod:`._scan` does for the array) to find
``task``, its ``tools`` array and the commas between its entries, and the asset is
yielded as pieces: each a small, valid asset JSON (the asset's own fields, and its task
with one run of about :data:`PIECE_BYTES` of ``tools`` entries).  The task's other
lists (``stageHistory``, ``classifications``, ``relations``) are ``[]`` in every piece
but the last, which holds them once.  :meth:`.IndexBuilder.add_columns` joins the
pieces' objects back into one asset, so the index is the same as for the unsplit asset.

Where the asset's fields before its task name it (``externalId`` or ``assetId``), the
pieces are made as its entries arrive, each closed right after its entries (all but the
last piece are only read for their objects), and the bytes already made into pieces
are let go; otherwise (the task comes first) the asset's bytes are held until it ends,
since its own fields follow.

Limits: the asset's bytes other than its ``tools`` entries, and each piece, stay within
``max_asset_bytes``; the whole asset within ``max_streamed_asset_bytes``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from ..errors import ExportFormatError, LimitError, where
from ..limits import Limits, hint
from ._bytescan import (
    _BLANKS,
    _BSLASH,
    _OPEN,
    _QUOTE,
    _SPECIAL,
    RawAsset,
    _escaped_quotes,
    too_deep,
)

__all__ = ["PIECE_BYTES", "SPLIT_BYTES", "Scanned", "Splitter", "piece_error"]

Scanned = tuple[npt.NDArray[np.intp], npt.NDArray[np.int8], npt.NDArray[np.int64]]

SPLIT_BYTES = 32 << 20
"""Assets larger than this (or than ``max_asset_bytes``) are split along ``task.tools``."""
PIECE_BYTES = 8 << 20
"""About how many bytes of ``tools`` entries each piece holds."""

_WHOLE = "the asset's JSON is"
_SHELL = "the asset's JSON apart from its task.tools entries is"
_ENTRY = "one task.tools entry (with the asset's other fields) is"
# Task lists that only the last piece carries (the others get ``[]``).
_ONCE = (b"stageHistory", b"classifications", b"relations")
_NAMES = ("externalId", "assetId")  # a piece must name its asset


@contextlib.contextmanager
def piece_error(raw: RawAsset) -> Iterator[None]:
    """Say which piece of a split asset an error comes from (its tools are named by
    their place in the whole asset; a JSON error's line and column are the piece's)."""
    try:
        yield
    except ExportFormatError as exc:
        if not raw.part:
            raise
        raise type(exc)(
            f"{exc} (piece {raw.part} of the asset, split along task.tools from its "
            f"entry {raw.first})"
        ) from exc


class Splitter:
    """Scans one asset's JSON bytes as they arrive, then yields it as pieces.

    Feed the asset's bytes from its opening ``{`` with :meth:`feed`; :meth:`pieces`
    after its closing ``}``.  Refuses early (``LimitError``) an asset whose bytes
    outside its ``tools`` entries, or one of whose entries, exceed ``max_asset_bytes``.
    """

    def __init__(self, name: str, lim: Limits, index: int, line: int | None = None) -> None:
        self.name, self.lim, self.index, self.line = name, lim, index, line
        self.chunks: list[bytes] = []
        self.starts: list[int] = []  # offset of each chunk in the asset
        self.size = 0
        self.depth, self.in_string, self.escaped = 0, False, False
        self.sep = [-1, -1, -1]  # last separator ('{', '[' or ',') at depth 1 and 2
        self.task: list[int] = []  # [open, close] of the task object
        self.end = -1  # the asset's closing brace (a line may go on after it)
        self.spans: dict[bytes, list[int]] = {}  # task key → [open, close] of its value
        self.current: bytes | None = None  # the task key whose value is open
        self.commas: list[npt.NDArray[np.int64]] = []  # between the entries not yet made
        self.last_sep = -1  # the tools array's last separator seen
        self.splittable = True
        # Pieces made before the asset ends: the bytes up to the tools' '[' (as they
        # are, and with the _ONCE lists emptied), where the pieces made end, how many
        # pieces and entries they hold, and those not yet handed out.
        self.head: tuple[bytes, bytes] | None = None
        self.early = False
        self.cut = -1
        self.made = self.entries = 0
        self.ready: list[RawAsset] = []

    # -- scanning ---------------------------------------------------------------------

    def feed(self, chunk: bytes, scanned: Scanned | None = None) -> None:
        """Scan the next bytes of the asset.

        Args:
            chunk: the bytes.
            scanned: where the caller already scanned them (:func:`._scan.iter_array`):
                ``(marks, step, depth)``, the structural marks' positions in ``chunk``,
                their ``+1/-1/0`` (open, close, comma) and the nesting depth after each
                (the asset object is depth 1).
        """
        base = self.size
        self.chunks.append(chunk)
        self.starts.append(base)
        self.size += len(chunk)
        if self.size > self.lim.max_streamed_asset_bytes:
            raise self._too_large("max_streamed_asset_bytes", _WHOLE)
        marks, step, dcum = self._scan(chunk) if scanned is None else scanned
        if len(dcum):
            self.depth = int(dcum[-1])
        if not self.splittable:
            if self.size > self.lim.max_asset_bytes:
                raise self._too_large("max_asset_bytes")
            return
        shallow = np.flatnonzero(dcum - (step > 0) <= 2)  # marks at depth 1 and 2
        a = np.frombuffer(chunk, np.uint8)
        self._structure(marks[shallow] + base, step[shallow], dcum[shallow], a[marks[shallow]])
        tools = self.spans.get(b"tools", [])
        if tools and self.head is None:
            self._start(tools[0])
        if tools and (len(tools) == 1 or tools[1] >= base):
            lo, hi = tools[0], tools[1] if len(tools) > 1 else self.size
            commas = marks[(dcum == 3) & (step == 0)].astype(np.int64) + base
            commas = commas[(commas > lo) & (commas < hi)]
            self.commas.append(commas)
            seps = np.concatenate([[max(self.last_sep, lo)], commas, [hi]])
            if int(np.diff(seps).max()) > self.lim.max_asset_bytes:
                raise self._too_large("max_asset_bytes", _ENTRY)
            if len(commas):
                self.last_sep = int(commas[-1])
        tools_bytes = 0
        if tools and self.splittable:
            tools_bytes = (tools[1] if len(tools) > 1 else self.size) - tools[0]
        if self.size - tools_bytes > self.lim.max_asset_bytes:
            raise self._too_large("max_asset_bytes")
        if self.early and self.size > min(SPLIT_BYTES, self.lim.max_asset_bytes):
            self._make_early()

    def _start(self, lo: int) -> None:
        """At the tools' ``[``: keep the bytes before it, and whether pieces can be made
        from here on (the asset's fields before its task name it)."""
        once = [self.spans[k] for k in _ONCE if len(self.spans.get(k, ())) == 2]
        self.head = self._shell(0, lo + 1, once)
        self.cut = lo
        try:
            shell = json.loads(self.head[1] + b"]}}")
        except ValueError:
            return
        if isinstance(shell, dict) and isinstance(shell.get("task"), dict):
            self.early = any(isinstance(shell.get(k), str) and shell[k] for k in _NAMES)

    def _make_early(self) -> None:
        """Make the pieces of the entries seen so far, each closed right after its
        entries (``]}}``): they carry the asset's fields before its task only, which
        is all the pieces but the last are read for."""
        assert self.head is not None
        cap = self.lim.max_asset_bytes
        commas = np.concatenate(self.commas) if self.commas else np.zeros(0, np.int64)
        target = max(1, min(PIECE_BYTES, cap - len(self.head[1]) - 3))
        while len(commas) and self.size > self.cut + 1 + target:  # the piece is full
            j = max(int(np.searchsorted(commas, self.cut + 1 + target, "right")) - 1, 0)
            end = int(commas[j])
            data = b"".join((self.head[1], self._entries(self.cut + 1, end), b"]}}"))
            if len(data) > cap:
                raise self._too_large("max_asset_bytes", _ENTRY)
            piece = RawAsset(self.index, data, self.line, self.made, False, self.entries)
            self.ready.append(piece)
            self.made, self.entries, self.cut = self.made + 1, self.entries + j + 1, end
            commas = commas[j + 1 :]
        self.commas = [commas]
        if self.made:  # (before the first piece, the asset may still be yielded whole)
            self._release(self.cut)

    def take(self) -> list[RawAsset]:
        """The pieces made so far and not yet taken."""
        ready, self.ready = self.ready, []
        return ready

    def _scan(self, chunk: bytes) -> Scanned:
        """The structural marks of the next bytes (strings and escapes carried over)."""
        a = np.frombuffer(chunk, np.uint8)
        special = np.flatnonzero(_SPECIAL[a])
        kinds = a[special]
        quotes = special[kinds == _QUOTE]
        if self.escaped or (kinds == _BSLASH).any():
            quotes, self.escaped = _escaped_quotes(a, quotes, self.escaped)
        marks = special[(kinds != _QUOTE) & (kinds != _BSLASH)]
        marks = marks[((np.searchsorted(quotes, marks) + self.in_string) & 1) == 0]
        step = _OPEN[a[marks]]
        dcum = np.cumsum(step, dtype=np.int64) + self.depth
        if len(dcum) and dcum.max() > self.lim.max_depth:
            raise too_deep(self.name, self.lim, where(index=self.index, line=self.line))
        self.in_string = bool((len(quotes) + self.in_string) & 1)
        return marks, step, dcum

    def _structure(
        self,
        pos: npt.NDArray[np.int64],
        step: npt.NDArray[np.int8],
        dcum: npt.NDArray[np.int64],
        char: npt.NDArray[np.uint8],
    ) -> None:
        """Find the task object and its lists among the marks at depth 1 and 2."""
        for p, st, d, c in zip(
            pos.tolist(), step.tolist(), dcum.tolist(), char.tolist(), strict=True
        ):
            before = d - st
            if st == 0:  # a comma
                if d == 1 or (d == 2 and self._in_task(p)):
                    self.sep[d] = p
            elif st > 0:
                if before == 0:  # the asset's own '{'
                    self.sep[1] = p
                elif before == 1 and self._key(self.sep[1], p) == b"task":
                    if self.task or c != ord("{"):
                        self.splittable = False  # two tasks, or not an object
                        return
                    self.task, self.sep[2] = [p], p
                elif before == 2 and self._in_task(p):
                    key = self._key(self.sep[2], p)
                    self.current = key if key in (b"tools", *_ONCE) else None
                    if self.current is not None:
                        if self.current in self.spans or (key == b"tools" and c != ord("[")):
                            self.splittable = False  # a key twice: the decoder keeps one
                            return
                        self.spans[self.current] = [p]
            else:  # a close
                if d == 2 and self.current is not None and self._in_task(p):
                    self.spans[self.current].append(p)
                    self.current = None
                elif d == 1 and self._in_task(p):
                    self.task.append(p)
                elif d == 0 and self.end < 0:
                    self.end = p

    def _goes_on(self) -> bool:
        """Whether more than blanks follow the asset's closing brace (on its line)."""
        return self.end >= 0 and bool(self._slice(self.end + 1, self.size).strip(_BLANKS))

    def _in_task(self, p: int) -> bool:
        return len(self.task) == 1 and p > self.task[0]

    def _key(self, sep: int, p: int) -> bytes | None:
        """The object key between separator ``sep`` and the value opening at ``p``."""
        text = self._slice(sep + 1, p).strip(_BLANKS)
        if not text.endswith(b":"):
            return None
        text = text[:-1].strip(_BLANKS)
        if len(text) < 2 or not text[:1] == text[-1:] == b'"':
            return None
        if b"\\" not in text:
            return text[1:-1]
        try:  # "t\u0061sk" is "task" to the decoder: compare keys as it reads them
            key = json.loads(text)
        except ValueError:
            return None
        return key.encode("utf-8", "surrogatepass") if isinstance(key, str) else None

    def _slice(self, lo: int, hi: int) -> bytes:
        """The asset's bytes ``[lo, hi)``."""
        if hi <= lo:
            return b""
        k = int(np.searchsorted(self.starts, lo, "right")) - 1
        out = []
        while lo < hi:
            c, s = self.chunks[k], self.starts[k]
            take = c[lo - s : hi - s]
            out.append(take)
            lo += len(take)
            k += 1
        return b"".join(out)

    def _entries(self, lo: int, hi: int) -> bytes:
        """A piece's run of ``tools`` entries, bytes ``[lo, hi)`` between two separators.

        Each piece is valid JSON on its own, so the decoder refuses ``,,`` or a stray
        comma inside a piece; at a piece's ends the comma is the cut, so an empty run
        (``[e0,]``, ``[,e0]``, ``e0,,e1`` cut there) is refused here.
        """
        run = self._slice(lo, hi)
        if not run or run.isspace():
            raise ExportFormatError(
                f"export {self.name!r}, {where(index=self.index, line=self.line)}: invalid "
                "JSON in task.tools: an empty entry between commas (or before ']')"
            )
        return run

    def _too_large(self, limit: str, what: str = _SHELL) -> LimitError:
        return LimitError(
            f"export {self.name!r}, {where(index=self.index, line=self.line)}: {what} larger "
            f"than {limit}={getattr(self.lim, limit)}; {hint(limit)}"
        )

    # -- pieces -----------------------------------------------------------------------

    def pieces(self, piece_bytes: int = 0) -> Iterator[RawAsset]:
        """The asset as pieces (one :class:`RawAsset` when it cannot or need not split).

        Raises:
            LimitError: an unsplittable asset, or a piece, beyond ``max_asset_bytes``.
        """
        cap = self.lim.max_asset_bytes
        tools = self.spans.get(b"tools", [])
        commas = np.concatenate(self.commas) if self.commas else np.zeros(0, np.int64)
        whole = self.splittable and len(self.task) == 2 and len(tools) == 2
        if self.made and (self.depth or self._goes_on()):
            # An NDJSON line cut short, or going on after the asset.  Its last piece is
            # its bytes from the last cut on, with its head: invalid JSON, so the decoder
            # names the asset (and under on_error="skip" it is left out whole), as for an
            # asset read whole (found by fuzzing, issue 14).
            assert self.head is not None
            data = self.head[1] + self._slice(self.cut + 1, self.size).rstrip(_BLANKS)
            yield RawAsset(self.index, data, self.line, part=self.made, first=self.entries)
            return
        if self.made and not whole:  # pieces were made of what turned out not to be it
            raise ExportFormatError(
                f"export {self.name!r}, {where(index=self.index, line=self.line)}: read "
                "in pieces along task.tools, but the asset has two tasks or two tools lists (or "
                "another task list twice: a decoder keeps the later one)"
            )
        yield from self.take()
        if not self.made and (self.size <= min(SPLIT_BYTES, cap) or not whole or not len(commas)):
            if self.size > cap:
                raise self._too_large("max_asset_bytes", _WHOLE)
            yield RawAsset(self.index, self._slice(0, self.size), self.line)
            return
        hi = tools[1]
        once = [self.spans[k] for k in _ONCE if len(self.spans.get(k, ())) == 2]
        assert self.head is not None
        head, tail = self.head, self._shell(hi, self.size, once)
        shell = len(head[1]) + len(tail[1])
        seps = np.concatenate([[self.cut], commas, [hi]]).astype(np.int64)
        target = max(1, min(piece_bytes or PIECE_BYTES, cap - shell))
        bounds = [0]  # indices into seps where a piece ends
        while bounds[-1] < len(seps) - 1:
            start = int(seps[bounds[-1]])
            j = int(np.searchsorted(seps, start + 1 + target, "right")) - 1
            j = max(j, bounds[-1] + 1)
            bounds.append(j)
        n = len(bounds) - 1
        for k in range(n):
            last = k == n - 1
            a, b = int(seps[bounds[k]]) + 1, int(seps[bounds[k + 1]])
            pre, post = (head[0], tail[0]) if last else (head[1], tail[1])
            data = b"".join((pre, self._entries(a, b), post))
            if len(data) > cap:
                raise self._too_large("max_asset_bytes", _ENTRY)
            part, first = self.made + k, self.entries + bounds[k]
            yield RawAsset(self.index, data, self.line, part=part, last=last, first=first)
            self._release(b)

    def _shell(self, lo: int, hi: int, once: list[list[int]]) -> tuple[bytes, bytes]:
        """Bytes ``[lo, hi)`` as they are, and with the ``_ONCE`` lists emptied."""
        full = self._slice(lo, hi)
        parts, at = [], lo
        for o, c in sorted(once):
            if lo <= o and c < hi:
                parts += [self._slice(at, o), b"[]"]
                at = c + 1
        parts.append(self._slice(at, hi))
        return full, b"".join(parts)

    def _release(self, upto: int) -> None:
        """Let go of the chunks wholly before byte ``upto`` (the pieces already made)."""
        for k, s in enumerate(self.starts):
            if s + len(self.chunks[k]) > upto:
                break
            self.chunks[k] = b""
