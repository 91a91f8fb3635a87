"""The error hierarchy of ango_torch.

Every error the package raises for bad input or a failed fetch subclasses
:class:`AngoTorchError` and the matching builtin, so ``except ValueError`` or
``except OSError`` in user code keeps working.  Messages say what was expected,
what arrived and where: ``asset 'street_001.jpg' (#17), object '765742a3…',
field 'polygon': ...``.
"""

from __future__ import annotations

__all__ = [
    "AngoTorchError",
    "AngoTorchWarning",
    "ArchiveError",
    "AssetFetchError",
    "AssetTooLargeError",
    "DecodeError",
    "DecompressionBombError",
    "EvaluationError",
    "ExpiredURLError",
    "ExportFormatError",
    "GridMismatchError",
    "LimitError",
    "LocalURLError",
    "MissingDependencyError",
    "OntologyError",
    "SizeMismatchError",
    "StageNotFoundError",
    "UnsafePathError",
    "where",
]


class AngoTorchError(Exception):
    """Base class of every error ango_torch raises for bad input or a failed fetch."""


class ExportFormatError(AngoTorchError, ValueError):
    """The export (or one asset, object or field in it) is not what the format allows."""


class ArchiveError(ExportFormatError):
    """A gzip or ZIP export is corrupt, truncated, encrypted, nested or uses an unsupported
    compression method."""


class LimitError(ExportFormatError):
    """The input goes beyond a safety limit of :mod:`ango_torch.limits` (one asset too
    large or nested too deep); the message names the limit and how to raise it."""


class DecompressionBombError(LimitError):
    """A compressed export expands far more than real exports do (a decompression bomb)."""


class OntologyError(AngoTorchError, ValueError):
    """The ontology (categorySchema) is malformed or does not fit the export."""


class StageNotFoundError(AngoTorchError, LookupError):
    """A stage name or id that no asset's stageHistory holds."""


class AssetFetchError(AngoTorchError, OSError):
    """An image or brush mask could not be fetched."""


class ExpiredURLError(AssetFetchError):
    """A signed asset URL has expired; use ``root=`` or ``ango-torch prefetch``."""


class UnsafePathError(AssetFetchError):
    """An externalId or assetId would resolve outside ``root`` (``..``, an absolute path, a
    symlink pointing out) or cannot name a file (too long, ``.``, an empty component)."""


class LocalURLError(UnsafePathError):
    """An export URL (``asset``, ``dataset[]``, ``brushDataUrl``) names a file on this
    machine (a path, ``file://`` or a chained fsspec URL); refused unless the user passes
    ``allow_local_urls=True`` (``--allow-local-urls``)."""


class AssetTooLargeError(AssetFetchError, LimitError):
    """One fetched image, page or brush file is larger than
    :attr:`ango_torch.limits.Limits.max_asset_file_bytes`."""


class DecodeError(AssetFetchError):
    """Fetched bytes are not a decodable image (corrupt, truncated, too large)."""


def where(
    *,
    asset: str | None = None,
    index: int | None = None,
    obj: str | None = None,
    field: str | None = None,
    line: int | None = None,
) -> str:
    """Format the location part of an error message.

    Example: ``asset 'a.jpg' (#3), object 'abc', field 'polygon'``.
    """
    parts: list[str] = []
    if asset is not None or index is not None:
        label = f"asset {asset!r}" if asset is not None else "asset"
        if index is not None:
            label += f" (#{index})"
        parts.append(label)
    if line is not None:
        parts.append(f"line {line}")
    if obj is not None:
        parts.append(f"object {obj!r}")
    if field is not None:
        parts.append(f"field {field!r}")
    return ", ".join(parts)


class SizeMismatchError(AngoTorchError, ValueError):
    """A decoded image's size differs from the export's ``metadata.width/height``.

    The annotations were drawn on an image of the exported size; using them on an
    image of another size would misplace every one of them.
    """


class GridMismatchError(SizeMismatchError):
    """A volume's label grid (shape, spacing, origin, directions) differs from its image's."""


class EvaluationError(AngoTorchError, ValueError):
    """Predictions, targets or ground truth that cannot be evaluated as given."""


class MissingDependencyError(AngoTorchError, ImportError):
    """An optional dependency (an ``ango_torch[...]`` extra) is not installed."""


_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "http": "http", "https": "http"}


def missing_filesystem(url: str, exc: ImportError) -> MissingDependencyError:
    """The error for an fsspec protocol whose package is not installed, naming the extra."""
    protocol = url.split("://")[0] if "://" in url else "file"
    extra = _EXTRAS.get(protocol)
    hint = f"pip install 'ango_torch[{extra}]'" if extra else "install its fsspec package"
    return MissingDependencyError(f"{url!r}: {protocol}:// needs a package ({exc}); {hint}")


class AngoTorchWarning(UserWarning):
    """Something was skipped, dropped or repaired; the message says what and how many."""
