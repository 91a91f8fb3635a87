"""Per-asset keys read from the index: batches, metadata, group keys and filters.

Used by :func:`ango_torch.split` (which assets must stay together) and by
``AngoDataset(batches=..., where=...)`` (which assets to keep).  Pure numpy and the
index; no torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..records import Asset
from .index import ExportIndex

__all__ = [
    "GroupBy",
    "Where",
    "asset_batches",
    "asset_key",
    "asset_metadata",
    "filter_assets",
    "group_keys",
    "unit_hash",
]

GroupBy = str | Callable[[Asset], Any]
Where = Mapping[str, Any] | Callable[[Asset], bool]

FILTERED_BATCH = "not in batches="
"""Reason (in ``DatasetReport.filtered_assets``) of assets in none of the batches asked."""
FILTERED_WHERE = "not matched by where="
"""Reason (in ``DatasetReport.filtered_assets``) of assets that ``where=`` left out."""


def asset_key(idx: ExportIndex, a: int) -> str:
    """The asset's identity: its assetId, else its externalId, else ``#<position>``."""
    return idx.string(idx.asset_asset_id[a]) or idx.string(idx.asset_external_id[a]) or f"#{a}"


def asset_batches(idx: ExportIndex, a: int) -> tuple[str, ...]:
    """The Ango ``batches`` of asset ``a`` (names as exported)."""
    return tuple(str(b) for b in idx.extra(int(idx.asset_extra[a])).get("b", ()))


def asset_metadata(idx: ExportIndex, a: int) -> Mapping[str, Any]:
    """The ``metadata`` object of asset ``a``."""
    meta = idx.extra(int(idx.asset_extra[a])).get("m") or {}
    return meta if isinstance(meta, Mapping) else {}


def unit_hash(seed: int, key: str) -> float:
    """A uniform number in ``[0, 1)`` from ``(seed, key)`` alone (BLAKE2b, 64 bits).

    Depends on nothing else (not on the other keys, their number or order), so a
    group keeps its number, and its side of a split, when the export grows.
    """
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _value_key(value: Any) -> str:
    """A canonical text for a group value (metadata values may be any JSON)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=repr)


def group_keys(idx: ExportIndex, assets: Sequence[int], by: GroupBy) -> tuple[dict[int, str], int]:
    """Group key of each asset in ``assets``, and how many fell back to their own group.

    ``by``: ``"asset"`` / ``"video"`` (the asset: every page, frame and sample of it),
    ``"batch"`` (assets that share any Ango batch, transitively, are one group, named by
    its smallest batch), ``"metadata:<key>"`` (the value of ``metadata[key]``), or a
    callable ``Asset -> key``.  An asset without a batch, without the metadata key, or
    for which the callable returns ``None`` is a group of its own (counted).
    """
    own = {a: "asset\x00" + asset_key(idx, a) for a in assets}
    if by in ("asset", "video"):
        return own, 0
    keys: dict[int, str] = {}
    if by == "batch":
        parent: dict[str, str] = {}

        def find(b: str) -> str:
            while parent[b] != b:
                parent[b] = parent[parent[b]]
                b = parent[b]
            return b

        per_asset = {a: asset_batches(idx, a) for a in assets}
        for names in per_asset.values():
            for b in names:
                parent.setdefault(b, b)
            for b in names[1:]:
                ra, rb = find(names[0]), find(b)
                if ra != rb:  # union under the smaller name, so the root is the minimum
                    parent[max(ra, rb)] = min(ra, rb)
        for a, names in per_asset.items():
            if names:
                keys[a] = "batch\x00" + find(names[0])
    elif isinstance(by, str) and by.startswith("metadata:") and len(by) > len("metadata:"):
        name = by[len("metadata:") :]
        for a in assets:
            meta = asset_metadata(idx, a)
            if name in meta and meta[name] is not None:
                keys[a] = "metadata\x00" + _value_key(meta[name])
    elif callable(by):
        for a in assets:
            value = by(idx.asset(a))
            if value is not None:
                keys[a] = "key\x00" + _value_key(value)
    else:
        raise ValueError(
            "by must be 'asset', 'batch', 'metadata:<key>', 'video' or a callable "
            f"Asset -> key, got {by!r}"
        )
    ungrouped = sum(a not in keys for a in assets)
    return {a: keys.get(a, own[a]) for a in assets}, ungrouped


def _matches(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
    for name, wanted in spec.items():
        if name not in meta:
            return False
        value = meta[name]
        if isinstance(wanted, (list, tuple, set, frozenset)):
            if value not in wanted:
                return False
        elif value != wanted:
            return False
    return True


def filter_assets(
    idx: ExportIndex,
    rows: npt.NDArray[np.int32],
    *,
    batches: Sequence[str] | None,
    where: Where | None,
) -> tuple[npt.NDArray[np.int32], dict[str, list[int]]]:
    """``rows`` with assets left out by ``batches=`` / ``where=`` set to ``-1``.

    Args:
        idx: the export's index.
        rows: snapshot row per asset (``-1``: no sample already; left as is).
        batches: keep assets in at least one of these Ango batches.
        where: keep assets whose ``metadata`` matches every ``{key: value}`` (a list,
            tuple or set of values: any of them), or for which ``where(asset)`` is true.

    Returns:
        the new rows, and ``{reason: [asset positions]}`` of the assets left out.

    Raises:
        ValueError: ``batches`` is a bare string, or names a batch no asset has.
    """
    out: npt.NDArray[np.int32] = np.array(rows, np.int32)
    left: dict[str, list[int]] = {}
    if batches is not None:
        if isinstance(batches, str) or not all(isinstance(b, str) for b in batches):
            raise ValueError(f"batches must be a list of batch names, got {batches!r}")
        wanted = set(batches)
        present: set[str] = set()
        for a in range(len(idx)):
            names = asset_batches(idx, a)
            present.update(names)
            if out[a] >= 0 and not wanted.intersection(names):
                left.setdefault(FILTERED_BATCH, []).append(a)
                out[a] = -1
        unknown = sorted(wanted - present)
        if unknown:
            raise ValueError(
                f"batches={list(batches)!r}: no asset is in {unknown}; batches present: "
                f"{sorted(present) or 'none'}"
            )
    if where is not None:
        if not (callable(where) or isinstance(where, Mapping)):
            raise ValueError(
                f"where must be a mapping {{metadata key: value}} or a callable, got {where!r}"
            )
        for a in np.flatnonzero(out >= 0).tolist():
            keep = (
                _matches(asset_metadata(idx, a), where)
                if isinstance(where, Mapping)
                else bool(where(idx.asset(a)))
            )
            if not keep:
                left.setdefault(FILTERED_WHERE, []).append(a)
                out[a] = -1
    return out, left
