"""Safety limits on untrusted exports, in one place.

Exports come from other people (vendors, shared datasets, old projects), so every byte
of them is treated as untrusted, as Pillow treats image headers (its
``MAX_IMAGE_PIXELS``) and urllib3 its responses.  Each limit below has a default that
real Ango exports stay far below; a file that goes beyond one raises a
:class:`~ango_torch.errors.LimitError` naming the limit and how to raise it.

Raise a limit for one call (``load_export(path, limits=Limits(max_depth=200))``), for
a block of code (``with ango_torch.limits.override(max_asset_bytes=2 << 30): ...``), or
for a process and the ``ango-torch`` command line with the environment variable
``ANGO_TORCH_LIMITS="max_depth=128,max_asset_bytes=2147483648"``; read the ones in
force with :func:`current`.

Example:
    >>> from ango_torch.limits import Limits, current, override
    >>> with override(max_depth=128):
    ...     current().max_depth
    128
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["ENV", "MAX_DEPTH_CEILING", "Limits", "current", "override"]

MAX_DEPTH_CEILING = 255
"""The highest ``max_depth`` allowed: orjson refuses to encode deeper values."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits ango_torch enforces while reading an export.

    Attributes:
        max_asset_bytes: largest JSON text of one asset (one element of the array, one
            NDJSON line), in bytes.  Default 256 MiB.  Bounds the reader's memory, which
            holds one asset at a time.
        max_expansion_ratio: largest ratio of decompressed to compressed bytes of a
            gzip file or ZIP member, checked while decompressing once more than
            ``expansion_grace_bytes`` came out.  Default 200 (exports compress 5-20x;
            a deflate bomb reaches ~1000x).
        expansion_grace_bytes: decompressed bytes before the ratio is checked, so that
            small, repetitive files pass.  Default 1 MiB.
        max_depth: deepest nesting of JSON objects and arrays inside one asset (the
            asset object itself is level 1; nested classifications take two levels
            each).  Default 64.  Checked on the bytes before decoding, and on
            already-parsed dicts given to ``load_export``.  At most
            :data:`MAX_DEPTH_CEILING` (255).
        max_skipped: skipped assets whose reasons are kept under
            ``on_error="skip"``; those beyond are only counted
            (``AngoExport.skipped_count``).  Default 1000.
    """

    max_asset_bytes: int = 256 << 20
    max_expansion_ratio: float = 200.0
    expansion_grace_bytes: int = 1 << 20
    max_depth: int = 64
    max_skipped: int = 1000

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"Limits.{f.name} must be a number >= 0, got {value!r}")
        if self.max_depth > MAX_DEPTH_CEILING:
            raise ValueError(
                f"Limits.max_depth={self.max_depth}: at most {MAX_DEPTH_CEILING} (the "
                "deepest JSON that orjson encodes again when the index stores it)"
            )


ENV = "ANGO_TORCH_LIMITS"
"""Environment variable with ``name=value`` pairs, comma-separated, over the defaults."""

_from_env: tuple[str, Limits] = ("", Limits())
_CURRENT: contextvars.ContextVar[Limits | None] = contextvars.ContextVar(
    "ango_torch_limits", default=None
)


def current() -> Limits:
    """The limits in force (the defaults unless :func:`override` is active)."""
    return _CURRENT.get() or _defaults()


def _defaults() -> Limits:
    """The defaults, with :data:`ENV` applied (parsed again only when it changes)."""
    global _from_env
    text = os.environ.get(ENV, "")
    if text != _from_env[0]:
        changes: dict[str, Any] = {}
        names = {f.name: f.type for f in dataclasses.fields(Limits)}
        for pair in filter(None, (p.strip() for p in text.split(","))):
            key, _, value = pair.partition("=")
            key = key.strip()
            if key not in names:
                raise ValueError(f"{ENV}: unknown limit {key!r} (known: {', '.join(names)})")
            try:
                changes[key] = float(value) if names[key] == "float" else int(value)
            except ValueError:
                raise ValueError(f"{ENV}: {key}={value!r} is not a number") from None
        _from_env = (text, Limits(**changes))
    return _from_env[1]


@contextlib.contextmanager
def override(**changes: Any) -> Iterator[Limits]:
    """Change some limits inside a ``with`` block; yields the limits in force.

    Example: ``with override(max_asset_bytes=1 << 30): load_export(path)``.
    """
    limits = dataclasses.replace(current(), **changes)
    token = _CURRENT.set(limits)
    try:
        yield limits
    finally:
        _CURRENT.reset(token)


def hint(name: str) -> str:
    """The sentence that tells how to raise the limit ``name``."""
    return (
        f"if the file is trusted, raise it with load_export(..., limits=Limits({name}=...)), "
        f"ango_torch.limits.override({name}=...) or {ENV}='{name}=...'"
    )
