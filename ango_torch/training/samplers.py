"""Batch samplers for training: aspect-ratio groups, DDP shares, class balance.

:class:`GroupedBatchSampler` puts only images of one aspect-ratio group in a batch
(less padding for detection models that batch images of different sizes), gives each
rank of a distributed job a disjoint share with the same number of batches, and can
repeat images of rare classes (:func:`repeat_factors`, LVIS's repeat-factor sampling).
:class:`RepeatFactorSampler` is the class-balanced sampler on its own, for a plain
``batch_size``.  Sizes and labels come from the index (``get_height_and_width``,
``sample_objects``): no image is decoded.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Sampler

from .ranks import get_rank, get_world_size, is_initialized
from .splits import base_indices

__all__ = ["GroupedBatchSampler", "RepeatFactorSampler", "aspect_groups", "repeat_factors"]


def _replicas(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    world = get_world_size() if num_replicas is None else num_replicas
    if rank is None and num_replicas is not None and num_replicas != 1 and not is_initialized():
        # As torch's DistributedSampler: guessing rank 0 would give every process the
        # same share, silently.
        raise ValueError(
            f"rank: num_replicas={num_replicas!r} without a process group needs rank= too"
        )
    rank = get_rank() if rank is None else rank
    if isinstance(world, bool) or not isinstance(world, int) or world < 1:
        raise ValueError(f"num_replicas: expected an int ≥ 1, got {world!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world:
        raise ValueError(f"rank: expected 0 ≤ rank < num_replicas={world}, got {rank!r}")
    return world, rank


def aspect_groups(dataset: Any, *, group_factor: int = 0) -> npt.NDArray[np.int64]:
    """Aspect-ratio group of every position of ``dataset`` (``int64 [len(dataset)]``).

    ``w / h`` is quantized at the bins ``2 ** linspace(-1, 1, 2 * group_factor + 1)``
    (torchvision's detection references, ``create_aspect_ratio_groups``); the default
    ``group_factor=0`` has the one bin ``1``: group 0 is portrait (``w / h < 1``), group 1
    landscape or square.  Sizes from ``get_height_and_width`` (the export's metadata;
    pages of multi-page assets and images without a size read their header; a
    ``Subset`` maps its positions to the base dataset).
    """
    if isinstance(group_factor, bool) or not isinstance(group_factor, int) or group_factor < 0:
        raise ValueError(f"group_factor: expected an int ≥ 0, got {group_factor!r}")
    base, where = base_indices(dataset)
    if not hasattr(base, "get_height_and_width"):
        raise ValueError(
            f"{type(base).__name__} has no get_height_and_width(i): aspect groups need sizes"
        )
    bins = [1.0]
    if group_factor > 0:
        bins = (2.0 ** np.linspace(-1, 1, 2 * group_factor + 1)).tolist()
    out = np.empty(len(where), np.int64)
    for pos, j in enumerate(where):
        h, w = base.get_height_and_width(j)
        out[pos] = bisect.bisect_right(bins, float(w) / float(h))
    return out


def repeat_factors(dataset: Any, *, threshold: float = 0.001) -> npt.NDArray[np.float64]:
    """LVIS repeat factor of every position of ``dataset`` (``float64 [len(dataset)]``).

    For class ``c`` present in a fraction ``f(c)`` of the images,
    ``r(c) = max(1, sqrt(threshold / f(c)))``; an image's factor is the largest ``r(c)``
    over its classes (1 for an image without instances).  Labels from
    ``dataset.sample_objects(i)`` (the index; no decoding).

    Args:
        dataset: an :class:`~ango_torch.AngoDataset` or a ``Subset`` of one.
        threshold: ``t``; classes in less than this fraction of images are repeated.
    """
    if not (isinstance(threshold, (int, float)) and 0 < threshold <= 1):
        raise ValueError(f"threshold: expected a number in (0, 1], got {threshold!r}")
    base, where = base_indices(dataset)
    if not hasattr(base, "sample_objects"):
        raise ValueError(
            f"{type(base).__name__} has no sample_objects(i): repeat factors need labels"
        )
    labels = [np.unique(base.sample_objects(j)[1]) for j in where]
    n = max(len(labels), 1)
    images_with: dict[int, int] = {}
    for present in labels:
        for c in present.tolist():
            images_with[c] = images_with.get(c, 0) + 1
    r_class = {c: max(1.0, math.sqrt(threshold / (k / n))) for c, k in images_with.items()}
    return np.array(
        [max((r_class[c] for c in present.tolist()), default=1.0) for present in labels],
        np.float64,
    )


def _repeat(
    factors: npt.NDArray[np.float64] | None, n: int, g: torch.Generator
) -> npt.NDArray[np.int64]:
    """Positions, each repeated ``floor(r) + (u < frac(r))`` times (stochastic rounding)."""
    if factors is None:
        return np.arange(n, dtype=np.int64)
    u = torch.rand(n, generator=g, dtype=torch.float64).numpy()
    whole = np.floor(factors)
    counts = (whole + (u < factors - whole)).astype(np.int64)
    return np.repeat(np.arange(n, dtype=np.int64), counts)


def _pad(items: list[Any], r: int) -> list[Any]:
    """``items`` extended by repeating its start (cyclically) to a multiple of ``r``."""
    need = -len(items) % r
    if not items or not need:
        return items
    return items + (items * (need // len(items) + 1))[:need]


class GroupedBatchSampler(Sampler[list[int]]):
    """Batches of one aspect-ratio group each, a disjoint share per rank.

    Every epoch (seeded by ``seed + epoch``, the same on every rank): the positions are
    shuffled (repeated first by their repeat factors, with ``repeat_threshold``), cut
    into batches within each aspect group in that order, and the batches shuffled.
    Rank ``r`` of ``R`` takes batches ``r, r + R, r + 2R, ...``, so ranks share no batch
    and, with ``drop_last=False`` and no repeat factors, every position appears once in
    the epoch over all ranks, except for the padding below.

    Equal batch counts per rank: with ``drop_last=False`` the last batch of each group
    may be short, and when the number of batches is not a multiple of ``R`` the first
    batches of the shuffled list are repeated to fill it (at most ``R - 1`` batches,
    whose samples then appear twice in the epoch; ``DistributedSampler`` pads the same
    way); with ``drop_last=True`` short batches are dropped and then the last batches
    (fewer than ``R``), so no sample appears twice and some are left out that epoch.

    Args:
        dataset: an :class:`~ango_torch.AngoDataset` or a ``Subset`` of one (anything
            with ``get_height_and_width(i)``); batches hold positions in it.
        batch_size: samples per batch.
        num_replicas: ranks; default the initialized process group's size, else 1.
        rank: this rank; default the process group's rank, else 0 (required when
            ``num_replicas`` > 1 is given without a process group).
        seed: the shuffling seed (use the same on every rank).
        drop_last: drop short batches (see above).
        group_factor: aspect-ratio bins (see :func:`aspect_groups`); 0 = portrait and
            landscape.
        repeat_threshold: class balance: repeat each image by its LVIS repeat factor
            for this threshold (:func:`repeat_factors`), rounded stochastically each
            epoch; ``None`` (default) = each image once.

    Use ``DataLoader(ds, batch_sampler=sampler, collate_fn=ango_torch.collate_fn)`` and
    call ``sampler.set_epoch(epoch)`` before each epoch.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        *,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
        drop_last: bool = False,
        group_factor: int = 0,
        repeat_threshold: float | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: expected an int ≥ 1, got {batch_size!r}")
        self.num_replicas, self.rank = _replicas(num_replicas, rank)
        self.batch_size = batch_size
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self.group_ids = aspect_groups(dataset, group_factor=group_factor)
        self.factors = (
            None
            if repeat_threshold is None
            else repeat_factors(dataset, threshold=repeat_threshold)
        )
        self._plan: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s shuffle (call with the same value on every rank)."""
        self.epoch = int(epoch)

    def _batches(self) -> list[list[int]]:
        """This rank's batches for the current epoch (computed once per epoch)."""
        if self._plan is not None and self._plan[0] == self.epoch:
            return self._plan[1]
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        pool = _repeat(self.factors, len(self.group_ids), g)
        order = pool[torch.randperm(len(pool), generator=g).numpy()]
        batches: list[list[int]] = []
        for group in np.unique(self.group_ids).tolist():
            members = order[self.group_ids[order] == group].tolist()
            for k in range(0, len(members), self.batch_size):
                batch = members[k : k + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch)
        batches = [batches[k] for k in torch.randperm(len(batches), generator=g).tolist()]
        r = self.num_replicas
        batches = batches[: len(batches) - len(batches) % r] if self.drop_last else _pad(batches, r)
        mine = batches[self.rank :: r]
        self._plan = (self.epoch, mine)
        return mine

    def __iter__(self) -> Iterator[list[int]]:
        yield from (list(b) for b in self._batches())

    def __len__(self) -> int:
        return len(self._batches())


class RepeatFactorSampler(Sampler[int]):
    """Class-balanced sampling (LVIS repeat factors), shuffled, a share per rank.

    Each epoch (seeded by ``seed + epoch``) every position is repeated
    ``floor(r) + Bernoulli(frac(r))`` times for its repeat factor ``r``
    (:func:`repeat_factors`), the list shuffled and padded by repeating its start to a
    multiple of ``num_replicas``; rank ``k`` takes items ``k, k + R, ...``.

    Args:
        dataset: an :class:`~ango_torch.AngoDataset` or a ``Subset`` of one.
        threshold: LVIS's ``t`` (default 0.001).
        num_replicas, rank: default the process group's, else 1 and 0.
        seed: the shuffling seed.
    """

    def __init__(
        self,
        dataset: Any,
        *,
        threshold: float = 0.001,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
    ) -> None:
        self.num_replicas, self.rank = _replicas(num_replicas, rank)
        self.factors = repeat_factors(dataset, threshold=threshold)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s draw and shuffle."""
        self.epoch = int(epoch)

    def _indices(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        pool = _repeat(self.factors, len(self.factors), g)
        order = pool[torch.randperm(len(pool), generator=g).numpy()].tolist()
        r = self.num_replicas
        return _pad(order, r)[self.rank :: r]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices())

    def __len__(self) -> int:
        return len(self._indices())
