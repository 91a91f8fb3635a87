"""``object_ids``: objectIds and ``interpolationStopped`` of a video's entries read from
the index's bytes with numpy (no Python object per entry).

Reference: the same rows decoded by ``json.loads`` (``ExportIndex.object_extras``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from builders import make_asset, make_box

import ango_torch
from ango_torch.export import object_rows
from ango_torch.export.object_rows import object_ids
from ango_torch.targets.tracks import asset_tracks

IDS = ["car-1", 'we"ird ],[ id', "back\\slash", "ünïcødé ✓", "car-1 ", "#7", "x" * 300]


def _export(ids: list[str]) -> Any:
    tools = []
    for f in range(6):
        for k, oid in enumerate(ids):
            box = make_box(f, k, 2, 2, objectId=oid, page=f)
            box["classifications"] = [
                {"schemaId": "c", "title": "note", "answer": '"],["', "classifications": []}
            ]
            if (f + k) % 4 == 0:
                box["interpolationStopped"] = True
            tools.append(box)
    return ango_torch.load_export([make_asset(tools, external_id="v.mp4")])


def _reference(ex: Any) -> tuple[list[str], list[bool]]:
    rows = ex.index.object_extras(0)
    return [r[0] for r in rows], [bool(r[5]) for r in rows]


@pytest.mark.parametrize("block", [7, 1 << 24])  # 7 bytes: rows cut at every place
def test_object_ids_match_the_decoded_rows(monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    monkeypatch.setattr(object_rows, "_BLOCK", block)
    for ids in (IDS[:-1], IDS):  # the last: an id too long for the byte path (fallback)
        ex = _export(ids)
        codes, names, stopped = object_ids(ex.index, 0)
        want_ids, want_stop = _reference(ex)
        assert [names[c] for c in codes.tolist()] == want_ids
        assert stopped.tolist() == want_stop
        assert len(set(names)) == len(names) == len(ids)  # "car-1" and "car-1 " differ
        o, table = int(ex.index.asset_objects[0]), ex.index.extras
        blob = np.asarray(table.blob[table.offsets[o] : table.offsets[o + 1]])
        assert (object_rows._ids_from_bytes(blob) is None) == (len(ids[-1]) > 256)  # numpy path


def test_tracks_number_ids_in_order_of_first_appearance() -> None:
    ex = _export(IDS[:4])
    idx = ex.index
    rows = np.arange(int(idx.snap_obj_start[0]), int(idx.snap_obj_end[0]))
    tr = asset_tracks(idx, 0, rows[::-1].copy())  # reversed: the last id appears first
    assert tr.ids == tuple(reversed(IDS[:4]))
    # Hand count: entry (frame f, id k) is stopped when (f + k) % 4 == 0.
    want = sorted((t, f) for f in range(6) for t in range(4) if (f + 3 - t) % 4 == 0)
    got = sorted(zip(tr.track[tr.stopped].tolist(), tr.frame[tr.stopped].tolist(), strict=True))
    assert got == want
