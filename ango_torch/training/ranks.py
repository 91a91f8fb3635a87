"""This process's rank and the world size under ``torch.distributed`` (1 process without).

Used by the batch samplers (each rank takes its share) and re-exported by
:mod:`ango_torch.evaluation.distributed`.
"""

from __future__ import annotations

import torch.distributed as dist

__all__ = ["get_rank", "get_world_size", "is_initialized", "is_main_process"]


def is_initialized() -> bool:
    """Whether ``torch.distributed`` is available and its process group initialized."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's rank, ``0`` without an initialized process group."""
    return dist.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    """The number of processes, ``1`` without an initialized process group."""
    return dist.get_world_size() if is_initialized() else 1


def is_main_process() -> bool:
    """Whether this is rank 0 (always true without distributed)."""
    return get_rank() == 0
