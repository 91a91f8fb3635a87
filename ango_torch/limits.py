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
            holds one asset at a time.  A larger asset whose excess is its
            ``task.tools`` entries (a long video) is read in pieces of its entries: then
            its bytes other than those entries, and each piece, stay within this.
        max_streamed_asset_bytes: largest JSON text of one asset read in pieces of its
            ``task.tools`` entries (see ``max_asset_bytes``), in bytes.  Default 4 GiB (a
            one-hour, 30 fps video with 50 box tracks is about 1 GB).  The reader holds
            that asset's bytes until its end where its task comes before its
            ``externalId``/``assetId`` (otherwise only a piece's worth at a time).
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
        max_asset_file_bytes: largest image, page or brush file fetched for one asset
            (from ``root``, the cache, an HTTP body or an fsspec object), in bytes.
            Default 1 GiB (an uncompressed RGBA image at the decoder's 179-megapixel
            limit is 716 MiB).  Bounds the memory and time of one fetch: a local URL
            such as ``/dev/zero`` or an endless HTTP body stops here.  Read when the
            dataset (its :class:`~ango_torch.assets.fetch.AssetStore`) or ``prefetch`` starts.
        max_canvas_pixels: largest image canvas (height × width, from the export's
            ``metadata`` or a decoded image or brush PNG) that targets, ``to_coco``,
            ``convert`` and ``evaluate`` allocate masks for.  Default 178,956,970 (2 ×
            Pillow's ``MAX_IMAGE_PIXELS``, its decompression-bomb error); also the
            dataset's decoder limit.  Read when the dataset is created.
        max_mask_bytes: largest ``uint8 [N, H, W]`` instance-mask stack of one sample,
            in bytes.  Default 2 GiB (e.g. 100 instances on a 4096×4096 image take
            1.6 GiB).  Read when the dataset is created.
        max_brush_colors: most distinct brush colours discovered (all brush PNGs
            together) when neither an ontology nor ``brush_colors`` names the brush
            colours; each becomes a class.  Default 256.  Read when the dataset is
            created.
        max_brush_components: most connected components of one brush PNG under
            ``brush_instances="components"`` (each becomes an instance).  Default
            10,000.  Read when the dataset is created.
    """

    max_asset_bytes: int = 256 << 20
    max_expansion_ratio: float = 200.0
    expansion_grace_bytes: int = 1 << 20
    max_depth: int = 64
    max_skipped: int = 1000
    max_asset_file_bytes: int = 1 << 30
    max_canvas_pixels: int = 2 * 89_478_485
    max_mask_bytes: int = 2 << 30
    max_brush_colors: int = 256
    max_brush_components: int = 10_000
    max_streamed_asset_bytes: int = 4 << 30

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
