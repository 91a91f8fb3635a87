"""Byte tables and helpers of the vectorized JSON scans (:mod:`._scan`, :mod:`._split`,
:mod:`.object_rows`): which bytes are special, the bracket steps, escaped quotes, the
raw asset the readers yield, and their limit errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import LimitError, where
from ..limits import Limits, hint

__all__ = ["RawAsset", "json_list", "too_deep", "too_large"]

_QUOTE, _BSLASH = ord('"'), ord("\\")
_OPEN = np.zeros(256, np.int8)
_OPEN[[ord("{"), ord("[")]] = 1
_OPEN[[ord("}"), ord("]")]] = -1
_SPECIAL = np.zeros(256, bool)
_SPECIAL[[ord(c) for c in '{}[],"\\']] = True
_BLANKS = b" \t\r\n"  # JSON's whitespace (bytes.strip() would also take \x0b and \x0c)
_BOM = b"\xef\xbb\xbf"  # one UTF-8 BOM may start a file (orjson refuses it)


@dataclass(frozen=True, slots=True)
class RawAsset:
    """One undecoded asset (or piece of a large one): its JSON bytes and where it came
    from."""

    index: int
    data: bytes
    line: int | None = None
    part: int = 0
    """Piece number of an asset split along its ``task.tools`` (:mod:`._split`)."""
    last: bool = True
    """Whether this is the asset's last (or only) piece."""
    first: int = 0
    """How many ``task.tools`` entries of the asset come before this piece."""


def json_list(parts: Sequence[Any]) -> bytes:
    """``[`` + ``parts`` (JSON texts: bytes or any buffer) joined by commas + ``]``,
    their bytes copied once: ``b"[" + b",".join(parts) + b"]"`` copies them three
    times, which was half of cutting an export into blocks (~50 ms of a 79 MiB export's
    indexing, issue 14)."""
    if not parts:
        return b"[]"
    items = list(parts)
    items[0] = b"".join((b"[", items[0]))
    items[-1] = b"".join((items[-1], b"]"))
    return b",".join(items)


def too_large(name: str, lim: Limits, index: int, line: int | None = None) -> LimitError:
    return LimitError(
        f"export {name!r}, {where(index=index, line=line)}: the asset's JSON is larger than "
        f"max_asset_bytes={lim.max_asset_bytes}; {hint('max_asset_bytes')}"
    )


def too_deep(name: str, lim: Limits, loc: str) -> LimitError:
    return LimitError(
        f"export {name!r}, {loc}: JSON nested more than {lim.max_depth} levels deep "
        f"(max_depth); {hint('max_depth')}"
    )


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
