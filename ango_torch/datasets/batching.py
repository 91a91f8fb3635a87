"""Batches of samples: the detection-style collate function and worker-shared tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["collate_fn", "worker_tensor"]


def worker_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A zeroed tensor, in shared memory when made in a DataLoader worker.

    Instance masks are the biggest part of a sample (12 masks of 1024×768 are 9.4 MB);
    built in shared memory, they reach the main process without the copy the
    DataLoader otherwise makes to move a worker's tensors into shared memory.
    """
    if torch.utils.data.get_worker_info() is None or not hasattr(
        torch.UntypedStorage, "_new_shared"
    ):
        return torch.zeros(shape, dtype=dtype)
    nbytes = max(1, int(np.prod(shape)) * dtype.itemsize)
    storage: Any = torch.UntypedStorage._new_shared(nbytes)  # type: ignore[no-untyped-call]
    strides = [int(np.prod(shape[k + 1 :])) for k in range(len(shape))]
    out: torch.Tensor = torch.empty(0, dtype=dtype).set_(storage, 0, shape, strides)
    return out.zero_()


def collate_fn(batch: Sequence[tuple[Any, Any]]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """``[(image, target), ...]`` → ``(images, targets)`` tuples, for detection models."""
    return tuple(zip(*batch, strict=True)) if batch else ((), ())  # type: ignore[return-value]
