"""The per-track video layout (one tool per track with a ``frames`` list) is expanded at
parse time into the documented per-frame entries, on both parse paths.

References: the same annotations hand-written in the per-frame layout, and boxes
interpolated by hand (comments).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from builders import make_asset, make_box

import ango_torch
from ango_torch.export.load import load_export
from ango_torch.records import ToolKind


def _video(tools: list[dict[str, Any]]) -> dict[str, Any]:
    asset = make_asset(tools, external_id="v.mp4", width=40, height=30)
    asset["metadata"].update(frameTotal=20, frameRate=10)
    return asset


def _track() -> dict[str, Any]:
    return {
        "objectId": "car-1",
        "schemaId": "s-car",
        "title": "car",
        "classifications": [],
        "frames": [
            {"frame": 0, "bounding-box": {"x": 0, "y": 0, "width": 4, "height": 4}},
            {"page": 10, "bounding-box": {"x": 10, "y": 6, "width": 4, "height": 4}},
            {"frame": 12, "interpolationStopped": True},
        ],
    }


def test_per_track_tools_equal_the_per_frame_layout() -> None:
    per_frame = [
        make_box(0, 0, 4, 4, objectId="car-1", page=0),
        make_box(10, 6, 4, 4, objectId="car-1", page=10),
        {
            "objectId": "car-1",
            "schemaId": "s-car",
            "title": "car",
            "classifications": [],
            "page": 12,
            "interpolationStopped": True,
        },
    ]
    a = load_export([_video([_track()])]).index
    b = load_export([_video(per_frame)]).index
    for col in ("obj_kind", "obj_page"):
        assert np.array_equal(getattr(a, col), getattr(b, col)), col
    assert np.array_equal(a.obj_bbox, b.obj_bbox, equal_nan=True)
    assert a.obj_page.tolist() == [0, 10, 12]
    assert [e[0] for e in a.object_extras(0)] == ["car-1"] * 3
    assert [bool(e[5]) for e in a.object_extras(0)] == [False, False, True]
    # key frames 0 and 10, stop on 12: frame 5 is halfway, (5, 3, 9, 7)
    ds = ango_torch.AngoDataset([_video([_track()])], task="detection")
    assert [ds.sample_location(i)[1] for i in range(len(ds))] == list(range(12))
    target = ds.load_target(5, (30, 40))
    assert target["boxes"].tolist() == [[5, 3, 9, 7]] and not bool(target["keyframe"][0])


def test_a_track_layout_it_cannot_read_is_kept_as_an_unknown_tool() -> None:
    odd = copy.deepcopy(_track())
    del odd["frames"][1]["page"]  # a frame without an index: not guessed
    clash = copy.deepcopy(_track())
    clash["frames"][0]["page"] = 3  # frame 0 or page 3? not guessed either
    assets = [_video([odd, clash, make_box(1, 1, 2, 2, page=0)])]
    idx = load_export(assets).index
    assert [ToolKind(k) for k in idx.obj_kind.tolist()] == [
        ToolKind.OTHER,
        ToolKind.OTHER,
        ToolKind.BOUNDING_BOX,
    ]
    # kept (its frames as an unknown geometry) and counted by a dataset
    assert idx.asset(0).task.answer.tools[0].geometry.key == "frames"  # type: ignore[union-attr]
    ds = ango_torch.AngoDataset(assets, task="detection")
    assert ds.report.ignored_objects["other"] == 2
