"""Shared fixtures; the export builders live in ``builders.py``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from builders import make_export


@pytest.fixture
def export_list() -> list[dict[str, Any]]:
    return make_export()


@pytest.fixture
def two_gloo_processes(tmp_path: Path) -> Callable[..., None]:
    """Runs ``worker(rank, 2, init_method, *args)`` in two spawned processes that meet at a
    file rendezvous under ``tmp_path``; skips where ``torch.distributed`` is unavailable."""

    def run(worker: Callable[..., None], *args: Any) -> None:
        import torch
        import torch.multiprocessing as mp

        if not torch.distributed.is_available():
            pytest.skip("torch.distributed is not available")
        init = f"file://{os.fspath(tmp_path / 'rendezvous')}"
        mp.spawn(worker, args=(2, init, *args), nprocs=2, join=True)

    return run
