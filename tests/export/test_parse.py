"""The parser: every tool shape in both generations, the format's quirks, bad input."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np
import pytest
from builders import make_asset, make_box, make_polygon, make_v2_asset

import ango_torch
from ango_torch.errors import ExportFormatError
from ango_torch.records import (
    BoundingBox,
    Ner,
    OtherGeometry,
    Pdf,
    Point,
    Polygon,
    Polyline,
    RotatedBox,
    Segmentation,
    ToolKind,
)

ROT = {
    "x": 2,
    "y": 3,
    "width": 4,
    "height": 2,
    "rotation": 30,
    "corners": [[2, 3], [6, 3], [6, 5], [2, 5]],
}
SHAPES: list[tuple[str, Any, type, ToolKind]] = [
    ("bounding-box", {"x": 1, "y": 2, "width": 3, "height": 4}, BoundingBox, ToolKind.BOUNDING_BOX),
    ("rotated-bounding-box", ROT, RotatedBox, ToolKind.ROTATED_BOUNDING_BOX),
    ("polygon", [[1, 1], [5, 1], [3, 4]], Polygon, ToolKind.POLYGON),
    ("polyline", [[1, 1], [5, 1], [3, 4], [8, 9]], Polyline, ToolKind.POLYLINE),
    ("point", [3.5, 4.5], Point, ToolKind.POINT),
    (
        "segmentation",
        {
            "zones": [
                {"region": [[0, 0], [9, 0], [9, 9], [0, 9]], "holes": [[[2, 2], [4, 2], [3, 4]]]}
            ]
        },
        Segmentation,
        ToolKind.SEGMENTATION,
    ),
    ("ner", {"start": 3, "end": 9, "selection": "hello"}, Ner, ToolKind.NER),
    (
        "pdf",
        {
            "position": {
                "boundingRect": {"x1": 1, "y1": 2, "x2": 3, "y2": 4, "width": 9, "height": 9},
                "rects": [],
                "pageNumber": 2,
            },
            "content": {"text": "x"},
        },
        Pdf,
        ToolKind.PDF,
    ),
    ("cuboid", {"front": [1, 2]}, OtherGeometry, ToolKind.OTHER),
]


def tool(key: str, value: Any, **extra: Any) -> dict[str, Any]:
    return {
        key: value,
        "objectId": "obj1",
        "schemaId": "s1",
        "title": "thing",
        "classifications": [],
        **extra,
    }


@pytest.mark.parametrize("generation", [2, 3])
@pytest.mark.parametrize(("key", "value", "cls", "kind"), SHAPES, ids=[s[0] for s in SHAPES])
def test_every_tool_shape(generation: int, key: str, value: Any, cls: type, kind: ToolKind) -> None:
    raw = (make_v2_asset if generation == 2 else make_asset)([tool(key, value)])
    # Through the index and back, so records survive the compact form.
    (asset,) = ango_torch.load_export([raw])
    assert asset.generation == generation
    (obj,) = asset.task.answer.tools
    assert obj.kind is kind and isinstance(obj.geometry, cls)
    assert obj.object_id == "obj1" and obj.title == "thing" and obj.schema_id == "s1"
    g = obj.geometry
    if isinstance(g, RotatedBox):
        np.testing.assert_array_equal(g.corners, ROT["corners"])
        assert (g.x, g.y, g.width, g.height, g.rotation) == (2, 3, 4, 2, 30)
    if isinstance(g, Segmentation):
        assert len(g.zones) == 1 and len(g.zones[0].holes) == 1
        assert g.zones[0].region.shape == (4, 2) and g.zones[0].region.dtype == np.float32
    if isinstance(g, Point):
        assert (g.x, g.y) == (3.5, 4.5)
    if isinstance(g, Pdf):
        assert g.page_number == 2 and g.bounding_rect == (1, 2, 3, 4)
    if isinstance(g, OtherGeometry):
        assert g.key == "cuboid" and g.raw == {"front": [1, 2]}
    if isinstance(g, Ner):
        assert (g.start, g.end, g.selection) == (3, 9, "hello")


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ({"x": 10, "y": 8, "width": -4, "height": -3}, (6, 5, 4, 3)),
        ({"x": 10, "y": 8, "width": 4, "height": -3}, (10, 5, 4, 3)),
        ({"x": 1.5, "y": 2.5, "width": 2, "height": 3}, (1.5, 2.5, 2, 3)),
    ],
    ids=["both-negative", "height-negative", "positive"],
)
def test_negative_box_sizes_are_normalized(box: dict[str, float], expected: tuple) -> None:
    (asset,) = ango_torch.load_export([make_asset([tool("bounding-box", box)])])
    g = asset.task.answer.tools[0].geometry
    assert isinstance(g, BoundingBox)
    assert (g.x, g.y, g.width, g.height) == expected


def test_segmentation_quirks_flat_holes_empty_region_many_zones() -> None:
    seg = {
        "zones": [
            {"region": [[0, 0], [9, 0], [9, 9], [0, 9]], "holes": [[2, 2], [4, 2], [3, 4]]},
            {"region": [], "holes": []},
            {"region": [[10, 0], [12, 0], [11, 3]]},
        ]
    }
    (asset,) = ango_torch.load_export([make_asset([tool("segmentation", seg)])])
    g = asset.task.answer.tools[0].geometry
    assert isinstance(g, Segmentation)
    assert [len(z.holes) for z in g.zones] == [1, 0, 0]  # flat ring read as one hole
    np.testing.assert_array_equal(g.zones[0].holes[0], [[2, 2], [4, 2], [3, 4]])
    assert g.zones[1].region.shape == (0, 2)
    assert g.zones[2].region.shape == (3, 2)


def test_rotated_box_without_corners_rotates_about_centre() -> None:
    rb = {"x": 0, "y": 0, "width": 4, "height": 2, "rotation": 90}
    (asset,) = ango_torch.load_export([make_asset([tool("rotated-bounding-box", rb)])])
    g = asset.task.answer.tools[0].geometry
    assert isinstance(g, RotatedBox)
    np.testing.assert_allclose(g.corners, [[3, -1], [3, 3], [1, 3], [1, -1]], atol=1e-5)


def test_envelope_fields_classifications_metadata() -> None:
    nested = {
        "objectId": "c1",
        "schemaId": "k1",
        "tool": "radio",
        "title": "occluded",
        "answer": "no",
        "classifications": [
            {
                "objectId": "c2",
                "schemaId": "k2",
                "tool": "checkbox",
                "title": "parts",
                "answer": ["a", "b"],
                "classifications": [],
            }
        ],
    }
    t1 = make_polygon(
        [[0, 0], [4, 0], [2, 3]],
        classifications=[nested],
        page=2,
        interpolationStopped=True,
        metadata={"createdAt": "2023-09-01T08:05:21.104Z", "createdBy": "a@b.c"},
    )
    t2 = make_box(1, 1, 2, 2, metadata={"createdAt": 1693555521104})
    raw = make_asset([t1, t2])
    raw["task"]["classifications"] = [
        {
            "objectId": "c3",
            "schemaId": "k3",
            "tool": "tree-dropdown",
            "title": "scene",
            "answer": ["Outdoor / Street"],
            "classifications": [],
        },
        {"objectId": "c4", "schemaId": "k4", "tool": "text", "title": "note", "answer": "hi"},
    ]
    raw["task"]["relations"] = [
        {
            "objectId": "r1",
            "schemaId": "rs",
            "title": "next-to",
            "from": t1["objectId"],
            "to": t2["objectId"],
            "direction": "straight",
        },
        {"objectId": "r2", "schemaId": "rs2", "title": "group", "group": [t1["objectId"]]},
    ]
    (asset,) = ango_torch.load_export([raw])
    a, b = asset.task.answer.tools
    assert a.page == 2 and a.interpolation_stopped and not b.interpolation_stopped
    assert a.classifications[0].flat() == {"occluded": "no", "parts": ("a", "b")}
    when = datetime(2023, 9, 1, 8, 5, 21, 104000, tzinfo=timezone.utc)
    assert a.metadata is not None and a.metadata.created_at == when
    assert a.metadata.created_by == "a@b.c"
    assert b.metadata is not None and b.metadata.created_at == when  # epoch ms
    cls = asset.task.answer.classifications
    assert cls[0].answer == ("Outdoor / Street",) and cls[1].answer == "hi"
    r1, r2 = asset.task.answer.relations
    assert (r1.from_id, r1.to_id, r1.direction) == (t1["objectId"], t2["objectId"], "straight")
    assert r2.group == (t1["objectId"],) and r2.from_id is None


def test_asset_fields_multi_page_missing_size_and_fallback_ids() -> None:
    raw = make_asset([], width=None, height=None)
    raw["dataset"] = ["https://x/p0.png", "https://x/p1.png"]
    raw["batches"] = ["train", "night"]
    del raw["assetId"]
    (asset,) = ango_torch.load_export([raw])
    assert asset.width is None and asset.height is None
    assert asset.pages == ("https://x/p0.png", "https://x/p1.png")
    assert asset.batches == ("train", "night")
    assert asset.asset_id == asset.external_id == raw["externalId"]


def test_stage_history_snapshots() -> None:
    hist = [
        {
            "stage": "Label",
            "stageId": "L1",
            "completedAt": "2023-09-01T08:05:21Z",
            "completedBy": "l@x",
            "tools": [make_box(0, 0, 1, 1)],
            "classifications": [],
            "relations": [],
            "brushDataUrl": "https://b/l.png",
        },
        {"stage": "Review", "stageId": "R1", "tools": [make_box(0, 0, 2, 2), make_box(1, 1, 1, 1)]},
    ]
    (asset,) = ango_torch.load_export([make_asset([make_box(0, 0, 3, 3)], stage_history=hist)])
    label, review = asset.task.history
    assert (label.stage, label.stage_id, label.completed_by) == ("Label", "L1", "l@x")
    assert label.brush_url == "https://b/l.png" and label.completed_at is not None
    assert len(review.tools) == 2 and len(asset.task.answer.tools) == 1


BAD: list[tuple[Any, str]] = [
    ("not a dict", r"#0.*expected an asset object, got str"),
    ({"externalId": "x.png"}, r"asset 'x.png' \(#0\).*neither 'task' \(v3\) nor 'tasks'"),
    ({"externalId": "x.png", "task": {"tools": {}}}, r"field 'tools'.*expected a list, got dict"),
    (
        {"externalId": "x.png", "task": {"tools": [tool("polygon", [["a", "b"], ["c", "d"]])]}},
        r"asset 'x.png' \(#0\), object 'obj1', field 'polygon\[0\]\[0\]'.*expected a number",
    ),
    (
        {"externalId": "x.png", "task": {"tools": [tool("point", [3])]}},
        r"object 'obj1', field 'point'.*expected \[x, y\]",
    ),
    (
        {
            "externalId": "x.png",
            "task": {"tools": [tool("bounding-box", {"x": 1, "y": 1, "width": 2})]},
        },
        r"object 'obj1', field 'bounding-box.height'.*missing",
    ),
    (
        {"externalId": "x.png", "task": {"tools": [tool("segmentation", {"zones": {}})]}},
        r"field 'segmentation.zones'.*expected a list of zones",
    ),
    (
        {"externalId": "x.png", "task": {"tools": [tool("polygon", [[1, float("nan")]])]}},
        r"field 'polygon\[0\]\[1\]'.*finite",
    ),
    (
        {
            "externalId": "x.png",
            "task": {"tools": [tool("rotated-bounding-box", {"corners": [[1, 2]]})]},
        },
        r"corners'.*has 1 points, expected 4",
    ),
    ({"task": {}}, r"neither assetId nor externalId"),
    ({"externalId": "x.png", "metadata": [], "task": {}}, r"field 'metadata'.*expected an object"),
    ({"externalId": "x.png", "tasks": "nope"}, r"field 'tasks'.*expected a list"),
]


@pytest.mark.parametrize(
    ("raw", "match"),
    BAD,
    ids=[
        "asset-not-object",
        "no-task",
        "tools-not-list",
        "polygon-of-strings",
        "point-one-coord",
        "box-missing-height",
        "zones-not-list",
        "nan-coordinate",
        "rotated-3-corners",
        "no-ids",
        "metadata-not-object",
        "v2-tasks-not-list",
    ],
)
def test_malformed_assets_raise_export_format_error(raw: Any, match: str) -> None:
    with pytest.raises(ExportFormatError, match=match) as info:
        ango_torch.load_export([raw])
    assert isinstance(info.value, ValueError) and isinstance(info.value, ango_torch.AngoTorchError)


def test_skip_reports_every_malformed_asset() -> None:
    good = make_asset([make_box(0, 0, 1, 1)])
    export = ango_torch.load_export([good, {"externalId": "bad.png"}, good], on_error="skip")
    assert len(export) == 2
    (skipped,) = export.skipped
    assert skipped.index == 1 and skipped.asset == "bad.png" and "neither" in skipped.reason


def test_latest_stage_snapshot_is_chosen_by_completed_at() -> None:
    """Hand-made histories listed out of order: the latest by completedAt wins, not the last."""

    def label(n_boxes: int, completed_at: object = None) -> dict[str, Any]:
        snap: dict[str, Any] = {
            "stage": "Label",
            "stageId": "L1",
            "tools": [make_box(0, 0, 1 + k, 1) for k in range(n_boxes)],
        }
        if completed_at is not None:
            snap["completedAt"] = completed_at
        return snap

    review = {"stage": "Review", "stageId": "R1", "tools": []}
    assets = [
        # ISO times, the later pass listed first: the 3-box pass (Sept 3) is the latest.
        make_asset(
            [],
            stage_history=[
                label(3, "2023-09-03T10:00:00Z"),
                review,
                label(1, "2023-09-01T10:00:00Z"),
            ],
        ),
        # Epoch ms (1693735200000 = 2023-09-03T10:00Z) against ISO (2023-09-02): epoch wins.
        make_asset([], stage_history=[label(2, 1693735200000), label(4, "2023-09-02T00:00:00Z")]),
        # No times: list position decides (the last pass, 5 boxes).
        make_asset([], stage_history=[label(1), label(5)]),
        # Only one pass has a time: an entry without one counts as older.
        make_asset([], stage_history=[label(6, "2023-09-01T00:00:00Z"), label(7)]),
    ]
    export = ango_torch.load_export(assets)
    rows = export.snapshot_rows("Label")
    idx = export.index
    n_objects = (idx.snap_obj_end[rows] - idx.snap_obj_start[rows]).tolist()
    assert n_objects == [3, 2, 5, 6]
