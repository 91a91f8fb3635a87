"""The compact index: round trip through records, its persisted form, and pickling."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from builders import make_asset, make_box, make_polygon, make_segmentation

import ango_torch
from ango_torch.index import ExportIndex


def _export() -> list[dict]:
    seg = make_segmentation(
        [
            {"region": [[0, 0], [9, 0], [9, 9], [0, 9]], "holes": [[[2, 2], [4, 2], [3, 4]]]},
            {"region": [[10, 1], [12, 1], [11, 3]], "holes": []},
        ]
    )
    rot = {
        "rotated-bounding-box": {
            "x": 1,
            "y": 1,
            "width": 2,
            "height": 2,
            "rotation": 0,
            "corners": [[1, 1], [3, 1], [3, 3], [1, 3]],
        },
        "objectId": "r",
        "title": "sign",
        "schemaId": "s",
    }
    other = {"spline": {"pts": [1, 2]}, "objectId": "sp", "title": "curve"}
    hist = [{"stage": "Label", "stageId": "L", "tools": [make_box(0, 0, 1, 1)]}]
    a = make_asset(
        [
            make_polygon([[1, 1], [9, 1], [5, 8]]),
            seg,
            rot,
            other,
            make_box(5, 5, -2, -2, metadata={"createdAt": 1693555521104}),
        ],
        stage_history=hist,
    )
    a["task"]["classifications"] = [{"title": "weather", "tool": "checkbox", "answer": ["rain"]}]
    return [a, make_asset([], width=None, height=None)]


def test_records_survive_the_index() -> None:
    """Records rebuilt from the columns equal records parsed straight from JSON."""
    from ango_torch._parse import parse_asset

    raws = _export()
    export = ango_torch.load_export(raws)
    for i, raw in enumerate(raws):
        direct = parse_asset(raw, i)
        rebuilt = export[i]
        assert rebuilt.task.answer.classifications == direct.task.answer.classifications
        for a, b in zip(rebuilt.task.answer.tools, direct.task.answer.tools, strict=True):
            assert (a.object_id, a.title, a.kind, a.page) == (b.object_id, b.title, b.kind, b.page)
            assert a.metadata == b.metadata and a.classifications == b.classifications
            assert repr(a.geometry) == repr(b.geometry)
        assert len(rebuilt.task.history) == len(direct.task.history)
        assert (rebuilt.width, rebuilt.height) == (direct.width, direct.height)


def test_index_is_columnar_and_pickles(tmp_path: Path) -> None:
    export = ango_torch.load_export(_export())
    idx = export.index
    # Columns, not Python objects: every attribute is a numpy array.
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in idx.arrays.values())
    assert idx.verts.dtype == np.float32 and idx.verts.shape[1] == 2
    assert len(idx.obj_kind) == 6  # 5 answer objects + 1 in the Label stage
    clone = pickle.loads(pickle.dumps(idx))
    assert clone.asset(0).external_id == idx.asset(0).external_id
    path = tmp_path / "i.npz"
    idx.save(path)
    loaded = ExportIndex.load(path)
    assert repr(loaded.asset(0)) == repr(idx.asset(0))
    assert idx.rings(1)[1][2] is True  # the segmentation's hole


def test_persisted_index_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "e.json"
    path.write_text(json.dumps(_export()))
    cache = tmp_path / "cache"
    first = ango_torch.load_export(path, cache_dir=cache)
    (saved,) = (cache / "index").glob("*.npz")
    assert saved.stem == first.index.digest

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr("ango_torch.export.asset_columns", boom)
    second = ango_torch.load_export(path, cache_dir=cache)
    assert repr(second[0]) == repr(first[0])
    # Changed content → new key → parsed again.
    path.write_text(json.dumps(_export()[:1]))
    with pytest.raises(AssertionError, match="parsed again"):
        ango_torch.load_export(path, cache_dir=cache)


def test_corrupt_cache_file_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text(json.dumps(_export()))
    first = ango_torch.load_export(path, cache_dir=tmp_path)
    (saved,) = (tmp_path / "index").glob("*.npz")
    saved.write_bytes(b"garbage")
    again = ango_torch.load_export(path, cache_dir=tmp_path)
    assert len(again) == len(first)


def test_index_out_of_range() -> None:
    export = ango_torch.load_export(_export())
    with pytest.raises(IndexError, match="out of range"):
        export[5]
    assert export[-1].index == 1
