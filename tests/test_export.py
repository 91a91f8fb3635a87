"""Stage selection and the ontology's three wrappers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from builders import make_asset, make_box

import ango_torch
from ango_torch.errors import OntologyError, StageNotFoundError

SCHEMA = {
    "tools": [
        {"schemaId": "s1", "title": "road", "tool": "brush", "color": "#F44336"},
        {"schemaId": "s2", "title": "car", "tool": "bounding-box", "color": "#00ff00"},
        {"schemaId": "s3", "title": "bike", "tool": "polygon"},
    ],
    "classifications": [{"title": "weather"}],
    "relations": [],
}


def _staged() -> list[dict]:
    label = {"stage": "Label", "stageId": "st-label", "tools": [make_box(0, 0, 1, 1)]}
    review = {"stage": "Review", "stageId": "st-review", "tools": []}
    return [
        make_asset([make_box(0, 0, 2, 2)], stage_history=[label, review]),
        make_asset(
            [make_box(0, 0, 2, 2)],
            stage_history=[label, {**label, "tools": [make_box(0, 0, 1, 1), make_box(1, 1, 1, 1)]}],
        ),
        make_asset([make_box(0, 0, 2, 2)]),
    ]


def test_stage_selection_by_name_and_id() -> None:
    export = ango_torch.load_export(_staged())
    idx = export.index
    np.testing.assert_array_equal(export.snapshot_rows(None), idx.asset_snap_start)
    by_name, by_id = export.snapshot_rows("Label"), export.snapshot_rows("st-label")
    np.testing.assert_array_equal(by_name, by_id)
    assert by_name[2] == -1  # the third asset never went through Label
    # The second asset went through Label twice: the latest snapshot wins.
    s = int(by_name[1])
    assert idx.snap_obj_end[s] - idx.snap_obj_start[s] == 2
    review = export.snapshot_rows("Review")
    assert review.tolist()[1:] == [-1, -1]
    complete = export.snapshot_rows("Complete")  # the answer's own stage
    np.testing.assert_array_equal(complete, idx.asset_snap_start)
    assert export.stage_names() == {"Complete": 3, "Label": 3, "Review": 1}


def test_unknown_stage_lists_those_present() -> None:
    export = ango_torch.load_export(_staged())
    with pytest.raises(StageNotFoundError, match=r"'QA'.*stages present: Complete, Label, Review"):
        export.snapshot_rows("QA")


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,
        lambda s: {"categorySchema": s},
        lambda s: {"data": {"project": {"categorySchema": s, "name": "p"}}},
    ],
    ids=["bare", "categorySchema", "api-response"],
)
def test_ontology_wrappers(tmp_path: Path, wrap) -> None:  # type: ignore[no-untyped-def]
    for source in (wrap(SCHEMA), tmp_path / "o.json"):
        (tmp_path / "o.json").write_text(json.dumps(wrap(SCHEMA)))
        onto = ango_torch.load_ontology(source)
        assert onto.titles() == ["road", "car", "bike"]
        assert onto.brush_colors() == {"#f44336": "road"}
        assert onto.by_schema_id()["s2"].title == "car"


@pytest.mark.parametrize(
    "bad",
    [[], {"tools": "x"}, {"tools": [{"tool": "polygon"}]}, {"tools": [3]}],
    ids=["list", "tools-str", "no-title", "int"],
)
def test_bad_ontology(bad: object) -> None:
    with pytest.raises(OntologyError):
        ango_torch.load_ontology(bad)  # type: ignore[arg-type]


def test_bad_ontology_file(tmp_path: Path) -> None:
    (tmp_path / "o.json").write_text("{nope")
    with pytest.raises(OntologyError, match="invalid JSON"):
        ango_torch.load_ontology(tmp_path / "o.json")
