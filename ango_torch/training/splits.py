"""Train/val/test splits that never leak a group across sides: :func:`split`.

Each group (an asset with all its pages or frames, an Ango batch, a metadata value, or
what a callable returns) gets a number in ``[0, 1)`` from a hash of ``(seed, group
key)`` alone, and the split whose cumulative fraction covers that number.  The side of
a group therefore depends on nothing else: the same export and seed give the same
split, and assets added later never move an existing asset to another side.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Subset

from ..export.groups import GroupBy, group_keys, unit_hash
from ..export.index import ExportIndex
from ..export.load import AngoExport, load_export

__all__ = ["SplitCounts", "SplitReport", "SplitResult", "base_indices", "split"]


@dataclass
class SplitCounts:
    """What one side of a split holds.

    ``objects``/``classes``: for a dataset, its instances (objects with a label,
    before transforms); for an export, the objects of each asset's exported answer,
    every tool, by title.
    """

    groups: int = 0
    assets: int = 0
    samples: int = 0
    objects: int = 0
    classes: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able counts."""
        return {
            "groups": self.groups,
            "assets": self.assets,
            "samples": self.samples,
            "objects": self.objects,
            "classes": dict(sorted(self.classes.items())),
        }


@dataclass
class SplitReport:
    """Per-split counts; ``ungrouped``: assets that lacked the group key (no batch, no
    such metadata key, the callable returned ``None``) and are groups of their own."""

    by: str
    seed: int
    stratify: bool
    splits: dict[str, SplitCounts]
    ungrouped: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able report."""
        return {
            "by": self.by,
            "seed": self.seed,
            "stratify": self.stratify,
            "ungrouped": self.ungrouped,
            "splits": {k: v.to_dict() for k, v in self.splits.items()},
        }

    def summary(self) -> str:
        """A small table: one row per split, then the class counts."""
        names = list(self.splits)
        width = max([len(n) for n in names] + [7])
        lines = [f"{'split':<{width}}  {'groups':>7} {'assets':>7} {'samples':>7} {'objects':>8}"]
        for n, c in self.splits.items():
            lines.append(f"{n:<{width}}  {c.groups:>7} {c.assets:>7} {c.samples:>7} {c.objects:>8}")
        titles = sorted(set().union(*(c.classes for c in self.splits.values())))
        if titles:
            tw = max(len(t) for t in titles)
            lines.append(f"{'class':<{tw}}  " + " ".join(f"{n:>{width}}" for n in names))
            for t in titles:
                counts = " ".join(f"{self.splits[n].classes[t]:>{width}}" for n in names)
                lines.append(f"{t:<{tw}}  {counts}")
        if self.ungrouped:
            lines.append(f"{self.ungrouped} assets lacked the group key: each is its own group")
        return "\n".join(lines)


class SplitResult(dict[str, Any]):
    """``{split name: Subset}`` (or ``{name: [asset positions]}`` for an export), a
    plain dict, with the counts in :attr:`report`."""

    report: SplitReport


def base_indices(dataset: Any) -> tuple[Any, list[int]]:
    """``(base dataset, base index of each position)``, through nested ``Subset``\\ s."""
    if isinstance(dataset, Subset):
        base, inner = base_indices(dataset.dataset)
        return base, [inner[int(j)] for j in dataset.indices]
    return dataset, list(range(len(dataset)))


def _check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(fractions, Mapping) or not fractions:
        raise ValueError(f"fractions must be a non-empty {{name: fraction}}, got {fractions!r}")
    out: dict[str, float] = {}
    for name, f in fractions.items():
        if not isinstance(name, str) or isinstance(f, bool) or not isinstance(f, (int, float)):
            raise ValueError(f"fractions: expected str → number, got {name!r}: {f!r}")
        if not (math.isfinite(f) and f >= 0):
            raise ValueError(f"fractions[{name!r}]: expected a number ≥ 0, got {f!r}")
        out[name] = float(f)
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {sum(out.values())!r} for {fractions!r}")
    return out


def _side(u: float, names: list[str], cum: list[float]) -> str:
    for name, c in zip(names, cum, strict=True):
        if u < c:
            return name
    return names[-1]  # rounding: the cumulative sum may end a hair below 1


def _answer_titles(idx: ExportIndex, a: int) -> list[str]:
    s = int(idx.asset_snap_start[a])
    rows = idx.obj_title[int(idx.snap_obj_start[s]) : int(idx.snap_obj_end[s])]
    return [idx.titles[int(t)] for t in rows.tolist()]


def split(
    dataset_or_export: Any,
    fractions: Mapping[str, float],
    *,
    by: GroupBy = "asset",
    seed: int = 0,
    stratify: bool = False,
) -> SplitResult:
    """Split a dataset (or an export) so that no group straddles two splits.

    Args:
        dataset_or_export: an :class:`~ango_torch.AngoDataset` (or a ``Subset`` of
            one, or any dataset with ``export`` and ``asset_index(i)``), or an
            export (anything :func:`~ango_torch.load_export` accepts).
        fractions: ``{name: fraction}``, summing to 1, e.g. ``{"train": 0.8, "val": 0.2}``.
        by: what stays together: ``"asset"`` (every page/sample of an asset),
            ``"video"`` (every frame of a video asset: the asset), ``"batch"`` (Ango
            batches; assets sharing any batch are one group), ``"metadata:<key>"``
            (assets with equal ``metadata[key]``), or a callable ``Asset -> key``.
            Assets lacking the key are groups of their own (``report.ungrouped``).
        seed: changes every group's hash, hence the split.
        stratify: balance classes: each group is filed under its rarest class (by
            the number of groups holding it), and within each class the groups,
            ordered by hash, are dealt out by systematic sampling, so every class is
            split in the given fractions to within one group.  Deterministic for the
            same export and seed, but not stable when the export grows.

    Returns:
        a :class:`SplitResult`: ``{name: torch.utils.data.Subset}`` for a dataset
        (sample indices in order), ``{name: [asset positions]}`` for an export, with
        per-split group, asset, sample, object and class counts in ``.report``.

    Raises:
        ValueError: bad ``fractions`` or ``by``.
    """
    frac = _check_fractions(fractions)
    names = list(frac)
    cum = list(np.cumsum([frac[n] for n in names]).tolist())
    is_dataset = isinstance(dataset_or_export, torch.utils.data.Dataset) and not isinstance(
        dataset_or_export, AngoExport
    )
    if is_dataset:
        base, where = base_indices(dataset_or_export)
        if not hasattr(base, "export") or not hasattr(base, "asset_index"):
            raise ValueError(
                f"split: expected an AngoDataset (with .export and .asset_index), "
                f"got {type(base).__name__}"
            )
        idx: ExportIndex = base.export.index
        sample_asset = [int(base.asset_index(j)) for j in where]
        classes = list(getattr(base, "classes", []))
        sample_titles = [
            [classes[int(k)] for k in base.sample_objects(j)[1].tolist()]
            if hasattr(base, "sample_objects")
            else []
            for j in where
        ]
    else:
        if not isinstance(dataset_or_export, (AngoExport, str, os.PathLike, Sequence)):
            raise ValueError(
                f"split: expected a dataset or an export, got {type(dataset_or_export).__name__}"
            )
        idx = load_export(dataset_or_export).index
        sample_asset = list(range(len(idx)))
        sample_titles = [_answer_titles(idx, a) for a in sample_asset]
    assets = sorted(set(sample_asset))
    keys, ungrouped = group_keys(idx, assets, by)
    group_titles: dict[str, set[str]] = {}
    for a, titles in zip(sample_asset, sample_titles, strict=True):
        group_titles.setdefault(keys[a], set()).update(titles)
    side = (
        _stratified_sides(group_titles, names, cum, seed)
        if stratify
        else {g: _side(unit_hash(seed, g), names, cum) for g in group_titles}
    )
    members: dict[str, list[int]] = {n: [] for n in names}
    counts = {n: SplitCounts() for n in names}
    for s in side.values():
        counts[s].groups += 1
    for a in assets:
        counts[side[keys[a]]].assets += 1
    for pos, (a, titles) in enumerate(zip(sample_asset, sample_titles, strict=True)):
        s = side[keys[a]]
        members[s].append(pos)
        counts[s].samples += 1
        counts[s].objects += len(titles)
        counts[s].classes.update(titles)
    result = SplitResult(
        {n: Subset(dataset_or_export, members[n]) for n in names} if is_dataset else members
    )
    label = by if isinstance(by, str) else getattr(by, "__name__", repr(by))
    result.report = SplitReport(
        by=label, seed=seed, stratify=stratify, splits=counts, ungrouped=ungrouped
    )
    return result


def _stratified_sides(
    group_titles: Mapping[str, set[str]], names: list[str], cum: list[float], seed: int
) -> dict[str, str]:
    """Systematic sampling of the groups within each stratum (their rarest class)."""
    holders: Counter[str] = Counter()
    for titles in group_titles.values():
        holders.update(titles)
    strata: dict[str, list[str]] = {}
    for g, titles in group_titles.items():
        stratum = min(titles, key=lambda t: (holders[t], t)) if titles else ""
        strata.setdefault(stratum, []).append(g)
    side: dict[str, str] = {}
    for stratum, groups in strata.items():
        groups.sort(key=lambda g: (unit_hash(seed, g), g))
        start = unit_hash(seed, "stratum\x00" + stratum)
        n = len(groups)
        for r, g in enumerate(groups):
            side[g] = _side((r + start) / n, names, cum)
    return side
