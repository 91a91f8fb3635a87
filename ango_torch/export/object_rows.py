"""The objectIds and ``interpolationStopped`` of an asset's objects, read from the index.

The index keeps each asset's object rows (``[objectId, schemaId, classifications,
metadata, geometry extra, interpolationStopped]``) as one compact JSON list; a one-hour
video has millions of them.  :func:`object_ids` reads the two fields with numpy from
those bytes (strings, escapes and depth tracked as :mod:`._scan` does), without a
Python object per row.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._bytescan import _BSLASH, _OPEN, _QUOTE, _SPECIAL, _escaped_quotes
from ._read import loads
from .index import ExportIndex

__all__ = ["object_ids"]

I64 = npt.NDArray[np.int64]


def object_ids(index: ExportIndex, asset: int) -> tuple[I64, list[str], npt.NDArray[np.bool_]]:
    """``(codes, names, stopped)`` of every object row of ``asset`` (row order):
    ``names[codes[k]]`` is the objectId of its ``k``-th object, ``stopped[k]`` its
    ``interpolationStopped``.

    Read from the bytes of the asset's object extras (``[objectId, schemaId, ...,
    interpolationStopped]`` rows, compact JSON) with numpy, without a Python object
    per entry (a one-hour video has millions); objectIds are told apart by their JSON
    text (hashed, then checked byte for byte).  Falls back to decoding the JSON where
    the rows are not as expected.
    """
    o = int(index.asset_objects[asset])
    if o < 0:
        return np.zeros(0, np.int64), [], np.zeros(0, bool)
    blob = index.extras.blob[index.extras.offsets[o] : index.extras.offsets[o + 1]]
    fast = _ids_from_bytes(np.asarray(blob, np.uint8))
    if fast is not None:
        return fast
    extras = index.object_extras(asset)
    names: dict[str, int] = {}
    codes = np.fromiter(
        (names.setdefault(str(e[0]), len(names)) for e in extras), np.int64, len(extras)
    )
    return codes, list(names), np.array([bool(e[5]) for e in extras], bool).reshape(-1)


_ROW_FIELDS = 6  # objectId, schemaId, classifications, metadata, geometry extra, stopped
_MAX_ID_BYTES = 256


_BLOCK = 16 << 20


def _row_marks(
    a: npt.NDArray[np.uint8],
) -> tuple[npt.NDArray[np.integer], npt.NDArray[np.integer], npt.NDArray[np.integer]] | None:
    """Positions of each row's ``[`` and ``]`` and of the commas between its fields,
    scanned in blocks (strings, escapes and depth carried over), so that the scan's
    temporaries stay small next to the rows."""
    pos_type = np.int32 if len(a) < 2**31 else np.int64
    depth, in_string, escaped = 0, False, False
    out: tuple[list[npt.NDArray[np.integer]], ...] = ([], [], [])
    for b0 in range(0, len(a), _BLOCK):
        block = a[b0 : b0 + _BLOCK]
        special = np.flatnonzero(_SPECIAL[block])
        kinds = block[special]
        is_quote = kinds == _QUOTE
        if escaped or (kinds == _BSLASH).any():
            quotes, escaped = _escaped_quotes(block, special[is_quote], escaped)
            is_quote = np.zeros(len(special), bool)
            is_quote[np.searchsorted(special, quotes)] = True
        quotes_before = np.cumsum(is_quote, dtype=np.int32)
        struct = ((quotes_before + in_string) & 1) == 0  # outside strings
        struct &= ~is_quote & (kinds != _BSLASH)
        if len(quotes_before):
            in_string = bool((int(quotes_before[-1]) + in_string) & 1)
        marks = (special[struct] + b0).astype(pos_type)
        step = _OPEN[kinds[struct]]
        dcum = np.cumsum(step, dtype=np.int32) + depth  # a row's inside is depth 2
        if len(dcum):
            depth = int(dcum[-1])
        out[0].append(marks[(step > 0) & (dcum == 2)])
        out[1].append(marks[(step < 0) & (dcum == 1)])
        out[2].append(marks[(step == 0) & (dcum == 2)])
    if depth or in_string:
        return None
    empty = np.zeros(0, pos_type)
    opens, closes, commas = (np.concatenate(x) if x else empty for x in out)
    return opens, closes, commas


def _ids_from_bytes(
    a: npt.NDArray[np.uint8],
) -> tuple[I64, list[str], npt.NDArray[np.bool_]] | None:
    marks = _row_marks(a)
    if marks is None:
        return None
    opens, closes, commas = marks
    n = len(opens)
    if not n or len(closes) != n:
        return None
    first_comma = np.searchsorted(commas, opens)
    last_comma = np.searchsorted(commas, closes) - 1
    if not (last_comma - first_comma == _ROW_FIELDS - 2).all():
        return None
    c = commas[np.stack([first_comma, last_comma], axis=1)].astype(np.int64)
    flag = a[c[:, -1] + 1]
    if not np.isin(flag, (ord("t"), ord("f"))).all():
        return None
    lo, hi = opens + 1, c[:, 0]  # the objectId's JSON text, quotes included
    length = hi - lo
    width = int(length.max())
    if width > _MAX_ID_BYTES or (a[lo] != _QUOTE).any():
        return None
    text = np.zeros((n, width), np.uint8)
    h = length.astype(np.uint64)
    for j in range(width):  # one column at a time: no [n, width] index array
        col = np.where(j < length, a[np.minimum(lo + j, len(a) - 1)], 0).astype(np.uint8)
        text[:, j] = col
        h = h * np.uint64(1099511628211) ^ col.astype(np.uint64)  # FNV-1a style
    _, first, codes = np.unique(h, return_index=True, return_inverse=True)
    codes = codes.reshape(-1).astype(np.int64)
    if not (text == text[first[codes]]).all():  # a hash collision: decode instead
        return None
    names = [str(loads(a[lo[k] : hi[k]].tobytes())) for k in first.tolist()]
    return codes, names, flag == ord("t")
