"""The export's assets as raw JSON objects, streamed in file order (for ``write_shards``).

The shard writer stores each asset's own export record next to its image, so a shard
sample can be turned back into a one-asset export that :func:`load_export` reads exactly
as it read the whole file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..errors import ExportFormatError
from ._read import decode_raw, iter_raw_assets, open_export

__all__ = ["iter_asset_json"]


def iter_asset_json(
    export: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
    *,
    storage_options: dict[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield every asset of ``export`` (a path/URL or a list of dicts) as a JSON object.

    Streams a file (JSON array, NDJSON, gzip, ZIP) one asset at a time: memory stays
    bounded by the largest asset, not the export.

    Raises:
        ExportFormatError: an element that is not a JSON object, or invalid JSON.
    """
    if isinstance(export, (str, os.PathLike)):
        f, name = open_export(os.fspath(export), storage_options)
        with f:
            whole: dict[str, Any] | None = None
            for raw in iter_raw_assets(f, name):
                value = decode_raw(raw, name)
                if not isinstance(value, dict):
                    raise ExportFormatError(f"export {name!r}: asset #{raw.index} is not an object")
                if raw.part:  # a large asset read in pieces (._split): joined again
                    assert whole is not None
                    whole["task"]["tools"] += value["task"]["tools"]
                    value["task"]["tools"] = whole["task"]["tools"]
                if raw.last:
                    whole = None
                    yield value
                else:
                    whole = value
        return
    for i, value in enumerate(export):
        if not isinstance(value, Mapping):
            raise ExportFormatError(f"export: asset #{i} is not an object")
        yield dict(value)
