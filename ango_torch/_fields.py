"""Field readers of the parser: typed access to raw JSON values with located errors."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import numpy as np

from .errors import ExportFormatError, where

__all__ = ["parse_time"]

_EMPTY = np.zeros((0, 2), np.float32)
_EMPTY.flags.writeable = False


class _Loc:
    """Where we are in the export, for error messages."""

    __slots__ = ("asset", "index", "line", "obj")

    def __init__(self, asset: str | None, index: int, line: int | None = None) -> None:
        self.asset = asset
        self.index = index
        self.line = line
        self.obj: str | None = None

    def error(self, field: str | None, message: str) -> ExportFormatError:
        loc = where(asset=self.asset, index=self.index, obj=self.obj, field=field, line=self.line)
        return ExportFormatError(f"{loc}: {message}")


def _type(value: Any) -> str:
    return type(value).__name__ if value is not None else "null"


def _str(value: Any, loc: _Loc, field: str, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise loc.error(field, "is missing, expected a string")
        return None if value is None else ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # numeric ids occur in hand-made exports
    raise loc.error(field, f"expected a string, got {_type(value)}")


def _num(value: Any, loc: _Loc, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if value is None:
            raise loc.error(field, "is missing, expected a number")
        raise loc.error(field, f"expected a number, got {_type(value)} {value!r:.40}")
    f = float(value)
    if not math.isfinite(f):
        raise loc.error(field, f"expected a finite number, got {f}")
    return f


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


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 string or epoch milliseconds → aware UTC datetime; else ``None``."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = value / 1000.0 if abs(value) > 1e11 else float(value)
        try:
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return parse_time(int(text))
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None
