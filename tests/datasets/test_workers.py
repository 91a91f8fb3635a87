"""Real DataLoader workers (fork, spawn, forkserver) yield exactly the targets of num_workers=0."""

from __future__ import annotations

import multiprocessing as mp
import pickle
from pathlib import Path

import pytest
import torch
from builders import sample_dataset
from torch.utils.data import DataLoader

import ango_torch


def _dataset() -> ango_torch.AngoDataset:
    ds: ango_torch.AngoDataset = sample_dataset("instance", brush_instances="components")
    return ds


def _samples(ds: ango_torch.AngoDataset, context: str | None = None) -> list:  # type: ignore[type-arg]
    """Every (image, target) of ``ds`` through a DataLoader (batch 2): in this process, or
    with ``context``, in two workers started that way."""
    workers = {} if context is None else {"num_workers": 2, "multiprocessing_context": context}
    loader = DataLoader(ds, batch_size=2, collate_fn=ango_torch.collate_fn, **workers)
    out = []
    for images, targets in loader:
        for image, target in zip(images, targets, strict=True):
            out.append((image, target))
    return out


def test_dataset_pickles() -> None:
    ds = _dataset()
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.classes == ds.classes and len(clone) == len(ds)
    assert torch.equal(clone[1][1]["masks"], ds[1][1]["masks"])


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_workers_match_main_process(method: str) -> None:
    if method not in mp.get_all_start_methods():
        pytest.skip(f"{method} is not available on this platform")
    ds = _dataset()
    serial = _samples(ds)
    parallel = _samples(ds, method)
    assert len(serial) == len(parallel) == len(ds)
    for (im_a, t_a), (im_b, t_b) in zip(serial, parallel, strict=True):
        assert torch.equal(im_a, im_b)
        assert t_a.keys() == t_b.keys()
        for key, value in t_a.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, t_b[key]), key
                assert type(value) is type(t_b[key]), key
            else:
                assert value == t_b[key], key


@pytest.mark.slow
def test_spawn_workers_map_a_persisted_index(tmp_path: Path) -> None:
    """With cache_dir the index is memory-mapped, and pickles as its folder's path."""
    ds = sample_dataset("instance", cache_dir=tmp_path)
    assert ds.export.index.source is not None
    assert len(pickle.dumps(ds.export.index)) < 500
    serial = _samples(ds)
    spawned = _samples(ds, "spawn")
    for (_, t_a), (_, t_b) in zip(serial, spawned, strict=True):
        assert torch.equal(t_a["masks"], t_b["masks"])
