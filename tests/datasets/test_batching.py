"""What a sample costs the main process: one shared buffer per target, untouched pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from builders import make_asset, make_box, make_polygon, write_images

import ango_torch
from ango_torch.datasets.batching import shared_views, worker_tensor

MiB = 2**20


def _rss_shmem() -> int:
    """Resident shared-memory bytes of this process (Linux ``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssShmem:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssShmem in /proc/self/status")


class _Probe(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> dict[str, Any]:
        before = _rss_shmem()
        t = worker_tensor((64 * MiB,), torch.uint8)
        grown = _rss_shmem() - before
        return {"grown": grown, "shared": t.untyped_storage().is_shared(), "t": t}


def test_worker_tensor_pages_are_resident_before_the_main_process_reads_them() -> None:
    # Reference: the kernel's count of resident shared pages. A page the worker leaves
    # untouched would be allocated and cleared by the main process when it pins or
    # copies the masks, one fault per 4 KiB, on the process that must not wait.
    loader = torch.utils.data.DataLoader(_Probe(), num_workers=1, collate_fn=lambda b: b)
    [[probe]] = list(loader)
    assert probe["shared"] and probe["grown"] >= 64 * MiB, probe
    assert int(probe["t"].sum()) == 0


def test_shared_views_are_aligned_zeroed_views_of_one_buffer() -> None:
    a, b, c, d = shared_views(
        [
            ((3,), torch.uint8),
            ((2, 4), torch.float32),
            ((0, 5, 6), torch.uint8),
            ((3,), torch.int64),
        ]
    )
    assert [tuple(v.shape) for v in (a, b, c, d)] == [(3,), (2, 4), (0, 5, 6), (3,)]
    assert len({v.untyped_storage().data_ptr() for v in (a, b, c, d)}) == 1
    assert all(v.data_ptr() % 8 == 0 for v in (a, b, d))
    assert all(int(v.abs().sum()) == 0 for v in (a, b, c, d))


def test_a_target_is_one_storage_in_workers_and_equal_to_the_main_process(
    tmp_path: Path,
) -> None:
    assets = [
        make_asset([make_polygon([[1, 1], [9, 1], [5, 8]]), make_box(2, 2, 4, 3)]),
        make_asset([]),
    ]
    root = write_images(tmp_path / "images", assets)
    for task in ("instance", "detection"):
        ds = ango_torch.AngoDataset(assets, task=task, root=root)  # type: ignore[arg-type]
        loader = torch.utils.data.DataLoader(
            ds, batch_size=2, num_workers=1, collate_fn=ango_torch.collate_fn
        )
        [(images, targets)] = list(loader)
        for i, t in enumerate(targets):
            tensors = [v for v in t.values() if isinstance(v, torch.Tensor)]
            assert len(tensors) == (5 if task == "instance" else 4)
            # One segment per sample: a single storage for the image, boxes, labels, ...
            tensors.append(images[i])
            assert len({v.untyped_storage().data_ptr() for v in tensors}) == 1
            assert torch.equal(images[i], ds[i][0]) and type(images[i]) is type(ds[i][0])
            # Expected values: the same sample loaded in this process (no worker).
            expected = ds[i][1]
            for key, value in expected.items():
                if isinstance(value, torch.Tensor):
                    assert value.dtype == t[key].dtype and torch.equal(value, t[key]), key
                    assert type(value) is type(t[key]), key
