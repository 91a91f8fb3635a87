"""The index's string table while it is built: no dict of every distinct string.

References: the strings' own bytes (``N`` values of 24 bytes, 8-byte offsets:
hand-computed), and the values themselves read back.
"""

from __future__ import annotations

import tracemalloc

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
