"""Field readers of the parser: typed access to raw JSON values with located errors."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ..errors import ExportFormatError, where

__all__ = ["parse_time"]

_EMPTY = np.zeros((0, 2), np.float32)
_EMPTY.flags.writeable = False


class _Loc:
    """Where we are in the export, for error messages."""

    __slots__ = ("asset", "first", "index", "line", "obj")

    def __init__(
        self, asset: str | None, index: int, line: int | None = None, first: int = 0
    ) -> None:
        self.asset = asset
        self.index = index
        self.line = line
        self.obj: str | None = None
        # A piece of a large asset (._split): the place of its first task.tools entry
        # in the whole asset, so that its entries are named (and numbered "#k") there.
        self.first = first

    def error(self, field: str | None, message: str) -> ExportFormatError:
        loc = where(asset=self.asset, index=self.index, obj=self.obj, field=field, line=self.line)
        return ExportFormatError(f"{loc}: {message}")


def _type(value: Any) -> str:
    return type(value).__name__ if value is not None else "null"


def _str(
    value: Any, loc: _Loc, field: str, *, required: bool = False, strict: bool = False
) -> str | None:
    """A string field; ``None``/absent reads as ``None``.  Numbers read as their text
    (numeric ids occur in hand-made exports) unless ``strict`` (URLs and externalId,
    which name files: a number there is a malformed export, not a file name)."""
    if type(value) is str and (value or not required):
        return value
    if value is None or value == "":
        if required:
            raise loc.error(field, "is missing, expected a string")
        return None if value is None else ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not strict:
        return str(value)  # numeric ids occur in hand-made exports
    raise loc.error(field, f"expected a string, got {_type(value)}")


def _num(value: Any, loc: _Loc, field: str) -> float:
    if type(value) is float:  # the common case first (indexing speed)
        if value - value == 0.0:  # finite: inf - inf and nan - nan are nan
            return value
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        if value is None:
            raise loc.error(field, "is missing, expected a number")
        raise loc.error(field, f"expected a number, got {_type(value)} {value!r:.40}")
    try:
        f = float(value)
    except OverflowError:  # a JSON integer beyond any float
        raise loc.error(
            field, f"expected a finite number, got an integer of {value.bit_length()} bits"
        ) from None
    if not math.isfinite(f):
        raise loc.error(field, f"expected a finite number, got {f}")
    return f


# Doubles at or beyond this magnitude round to infinity as float32 (the index's dtype).
_F32_LIMIT = 2.0**128 - 2.0**103


def _coord(value: Any, loc: _Loc, field: str) -> float:
    """A coordinate: a finite number that stays finite as float32."""
    f = _num(value, loc, field)
    if not -_F32_LIMIT < f < _F32_LIMIT:
        raise loc.error(field, f"expected a finite number within the float32 range, got {f}")
    return f


def _opt_index(value: Any, loc: _Loc, field: str) -> int | None:
    """An optional count or position stored in an ``int32`` column: ``0 ≤ value < 2**31``."""
    if value is None:
        return None
    n = _opt_int(value, loc, field)
    if n is not None and not 0 <= n < 2**31:
        raise loc.error(field, f"expected an integer ≥ 0 (and < 2**31), got {n}")
    return n


def _plain(value: Any) -> bool:
    """Whether ``value`` is plain JSON as :func:`_json` accepts it (the quick check)."""
    t = type(value)
    if t is str or t is bool or value is None:
        return True
    if t is float:
        return bool(value - value == 0.0)  # finite
    if t is int:
        return bool(-(2**63) <= value < 2**64)
    if t is list:
        return all(map(_plain, value))
    if t is dict:
        return all(type(k) is str for k in value) and all(map(_plain, value.values()))
    return False


def _tupled(value: Any) -> Any:
    return tuple(map(_tupled, value)) if type(value) is list else value


def _json(value: Any, loc: _Loc, field: str, *, tuples: bool = False) -> Any:
    """A free-form JSON value the index stores as is: finite numbers, 64-bit integers,
    string keys (lists, also nested in lists, become tuples with ``tuples``)."""
    if _plain(value):
        if tuples:
            return _tupled(value)
        return dict(value) if type(value) is dict else list(value) if type(value) is list else value
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is dict and not value:
        return {}
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise loc.error(
                field, f"expected an integer within 64 bits, got {value.bit_length()} bits"
            )
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise loc.error(field, f"expected a finite number, got {value}")
        return value
    if isinstance(value, (list, tuple)):
        items = [_json(v, loc, f"{field}[{k}]", tuples=tuples) for k, v in enumerate(value)]
        return tuple(items) if tuples else items
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise loc.error(field, f"expected string keys, got {_type(k)} {k!r:.40}")
            out[k] = _json(v, loc, f"{field}.{k}")
        return out
    raise loc.error(field, f"expected a JSON value, got {_type(value)}")


def _opt_int(value: Any, loc: _Loc, field: str) -> int | None:
    if value is None:
        return None
    f = _num(value, loc, field)
    if f != int(f):
        raise loc.error(field, f"expected an integer, got {f}")
    return int(f)


def _list(value: Any, loc: _Loc, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise loc.error(field, f"expected a list, got {_type(value)}")
    return value


_TIME_DIGITS = 20  # 2**64 has 20 digits: longer digit strings are beyond 64 bits


def _time(value: Any, loc: _Loc, field: str) -> datetime | None:
    """A timestamp (:func:`parse_time`), refusing integers beyond 64 bits (also as digit
    strings) with an error naming ``field``; other unreadable values read as ``None``."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            if len(text) > _TIME_DIGITS:
                raise loc.error(
                    field, f"expected a timestamp within 64 bits, got {len(text)} digits"
                )
            number = int(text)
    elif isinstance(value, float) and not -(2.0**63) <= value < 2.0**64:
        # A JSON reader may give integers beyond 64 bits as floats (orjson does): refuse
        # them as the same integer in a list would be (and nan/inf), not read them as None.
        raise loc.error(field, f"expected a timestamp within 64 bits, got {value!r}")
    if number is not None and not -(2**63) <= number < 2**64:
        raise loc.error(
            field,
            f"expected a timestamp within 64 bits, got an integer of {number.bit_length()} bits",
        )
    return parse_time(value)


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 string or epoch milliseconds → aware UTC datetime; else ``None``.

    Never raises: values out of any datetime's range (or of a float's) are ``None``.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            seconds = value / 1000.0 if abs(value) > 1e11 else float(value)
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            return parse_time(int(text)) if len(text) <= _TIME_DIGITS else None
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None
