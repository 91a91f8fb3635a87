"""Where an asset's files live: under ``root``, in a prefetch folder and in the cache.

Pure string functions (no IO), shared by the store (:mod:`.fetch`), ``prefetch`` and
``convert`` so that what one writes the others read.  Layout under a folder::

    DIR/<externalId>                         the image, where the externalId is unique
    DIR/_assets/<assetId>/<externalId>       the image, where another asset shares it
    DIR/<name>.pages/<p>                     page p of a multi-page asset (name as above)
    DIR/_brush/<assetId>.<key>.png           the exported brush mask
    DIR/_brush/<assetId>@<stage>.<key>.png   a stage snapshot's brush mask

An externalId is a file name the uploader chose, not a key: two assets may share one,
and two that differ only in case are one file on macOS and Windows.  Such assets (and
externalIds under the reserved ``_assets/`` or ``_brush/`` folders) get the
``_assets/<assetId>/`` name; unique externalIds keep ``DIR/<externalId>``, so existing
``root`` folders keep working.  ``<key>`` names a brush mask's *content* (see
:func:`content_key`): a re-export with changed strokes gets a new file, never the old one.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
import numpy.typing as npt

from ..errors import UnsafePathError, where

if TYPE_CHECKING:
    from ..export.index import ExportIndex

__all__ = [
    "MAX_NAME_BYTES",
    "Kind",
    "asset_path",
    "base_folder",
    "brush_content_key",
    "brush_stage_key",
    "cache_name",
    "content_key",
    "shared_assets",
    "shared_external_ids",
]

Kind = Literal["image", "brush"]

ASSETS_DIR: Final = "_assets"
BRUSH_DIR: Final = "_brush"
_RESERVED: Final = frozenset({ASSETS_DIR, BRUSH_DIR})
_RESERVED_FOLDERS: Final = tuple(f"{d}{sep}" for d in sorted(_RESERVED) for sep in "/\\")
_DRIVE: Final = re.compile(r"^[A-Za-z]:")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_PLACEHOLDER: Final = re.compile(r"\{(externalId|assetId)\}")
MAX_NAME_BYTES: Final = 255
"""Longest file name (one path component) in bytes: ext4, APFS, NTFS (in UTF-16 units)."""
_NO_FILE: Final = "it cannot name a file under root, refusing"


def _check_component(value: str, *, what: str, label: str) -> None:
    """Refuse ids that could leave ``root`` (``..``, absolute paths, drives, NUL) or that
    name no file (``.`` or empty components, lone surrogates, components over 255 bytes)."""
    problem = None
    if not value:
        problem = "is empty"
    elif "\x00" in value:
        problem = "contains a NUL byte"
    else:
        for candidate in {value, urllib.parse.unquote(value)}:
            parts = re.split(r"[\\/]", candidate)
            if candidate.startswith(("/", "\\")):
                problem = "is an absolute path"
            elif _DRIVE.match(candidate) or "://" in candidate:
                problem = "names a drive or protocol"
            elif ".." in parts:
                problem = "has a '..' component"
            elif candidate.startswith("~"):
                problem = "starts with '~'"
            if problem:
                break
    if problem:
        raise UnsafePathError(
            f"{label}, field {what!r}: {value!r} {problem}; it would resolve outside root, refusing"
        )
    parts = re.split(r"[\\/]", value)
    if "." in parts or "" in parts:
        problem = "has a '.' or empty path component"
    elif _SURROGATE.search(value):
        problem = "is not valid Unicode (a lone surrogate)"
    if problem:
        raise UnsafePathError(f"{label}, field {what!r}: {value!r} {problem}; {_NO_FILE}")


def _check_lengths(relative: str, *, what: str, value: str, label: str) -> None:
    """Refuse a path whose components are longer than a file name may be (255 bytes)."""
    for part in relative.split("/"):
        size = len(part.encode("utf-8", "surrogatepass"))
        if size > MAX_NAME_BYTES:
            raise UnsafePathError(
                f"{label}, field {what!r}: {_short(value)} makes a file name of {size} bytes, "
                f"over the {MAX_NAME_BYTES} a file system allows; {_NO_FILE}"
            )


def _short(value: str) -> str:
    return repr(value) if len(value) <= 80 else f"{value[:60]!r}… ({len(value)} characters)"


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="", errors="surrogatepass")


def _id_of(asset_id: str, external_id: str, label: str = "") -> str:
    # Assets without an assetId (hand-made exports) are keyed by their externalId.
    name = _quote(asset_id or external_id)
    if name in (".", ".."):
        what = "assetId" if asset_id else "externalId"
        raise UnsafePathError(
            f"{label or where(asset=external_id)}, field {what!r}: {name!r} names a folder, "
            f"not a file; {_NO_FILE}"
        )
    return name


def base_folder(base: str) -> str:
    """The folder of ``base`` (a folder, fsspec path or template) that every file of
    :func:`asset_path` lies in: ``base`` itself, or a template's folder before its first
    placeholder."""
    found = _PLACEHOLDER.search(base)
    return base if found is None else base[: found.start()].rsplit("/", 1)[0]


def shared_external_ids(external_ids: Iterable[str]) -> npt.NDArray[np.bool_]:
    """Per asset, whether its externalId cannot name its file alone.

    True where another asset of the export has the same externalId up to case
    (``casefold``), or where it starts with a reserved folder (``_assets/``,
    ``_brush/``); those assets are laid out as ``_assets/<assetId>/<externalId>``.

    Args:
        external_ids: Every asset's externalId, in export order.

    Returns:
        ``bool [N]``.
    """
    folded = [e.casefold() for e in external_ids]
    counts = Counter(folded)
    # Its first folder is reserved: it is one, or starts with one and a slash of either
    # kind (one startswith per name, in C: ~4x faster than splitting each name).
    return np.array(
        [counts[f] > 1 or f in _RESERVED or f.startswith(_RESERVED_FOLDERS) for f in folded],
        dtype=bool,
    ).reshape(-1)


def content_key(url: str | None, *parts: str | None) -> str:
    """16 hex digits naming an annotation-derived file (a brush mask) by its content.

    Hashes the URL without its query (signatures change with every export; the path
    does when the file does) and ``parts`` (task id and update time, or stage id and
    completion time), so that a re-export with changed strokes never reuses the old file.
    """
    h = hashlib.blake2b(digest_size=8)
    if url:
        try:
            split = urllib.parse.urlsplit(url)
            url = urllib.parse.urlunsplit(split._replace(query="", fragment=""))
        except ValueError:  # malformed (``https://[::1/x``): keyed by its text, unsplit
            url = url.split("?", 1)[0]
    for part in (url, *parts):
        h.update((part or "").encode("utf-8", "surrogatepass") + b"\x00")
    return h.hexdigest()


def _brush_name(
    asset_id: str, external_id: str, stage_key: str | None, key: str | None, label: str
) -> str:
    if not key:
        raise ValueError(
            f"{label}: brush masks are named by their content: pass content_key "
            "(ango_torch.assets.prefetch.brush_content_key), never the assetId alone"
        )
    stage = "" if stage_key is None else "@" + _quote(stage_key)
    name = f"{BRUSH_DIR}/{_id_of(asset_id, external_id, label)}{stage}.{_quote(key)}.png"
    what, value = ("assetId", asset_id) if stage_key is None else ("stage id", stage_key)
    _check_lengths(name, what=what, value=value or external_id, label=label)
    return name


def asset_path(
    base: str,
    *,
    asset_id: str,
    external_id: str,
    page: int | None = None,
    kind: Kind = "image",
    stage_key: str | None = None,
    content_key: str | None = None,
    shared: bool = False,
    label: str = "",
) -> str:
    """Where an asset's file lives under ``base`` (a folder, fsspec path or template).

    ``base`` may contain ``{externalId}`` or ``{assetId}``; then it names the image
    itself and brush masks go to ``_brush/`` in the folder before the first
    placeholder.  Returns ``/``-joined paths; ids are checked not to escape ``base``.

    Args:
        base: Folder, fsspec URL or template.
        asset_id: The asset's assetId.
        external_id: The asset's externalId.
        page: Page of a multi-page asset.
        kind: ``"image"`` or ``"brush"``.
        stage_key: A stage snapshot's id (brush masks of stages), else ``None``.
        content_key: Required for brush masks: :func:`content_key` of the mask.
        shared: The externalId is not unique in its export
            (:func:`shared_external_ids`): the image goes to ``_assets/<assetId>/``.
        label: Location for error messages.

    Raises:
        UnsafePathError: ``external_id`` (or ``asset_id``) would escape ``base``.
        ValueError: A bad ``page`` or ``kind``, or a brush mask without ``content_key``.
    """
    label = label or where(asset=external_id)
    if page is not None and (not isinstance(page, int) or page < 0):
        raise ValueError(f"{label}: page must be an int ≥ 0, got {page!r}")
    templated = _PLACEHOLDER.search(base) is not None
    folder = base_folder(base)
    if kind == "brush":
        name = _brush_name(asset_id, external_id, stage_key, content_key, label)
        return f"{folder.rstrip('/')}/{name}"
    if kind != "image":
        raise ValueError(f"{label}: kind must be 'image' or 'brush', got {kind!r}")
    if "{externalId}" in base or not templated:
        _check_component(external_id, what="externalId", label=label)
    # A shared externalId names no single file: it moves under the asset's own folder.
    name = external_id
    if shared:
        name = f"{ASSETS_DIR}/{_id_of(asset_id, external_id, label)}/{external_id}"
    if "{assetId}" in base:  # collision-free already
        _check_component(asset_id, what="assetId", label=label)
        values = {"externalId": external_id, "assetId": asset_id}
    else:
        values = {"externalId": name}
    # One pass: an id holding "{assetId}" or "{externalId}" is never expanded again.
    path = (
        _PLACEHOLDER.sub(lambda m: values[m.group(1)], base)
        if templated
        else f"{base.rstrip('/')}/{name}"
    )
    if page is not None:
        path = f"{path}.pages/{page}"
    _check_lengths(
        path[len(folder.rstrip("/")) :], what="externalId", value=external_id, label=label
    )
    return path


def cache_name(
    asset_id: str,
    external_id: str,
    *,
    page: int | None = None,
    kind: Kind = "image",
    stage_key: str | None = None,
    content_key: str | None = None,
    label: str = "",
) -> str:
    """The file name of an asset's file in ``cache_dir`` (relative, ``/``-joined).

    Images and pages by assetId (an asset's pixels never change; signed URLs do),
    brush masks by :func:`content_key` as in :func:`asset_path`.

    Raises:
        UnsafePathError: An assetId that names no file (``.``, ``..``, over 255 bytes).
    """
    label = label or where(asset=external_id)
    if kind == "brush":
        return _brush_name(asset_id, external_id, stage_key, content_key, label)
    name = _id_of(asset_id, external_id, label)
    name = name if page is None else f"{name}.pages/{page}"
    _check_lengths(name, what="assetId", value=asset_id or external_id, label=label)
    return name


def brush_stage_key(index: ExportIndex, row: int) -> str | None:
    """The layout key of snapshot row ``row``'s brush mask (``stage_key`` of
    :func:`~ango_torch.assets.fetch.asset_path`).

    ``None`` for an asset's exported answer (its first snapshot row, also when a
    ``stage`` selection lands on it); for a stageHistory snapshot its stage id, or its
    stage name where the export gives no id.
    """
    asset = int(index.snap_asset[row])
    if row == int(index.asset_snap_start[asset]):
        return None
    return index.string(index.snap_stage_id[row]) or index.string(index.snap_stage[row])


def brush_content_key(index: ExportIndex, row: int) -> str:
    """What names snapshot row ``row``'s brush mask in the cache and under ``root``.

    :func:`ango_torch.assets.layout.content_key` of the brush URL without its query, with
    the task id and ``updatedAt`` for the exported answer, or the stage id and
    ``completedAt`` for a stageHistory snapshot: a re-export whose strokes changed
    (a new URL path, or a later update) never reads the old mask.
    """
    return content_key(index.string(index.snap_brush[row]), *index.brush_version(row))


def shared_assets(index: ExportIndex) -> npt.NDArray[np.bool_]:
    """Per asset, whether its externalId is shared (up to case) with another asset, so
    that its image is laid out as ``_assets/<assetId>/<externalId>``
    (:func:`ango_torch.assets.layout.shared_external_ids`)."""
    return shared_external_ids(e or "" for e in index.strings.get_many(index.asset_external_id))
