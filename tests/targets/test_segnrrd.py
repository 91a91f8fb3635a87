"""Voxel-brush label decoding and label/image grid checks (targets/segnrrd).

Expected labels are written out by hand on tiny arrays (which voxel holds which value),
or counted with plain Python loops; grid offsets and nearest-neighbour indices are
hand-computed from the affines stated in each test.
"""

from __future__ import annotations

import numpy as np
import pytest

from ango_torch.errors import GridMismatchError
from ango_torch.targets.segnrrd import LabelStats, decode_labels, fit_to_grid, segments


def _layered() -> tuple[dict[str, str], np.ndarray]:
    """Two layers on a 3×1×1 grid: segment 0 (value 1, layer 0) on voxels 0 and 1,
    segment 1 (value 2, layer 1) on voxels 1 and 2: voxel 1 overlaps."""
    data = np.zeros((2, 3, 1, 1), np.uint8)
    data[0, 0:2] = 1
    data[1, 1:3] = 2
    header = {
        "Segment0_LabelValue": "1",
        "Segment0_Layer": "0",
        "Segment0_Name": "Tumour",
        "Segment1_LabelValue": "2",
        "Segment1_Layer": "1",
        "Segment1_Name": "Kidney",
    }
    return header, data


CLASSIFY = {"1": 1, "2": 2}


def test_layered_overlap_last_ignore_and_onehot() -> None:
    header, data = _layered()
    last = decode_labels(header, data, CLASSIFY, overlap="last")
    assert last[:, 0, 0].tolist() == [1, 2, 2]  # segment 1 painted after segment 0
    stats = LabelStats()
    ign = decode_labels(header, data, CLASSIFY, overlap="ignore", stats=stats)
    assert ign[:, 0, 0].tolist() == [1, 255, 2]
    assert stats.overlap == 1
    onehot = decode_labels(header, data, CLASSIFY, onehot=3)
    # channels: background, Tumour, Kidney; voxel 1 is both classes
    assert onehot[:, :, 0, 0].tolist() == [[0, 0, 0], [1, 1, 0], [0, 1, 1]]


def test_plain_sdk_map_and_segment_names() -> None:
    data = np.array([0, 1, 2, 7, 7], np.uint8).reshape(5, 1, 1)
    assert [s.label_value for s in segments({}, data)] == [1, 2, 7]
    stats = LabelStats()
    out = decode_labels({}, data, {"1": 1, "2": "Kidney"}, stats=stats)
    # value 2's class is not selected (excluded), value 7 has no class (unlisted): both 0
    assert out[:, 0, 0].tolist() == [0, 1, 0, 0, 0]
    assert stats.unlisted == {7: 2} and stats.excluded == {"Kidney": 1}
    # Slicer files whose label values are not schemaIds are matched by segment name.
    named = decode_labels(
        {"Segment0_LabelValue": "5", "Segment0_Name": "Tumour"},
        np.array([5, 0], np.uint8).reshape(2, 1, 1),
        {"Tumour": 1},
    )
    assert named[:, 0, 0].tolist() == [1, 0]


def test_extent_limits_a_segment() -> None:
    data = np.ones((4, 1, 1), np.uint8)
    header = {"Segment0_LabelValue": "1", "Segment0_Extent": "1 2 0 0 0 0"}
    assert decode_labels(header, data, CLASSIFY)[:, 0, 0].tolist() == [0, 1, 1, 0]


def test_a_cropped_label_grid_is_pasted_at_its_offset() -> None:
    image_aff = np.diag([2.0, 3.0, 4.0, 1.0])
    label_aff = image_aff.copy()
    label_aff[:3, 3] = [2.0, 6.0, 0.0]  # one voxel along i, two along j (hand: 2/2, 6/3)
    labels = np.ones((2, 1, 1), np.int64)
    out = fit_to_grid(labels, label_aff, (4, 4, 2), image_aff)
    expected = np.zeros((4, 4, 2), np.int64)
    expected[1:3, 2, 0] = 1
    np.testing.assert_array_equal(out, expected)


def test_a_different_grid_raises_or_resamples() -> None:
    image_aff = np.eye(4)
    label_aff = np.diag([2.0, 1.0, 1.0, 1.0])  # half the resolution along i
    labels = np.array([1, 2, 3], np.int64).reshape(3, 1, 1)
    with pytest.raises(GridMismatchError, match=r"asset 'ct\.nrrd' \(#0\).*spacing \(2, 1, 1\)"):
        fit_to_grid(labels, label_aff, (6, 1, 1), image_aff, label="asset 'ct.nrrd' (#0)")
    out = fit_to_grid(labels, label_aff, (6, 1, 1), image_aff, resample=True)
    # image voxel i sits at label index i / 2, rounded half up: 0, 1, 1, 2, 2, 3 (outside)
    assert out[:, 0, 0].tolist() == [1, 2, 2, 3, 3, 0]


def test_signed_values_and_the_table_path_agree_with_the_mask_path() -> None:
    """A plain int16 map (one pass through a lookup table) and the same map given a
    whole-volume extent (the per-segment path) decode alike; -1 has no class."""
    data = np.array([0, 1, -1, 2, 1], np.int16).reshape(5, 1, 1)
    stats = LabelStats()
    plain = decode_labels({}, data, CLASSIFY, stats=stats)
    assert plain[:, 0, 0].tolist() == [0, 1, 0, 2, 1]
    assert stats.unlisted == {-1: 1}
    header = {
        f"Segment{n}_{k}": v
        for n, value in enumerate((1, 2))
        for k, v in (("LabelValue", str(value)), ("Extent", "0 4 0 0 0 0"))
    }
    np.testing.assert_array_equal(decode_labels(header, data, CLASSIFY), plain)
