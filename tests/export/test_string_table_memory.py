"""The index's string table while it is built: no dict of every distinct string.

References: the strings' own bytes (``N`` values of 24 bytes, 8-byte offsets:
hand-computed), and the values themselves read back.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from ango_torch.export._tables import INTERN_MAX, _TableBuilder


def test_a_million_distinct_ids_keep_no_dict_of_strings() -> None:
    n = 3 * INTERN_MAX
    values = [f"asset-{i:018d}" for i in range(n)]  # 24 bytes each, all distinct
    tracemalloc.start()
    try:
        table = _TableBuilder(intern=True)
        stage = table.add("Complete")
        for v in values:
            table.add(v)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    own = n * 24 + (n + 2) * 8  # the strings' bytes and their offsets
    # a dict entry per distinct string would hold ~100 bytes more per value (~20 MB);
    # remembering INTERN_MAX values costs at most ~8 MB whatever n is
    assert held < own + 10 * 2**20, (held, own)
    assert table.add("Complete") == stage  # a value that repeats early is still shared
    built = table.build()
    assert len(built) == n + 1
    assert [built.get(i) for i in (0, 1, INTERN_MAX + 7, n)] == [
        "Complete",
        values[0],
        values[INTERN_MAX + 6],
        values[-1],
    ]


def test_joining_parallel_parts_needs_about_one_index() -> None:
    """concat lets go of each part's column once joined: the memory it adds to the
    parts' own is about their largest column, not their size (a join that keeps the
    parts until the end adds at least their size: the joined copy).  Reference: the
    parts' ``nbytes``, in all and of their largest column."""
    import json

    import ango_torch
    from ango_torch.export._build import concat

    sample = json.loads(
        (Path(__file__).resolve().parents[2] / "examples/data/sample_export.json").read_text()
    )
    tracemalloc.start()  # before the parts are built: freeing their columns counts
    try:
        parts = [ango_torch.load_export(sample * 20).index for _ in range(8)]
        whole = sum(p.nbytes for p in parts)
        largest = max(sum(p.arrays[k].nbytes for p in parts) for k in parts[0].arrays)
        first = [parts[0].string(i) for i in parts[0].asset_external_id[:3]]
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        merged = concat(parts)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert merged.nbytes > 0.99 * whole and len(merged) == 8 * 20 * len(sample)
    assert [merged.string(i) for i in merged.asset_external_id[:3]] == first
    assert peak - before < largest + 0.15 * whole, (peak - before, largest, whole)


@pytest.mark.parametrize("intern", [True, False], ids=["interned", "plain"])
@pytest.mark.parametrize("seed", range(4))
def test_add_many_gives_the_ids_and_table_of_add_one_by_one(
    intern: bool, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``add_many`` (the typed decoder's chunks) against ``add`` of each value in turn
    (the reference: what the parser's path calls), through all three states of the
    interning dict: room for every new value, filling up within a batch, and full.
    Values repeat within and across batches; ``None``, ``str`` and ``bytes`` mix."""
    import random

    from ango_torch.export import _tables

    monkeypatch.setattr(_tables, "INTERN_MAX", 12)
    rng = random.Random(seed)
    pool: list[str | bytes | None] = [None, "Complete", b"Label", "é", ""]
    pool += [f"v{i}" for i in range(40)] + [f"b{i}".encode() for i in range(10)]
    one, many = _TableBuilder(intern=intern), _TableBuilder(intern=intern)
    for _ in range(12):
        batch = [rng.choice(pool) for _ in range(rng.randrange(0, 9))]
        expected = [one.add(v) for v in batch]
        assert many.add_many(batch).tolist() == expected, batch
    a, b = one.build(), many.build()
    assert len(a) == len(b)
    assert [a.raw(i) for i in range(len(a))] == [b.raw(i) for i in range(len(b))]


def test_get_many_reads_each_entry_as_get_does() -> None:
    """Reference: the values put in (non-ASCII, empty, repeated) and ``None`` for -1,
    in any order; an id past the table is refused, as ``get`` refuses it."""
    values = ["a.jpg", "", "é/€.png", "x" * 300, "a.jpg", "😀"]
    builder = _TableBuilder(intern=False)
    ids = [builder.add(v) for v in values]
    table = builder.build()
    order = [*reversed(ids), -1, ids[2], -1]
    expected = [*reversed(values), None, values[2], None]
    assert table.get_many(np.asarray(order)) == expected
    assert table.get_many(order) == [table.get(i) for i in order] == expected
    assert table.get_many(np.zeros(0, np.int32)) == []
    assert table.get_many(np.array([-2, 0, -(2**40)])) == [None, values[0], None]
    assert table.get_many(np.array([5, 0], np.uint8)) == [values[5], values[0]]
    with pytest.raises(IndexError):
        table.get_many([len(values)])
    with pytest.raises(TypeError):
        table.get_many([1.0])


def test_get_many_reads_a_table_mapped_from_disk(tmp_path: Path) -> None:
    """As a persisted index loads it (read-only memory maps, ExportIndex.load): the same
    values as ``get``; an empty table maps too."""
    from ango_torch.export._tables import StringTable

    builder = _TableBuilder(intern=False)
    ids = [builder.add(v) for v in ["a", "é", ""]]
    built = builder.build()
    np.save(tmp_path / "blob.npy", built.blob)
    np.save(tmp_path / "offsets.npy", built.offsets)
    mapped = StringTable(
        np.load(tmp_path / "blob.npy", mmap_mode="r").view(np.ndarray),
        np.load(tmp_path / "offsets.npy", mmap_mode="r").view(np.ndarray),
    )
    assert mapped.get_many([*ids, -1]) == ["a", "é", "", None]
    np.save(tmp_path / "empty.npy", np.zeros(0, np.uint8))
    empty = StringTable(
        np.load(tmp_path / "empty.npy", mmap_mode="r").view(np.ndarray), np.zeros(1, np.int64)
    )
    assert empty.get_many([-1, -1]) == [None, None]
