"""Batches of samples: the detection-style collate function and worker-shared tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["collate_fn", "shared_views", "worker_tensor"]


def worker_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A zeroed tensor, in shared memory when made in a DataLoader worker.

    Instance masks are the biggest part of a sample (12 masks of 1024×768 are 9.4 MB);
    built in shared memory, they reach the main process without the copy the
    DataLoader otherwise makes to move a worker's tensors into shared memory.

    In a worker, every page is written (zeroed) here, although a new shared-memory
    segment reads as zeros anyway: a page the worker never touched would be allocated
    and cleared by whichever process first reads it, which for masks is the main
    process (``pin_memory``, ``.to(device)``), one 4 KiB fault at a time (measured:
    main-process CPU per batch 237 ms instead of 139 with 8 workers). The workers run
    in parallel; the main process is the one that must not wait.
    """
    [out] = shared_views([(shape, dtype)])
    return out


def shared_views(specs: Sequence[tuple[tuple[int, ...], torch.dtype]]) -> list[torch.Tensor]:
    """Zeroed tensors of the given ``(shape, dtype)``, all views of one byte buffer.

    The buffer is in shared memory in a DataLoader worker (see :func:`worker_tensor`),
    so a sample whose tensors are views of it reaches the main process as one
    shared-memory segment: the main process receives one file descriptor per buffer,
    not per tensor (~0.1 ms each on a busy machine). Each view starts at a multiple of
    8 bytes.
    """
    starts, nbytes = [], 0
    for shape, dtype in specs:
        nbytes = -(-nbytes // 8) * 8
        starts.append(nbytes)
        nbytes += int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    nbytes = max(8, nbytes)
    buf: torch.Tensor
    if torch.utils.data.get_worker_info() is not None and hasattr(
        torch.UntypedStorage, "_new_shared"
    ):
        storage: Any = torch.UntypedStorage._new_shared(nbytes)  # type: ignore[no-untyped-call]
        buf = torch.empty(0, dtype=torch.uint8).set_(storage, 0, (nbytes,), (1,))
        buf.zero_()  # fault every page in here, not in the main process (see worker_tensor)
    else:
        buf = torch.from_numpy(np.zeros(nbytes, np.uint8))
    out = []
    for (shape, dtype), start in zip(specs, starts, strict=True):
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        out.append(buf[start : start + size].view(dtype).view(shape))
    return out


def collate_fn(batch: Sequence[tuple[Any, Any]]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """``[(image, target), ...]`` → ``(images, targets)`` tuples, for detection models."""
    return tuple(zip(*batch, strict=True)) if batch else ((), ())  # type: ignore[return-value]
