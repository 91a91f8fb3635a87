"""Tracks and interpolation from the index columns, on hand-built video exports.

Expected frames and boxes are computed by hand in the comments (linear interpolation
between key entries), not from the code under test.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from builders import make_asset, make_box, make_polygon

from ango_torch.datasets.dataset import AngoDataset
from ango_torch.export.load import load_export
from ango_torch.targets.tracks import (
    asset_tracks,
    frame_entries,
    interpolated_boxes,
    interpolated_ring,
)


def _video(tools: list[dict[str, Any]]) -> Any:
    asset = make_asset(tools, external_id="v.mp4")
    asset["metadata"].update(frameTotal=40, frameRate=10)
    export = load_export([asset])
    idx = export.index
    s = int(idx.asset_snap_start[0])
    rows = np.arange(int(idx.snap_obj_start[s]), int(idx.snap_obj_end[s]))
    return idx, asset_tracks(idx, 0, rows)


def _box(t: int, x: float, **kw: Any) -> dict[str, Any]:
    return make_box(x, 10, 10, 10, objectId="car-1", page=t, **kw)


def test_boxes_lerp_between_key_frames_and_stop_then_restart() -> None:
    # key entries: frame 0 at x=0, frame 10 at x=20 (negative width: x=30, w=-10 → 20..30),
    # stop on 15, restart on 30 at x=5
    tools = [
        _box(10, 30) | {"bounding-box": {"x": 30, "y": 10, "width": -10, "height": 10}},
        _box(0, 0),
        _box(15, 40, interpolationStopped=True),
        _box(30, 5),
    ]
    idx, tr = _video(tools)
    assert tr.ids == ("car-1",) and tr.sparse
    assert tr.frame.tolist() == [0, 10, 15, 30]  # sorted by frame
    # frames 0..14 (0..10 key/interpolated, 10..15 towards the stop entry), then 30
    assert tr.annotated_frames(interpolate=True).tolist() == [*range(15), 30]
    assert tr.annotated_frames(interpolate=False).tolist() == [0, 10, 30]
    en = frame_entries(tr, 4, interpolate=True)
    # x: 0 + (20 - 0) * 4/10 = 8
    assert interpolated_boxes(idx, en).tolist() == [[8, 10, 18, 20]]
    assert en.keyframe.tolist() == [False]
    en = frame_entries(tr, 10, interpolate=True)
    assert interpolated_boxes(idx, en).tolist() == [[20, 10, 30, 20]] and en.keyframe.all()
    assert len(frame_entries(tr, 20, interpolate=True).rows) == 0  # stopped on 15
    assert len(frame_entries(tr, 4, interpolate=False).rows) == 0
    assert len(frame_entries(tr, 35, interpolate=True).rows) == 0  # no extrapolation


def test_duplicates_and_entries_without_a_frame_are_left_out() -> None:
    tools = [_box(0, 0), _box(0, 4), make_box(1, 1, 2, 2, objectId="car-1")]
    idx, tr = _video(tools)
    assert len(tr.duplicates) == 1 and len(tr.unplaced) == 1
    # the later duplicate (x=4) wins
    assert interpolated_boxes(idx, frame_entries(tr, 0, interpolate=True)).tolist() == [
        [4, 10, 14, 20]
    ]


def test_polygons_lerp_vertices_with_equal_counts() -> None:
    square = [[0, 0], [10, 0], [10, 10], [0, 10]]
    moved = [[x + 10, y + 20] for x, y in square]
    tools = [make_polygon(square, objectId="p", page=0), make_polygon(moved, objectId="p", page=10)]
    idx, tr = _video(tools)
    en = frame_entries(tr, 5, interpolate=True)
    # halfway, every vertex + (5, 10)
    assert interpolated_ring(idx, en, 0).tolist() == [[x + 5, y + 10] for x, y in square]
    assert interpolated_boxes(idx, en).tolist() == [[5, 10, 15, 20]]


def _coco_mask(ring: list[list[float]], h: int, w: int) -> np.ndarray:
    from pycocotools import mask as mask_utils

    rle = mask_utils.frPyObjects([[c for p in ring for c in p]], h, w)
    with warnings.catch_warnings():  # pycocotools' Cython vs numpy 2, not our code
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.asarray(mask_utils.decode(mask_utils.merge(rle)), bool)


def test_polygons_with_unequal_counts_match_by_arc_length() -> None:
    # A 10×10 square with 4 vertices on frame 0 at (0, 0) and with 8 (edge midpoints
    # added, listed from another corner the other way round) on frame 10 at (10, 20):
    # the square moves by (1, 2) per frame, so frame f is the square at (f, 2f).
    square = [[0, 0], [10, 0], [10, 10], [0, 10]]
    eight = [[20, 30], [15, 30], [10, 30], [10, 25], [10, 20], [15, 20], [20, 20], [20, 25]]
    tools = [make_polygon(square, objectId="p", page=0), make_polygon(eight, objectId="p", page=10)]
    asset = make_asset(tools, external_id="v.mp4", width=40, height=40)
    asset["metadata"].update(frameTotal=40, frameRate=10)
    ds = AngoDataset([asset], task="instance", interpolate=True)
    idx = ds.export.index
    for f in (3, 5, 8):
        tr = ds._video.tracks[0]
        ring = interpolated_ring(idx, frame_entries(tr, f, interpolate=True), 0)
        assert ring is not None
        # every resampled point lies on the expected square's outline
        x, y = ring[:, 0] - f, ring[:, 1] - 2 * f
        on_edge = (np.isclose(x, 0) | np.isclose(x, 10)) & (y > -1e-4) & (y < 10 + 1e-4)
        on_edge |= (np.isclose(y, 0) | np.isclose(y, 10)) & (x > -1e-4) & (x < 10 + 1e-4)
        assert on_edge.all()
        target = ds.load_target(f, (40, 40))
        assert target["boxes"].tolist() == [[f, 2 * f, f + 10, 2 * f + 10]]
        expected = _coco_mask([[f + x, 2 * f + y] for x, y in square], 40, 40)
        assert np.array_equal(target["masks"][0].numpy().astype(bool), expected)


def _rotated(cx: float, cy: float, w: float, h: float, degrees: float) -> list[list[float]]:
    a = math.radians(degrees)
    u, v = (math.cos(a), math.sin(a)), (-math.sin(a), math.cos(a))
    x0, y0 = cx - u[0] * w / 2 - v[0] * h / 2, cy - u[1] * w / 2 - v[1] * h / 2
    return [
        [x0, y0],
        [x0 + u[0] * w, y0 + u[1] * w],
        [x0 + u[0] * w + v[0] * h, y0 + u[1] * w + v[1] * h],
        [x0 + v[0] * h, y0 + v[1] * h],
    ]


def test_rotated_boxes_turn_the_shorter_way() -> None:
    def rbox(corners: list[list[float]], page: int) -> dict[str, Any]:
        return {
            "rotated-bounding-box": {
                "x": 0,
                "y": 0,
                "width": 1,
                "height": 1,
                "rotation": 0,
                "corners": corners,
            },
            "objectId": "r",
            "schemaId": "s-car",
            "title": "car",
            "classifications": [],
            "page": page,
        }

    # 20×10 at (50, 40) turned 170° on frame 0 and -170° on frame 10: the short way is
    # through 180°, so frame 5 shows it at 180° (a corner lerp would shrink it)
    tools = [rbox(_rotated(50, 40, 20, 10, 170), 0), rbox(_rotated(50, 40, 20, 10, -170), 10)]
    idx, tr = _video(tools)
    en = frame_entries(tr, 5, interpolate=True)
    ring = interpolated_ring(idx, en, 0)
    assert ring is not None
    np.testing.assert_allclose(ring, _rotated(50, 40, 20, 10, 180), atol=1e-3)
