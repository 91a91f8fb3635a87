"""Helpers for evaluating on several processes with ``torch.distributed``.

:class:`EvalSampler` shards a dataset into contiguous, non-padded pieces, one per rank,
so that every sample is evaluated exactly once (``DistributedSampler`` pads the last
shard with repeated samples, which biases COCO AP and mIoU).  Each rank predicts its
shard; :func:`gather_predictions` merges the per-image results on every rank.

Every function works without an initialized process group, as a single process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from ..training.ranks import get_rank, get_world_size, is_initialized, is_main_process
from .metrics import EvaluationError

__all__ = ["EvalSampler", "gather_predictions", "get_rank", "get_world_size", "is_main_process"]


class EvalSampler(Sampler[int]):
    """Rank ``r`` of ``world_size`` gets the contiguous slice ``[start_r, end_r)``.

    Shard sizes differ by at most one (the first ``dataset_len % world_size`` ranks get
    one more); a rank may get none.  Over all ranks every index appears exactly once.

    Args:
        dataset_len: ``len(dataset)``.
        rank: this rank; default :func:`get_rank`.
        world_size: default :func:`get_world_size`.
    """

    def __init__(
        self, dataset_len: int, *, rank: int | None = None, world_size: int | None = None
    ) -> None:
        world_size = get_world_size() if world_size is None else world_size
        rank = get_rank() if rank is None else rank
        if isinstance(dataset_len, bool) or not isinstance(dataset_len, int) or dataset_len < 0:
            raise EvaluationError(f"dataset_len: expected an int ≥ 0, got {dataset_len!r}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise EvaluationError(
                f"rank/world_size: expected 0 ≤ rank < world_size, got rank={rank}, "
                f"world_size={world_size}"
            )
        base, extra = divmod(dataset_len, world_size)
        self.start = rank * base + min(rank, extra)
        self.end = self.start + base + (rank < extra)
        self.rank = rank
        self.world_size = world_size
        self.dataset_len = dataset_len

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.end))

    def __len__(self) -> int:
        return self.end - self.start


def _to_cpu(value: Any) -> Any:
    """Tensors (also inside dicts, lists, tuples) moved to the CPU before pickling, so
    that no rank unpickles another rank's CUDA tensors onto that rank's device."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    return value


def gather_predictions(local: dict[int, Any]) -> dict[int, Any]:
    """Merge every rank's ``{image_id: prediction}`` on every rank.

    A collective: all ranks must call it.  Tensors are moved to the CPU first.  Without
    an initialized process group, returns a copy of ``local``.

    Raises:
        EvaluationError: an image id was predicted on more than one rank (e.g. a
            ``DistributedSampler`` padded the last shard; use :class:`EvalSampler`).
    """
    if not is_initialized():
        return dict(local)
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, _to_cpu(dict(local)))
    merged: dict[int, Any] = {}
    ranks: dict[int, list[int]] = {}
    for rank, part in enumerate(parts):
        for image_id, value in part.items():
            merged[image_id] = value
            ranks.setdefault(image_id, []).append(rank)
    dupes = {i: r for i, r in ranks.items() if len(r) > 1}
    if dupes:
        shown = ", ".join(
            f"{i} (ranks {', '.join(map(str, r))})" for i, r in list(dupes.items())[:5]
        )
        raise EvaluationError(
            f"gather_predictions: expected each image id on one rank, got {len(dupes)} "
            f"duplicated: {shown}; shard with EvalSampler, not DistributedSampler"
        )
    return merged
