"""GroupedBatchSampler and RepeatFactorSampler: aspect groups, 2-rank shares, balance.

Expected values are hand-counted from the sizes and classes the tests give the raw
assets (landscape 17×11, portrait 11×17), not taken from the package's index.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from builders import make_asset, make_polygon, write_images
from torch.utils.data import DataLoader, Subset

import ango_torch
from ango_torch.training.samplers import aspect_groups, repeat_factors

SQUARE = [[1, 1], [6, 1], [6, 5], [1, 5]]


def _raw(landscape: int, portrait: int) -> list[dict[str, Any]]:
    """``landscape`` 17×11 assets then ``portrait`` 11×17 ones, interleaved."""
    shapes = ["L"] * landscape + ["P"] * portrait
    shapes = shapes[::2] + shapes[1::2]  # mix them in the export order
    return [
        make_asset(
            [make_polygon(SQUARE)], width=17 if s == "L" else 11, height=11 if s == "L" else 17
        )
        for s in shapes
    ]


def _is_landscape(raw: list[dict[str, Any]], i: int) -> bool:
    meta = raw[i]["metadata"]
    return bool(meta["width"] >= meta["height"])


def _epoch(ds: Any, **kw: Any) -> list[list[list[int]]]:
    """Batches of each of 2 simulated ranks."""
    return [
        list(ango_torch.GroupedBatchSampler(ds, 3, num_replicas=2, rank=r, **kw)) for r in (0, 1)
    ]


def test_two_ranks_every_index_once_equal_counts_one_group_per_batch() -> None:
    # 12 landscape → 4 batches of 3, 12 portrait → 4 batches: 8 batches, 4 per rank
    raw = _raw(12, 12)
    ds = ango_torch.AngoDataset(raw, task="detection")
    ranks = _epoch(ds, seed=5)
    assert [len(b) for b in ranks] == [4, 4]
    flat = [i for batches in ranks for b in batches for i in b]
    assert sorted(flat) == list(range(24))  # each index exactly once over both ranks
    for batches in ranks:
        for b in batches:
            assert len(b) == 3 and len({_is_landscape(raw, i) for i in b}) == 1


def test_two_ranks_padding_when_batches_do_not_divide() -> None:
    # 13 landscape → 3,3,3,3,1 (5 batches); 10 portrait → 3,3,3,1 (4): 9 batches, so one
    # batch is repeated to make 10, 5 per rank; its indices are the only ones seen twice
    raw = _raw(13, 10)
    ds = ango_torch.AngoDataset(raw, task="detection")
    for seed in range(3):
        ranks = _epoch(ds, seed=seed)
        assert [len(b) for b in ranks] == [5, 5]
        batches = [b for r in ranks for b in r]
        counts = Counter(i for b in batches for i in b)
        assert set(counts) == set(range(23))
        twice = {i for i, n in counts.items() if n == 2}
        assert max(counts.values()) <= 2 and twice and any(set(b) == twice for b in batches)
        unique = [b for k, b in enumerate(batches) if b not in batches[:k]]
        assert sorted(len(b) for b in unique) == [1, 1] + [3] * 7
        for b in batches:
            assert len({_is_landscape(raw, i) for i in b}) == 1


def test_drop_last_drops_short_batches_and_the_remainder() -> None:
    # 13 landscape → 4 full batches, 10 portrait → 3 full: 7, minus 1 for 2 ranks = 6
    raw = _raw(13, 10)
    ds = ango_torch.AngoDataset(raw, task="detection")
    ranks = _epoch(ds, seed=0, drop_last=True)
    assert [len(b) for b in ranks] == [3, 3]
    flat = [i for r in ranks for b in r for i in b]
    assert len(flat) == 18 == len(set(flat))
    assert all(len(b) == 3 for r in ranks for b in r)


def test_set_epoch_reshuffles_deterministically() -> None:
    raw = _raw(12, 12)
    ds = ango_torch.AngoDataset(raw, task="detection")
    a = ango_torch.GroupedBatchSampler(ds, 3, num_replicas=2, rank=0, seed=1)
    b = ango_torch.GroupedBatchSampler(ds, 3, num_replicas=2, rank=0, seed=1)
    first = list(a)
    a.set_epoch(1)
    second = list(a)
    assert second != first and len(second) == len(first)
    b.set_epoch(1)
    assert list(b) == second  # same seed and epoch: same batches, on a fresh sampler
    a.set_epoch(0)
    assert list(a) == first
    other = ango_torch.GroupedBatchSampler(ds, 3, num_replicas=2, rank=1, seed=1)
    other.set_epoch(1)
    assert sorted(i for bt in [*second, *other] for i in bt) == list(range(24))


def test_defaults_follow_the_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    ds = ango_torch.AngoDataset(_raw(12, 12), task="detection")
    single = ango_torch.GroupedBatchSampler(ds, 3)
    assert (single.num_replicas, single.rank, len(single)) == (1, 0, 8)
    import ango_torch.training.samplers as samplers

    monkeypatch.setattr(samplers, "get_world_size", lambda: 2)
    monkeypatch.setattr(samplers, "get_rank", lambda: 1)
    s = ango_torch.GroupedBatchSampler(ds, 3)
    assert (s.num_replicas, s.rank) == (2, 1)
    assert list(s) == list(ango_torch.GroupedBatchSampler(ds, 3, num_replicas=2, rank=1))
    with pytest.raises(ValueError, match="rank"):
        ango_torch.GroupedBatchSampler(ds, 3, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="batch_size"):
        ango_torch.GroupedBatchSampler(ds, 0)


def test_subset_positions_and_group_factor() -> None:
    raw = _raw(6, 6)
    raw.append(make_asset([make_polygon(SQUARE)], width=40, height=10))
    raw.append(make_asset([make_polygon(SQUARE)], width=10, height=40))
    ds = ango_torch.AngoDataset(raw, task="detection")
    # torchvision references' bins for factor 1: 2 ** [-1, 0, 1] = [0.5, 1, 2];
    # 17/11 = 1.55 → 2, 11/17 = 0.65 → 1, 40/10 = 4 → 3, 10/40 = 0.25 → 0
    want = [2 if _is_landscape(raw, i) else 1 for i in range(12)] + [3, 0]
    assert aspect_groups(ds, group_factor=1).tolist() == want
    sub = Subset(ds, [12, 13, 0, 1, 2, 3])
    groups = [want[j] for j in sub.indices]
    batches = list(ango_torch.GroupedBatchSampler(sub, 2, group_factor=1))
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert all(len({groups[i] for i in b}) == 1 for b in batches)


def test_a_dataloader_with_the_batch_sampler(tmp_path: Path) -> None:
    raw = _raw(5, 4)
    write_images(tmp_path / "images", raw)
    ds = ango_torch.AngoDataset(raw, task="detection", root=tmp_path / "images")
    sampler = ango_torch.GroupedBatchSampler(ds, 2, num_replicas=1, rank=0)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=ango_torch.collate_fn)
    assert len(loader) == 5  # landscape 2,2,1 + portrait 2,2
    seen = []
    for images, targets in loader:
        # the decoded images: one orientation per batch
        assert len({img.shape[-1] > img.shape[-2] for img in images}) == 1
        seen += [t["image_id"] for t in targets]
    assert sorted(seen) == list(range(9))


def _balanced() -> tuple[list[dict[str, Any]], Any]:
    # 10 images with a car, the last also with a bike: f(car) = 1, f(bike) = 0.1
    raw = [make_asset([make_polygon(SQUARE)]) for _ in range(9)]
    raw.append(make_asset([make_polygon(SQUARE), make_polygon(SQUARE, "bike")]))
    return raw, ango_torch.AngoDataset(raw, task="detection")


def test_repeat_factors_follow_lvis() -> None:
    _, ds = _balanced()
    # r(c) = max(1, sqrt(t / f(c))): t = 0.4 gives r(car) = 1, r(bike) = sqrt(4) = 2
    assert repeat_factors(ds, threshold=0.4).tolist() == [1.0] * 9 + [2.0]
    # t = 0.001: every class is frequent enough, nothing repeated
    assert repeat_factors(ds, threshold=0.001).tolist() == [1.0] * 10


def test_repeat_factor_sampler_two_ranks_and_stochastic_rounding() -> None:
    _, ds = _balanced()
    # t = 0.4: image 9 twice, the others once: 11 items, padded to 12, 6 per rank
    parts = [list(ango_torch.RepeatFactorSampler(ds, threshold=0.4, num_replicas=2, rank=r))
             for r in (0, 1)]  # fmt: skip
    assert [len(p) for p in parts] == [6, 6]
    counts = Counter(parts[0] + parts[1])
    assert counts[9] >= 2 and sum(counts.values()) == 12 and set(counts) == set(range(10))
    # t = 0.225: r(bike) = sqrt(2.25) = 1.5 → image 9 once or twice, 1.5 on average
    s = ango_torch.RepeatFactorSampler(ds, threshold=0.225, num_replicas=1, rank=0)
    draws = []
    for epoch in range(400):
        s.set_epoch(epoch)
        draws.append(list(s).count(9))
    assert set(draws) == {1, 2} and abs(sum(draws) / 400 - 1.5) < 0.1  # sd 0.025


def test_grouped_sampler_with_repeat_factors() -> None:
    _, ds = _balanced()
    s = ango_torch.GroupedBatchSampler(ds, 4, num_replicas=1, rank=0, repeat_threshold=0.4)
    flat = [i for b in s for i in b]
    # all 17×11: one group; image 9 twice (r = 2), the others once
    assert Counter(flat) == Counter({**dict.fromkeys(range(9), 1), 9: 2})
    assert sorted(len(b) for b in s) == [3, 4, 4]  # 11 draws in batches of 4


def _ddp_worker(rank: int, world_size: int, init: str, raw: list[dict[str, Any]]) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world_size)
    try:
        ds = ango_torch.AngoDataset(raw, task="detection")
        sampler = ango_torch.GroupedBatchSampler(ds, 3, seed=7)  # rank/world from the group
        sampler.set_epoch(2)
        parts: list[Any] = [None] * world_size
        dist.all_gather_object(parts, list(sampler))
        assert (sampler.num_replicas, sampler.rank) == (2, rank)
        assert len(parts[0]) == len(parts[1]) == 4  # 8 batches of 3 (12 + 12), 4 per rank
        flat = [i for part in parts for b in part for i in b]
        assert sorted(flat) == list(range(24))
        dist.barrier()  # no rank tears gloo down while another still talks to it
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_share_an_epoch(two_gloo_processes: Callable[..., None]) -> None:
    two_gloo_processes(_ddp_worker, _raw(12, 12))


def test_replicas_without_a_process_group_need_a_rank() -> None:
    # As torch.utils.data.DistributedSampler refuses num_replicas without a rank outside
    # torch.distributed: defaulting to rank 0 would hand every process the same share.
    ds = ango_torch.AngoDataset(_raw(4, 4), task="detection")
    with pytest.raises(ValueError, match="needs rank="):
        ango_torch.GroupedBatchSampler(ds, 2, num_replicas=2)
    with pytest.raises(ValueError, match="needs rank="):
        ango_torch.RepeatFactorSampler(ds, threshold=0.5, num_replicas=2)
    assert len(list(ango_torch.GroupedBatchSampler(ds, 2, num_replicas=1))) == 4
