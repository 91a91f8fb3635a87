"""Review fixes (issues 8/9): files and lists agree on out-of-range timestamps, and
URL/id fields and polygon vertices of the wrong type are ExportFormatErrors at load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from builders import make_asset, make_polygon

import ango_torch
from ango_torch.errors import ExportFormatError


def _both(tmp_path: Path, raw: dict[str, Any]) -> list[Any]:
    """Load ``raw`` from a .json file, an .ndjson file and a list; each attempt's outcome."""
    (tmp_path / "e.json").write_text(json.dumps([raw]))
    (tmp_path / "e.ndjson").write_text(json.dumps(raw) + "\n")
    sources: list[Any] = [str(tmp_path / "e.json"), str(tmp_path / "e.ndjson"), [raw]]
    out = []
    for src in sources:
        try:
            export = ango_torch.load_export(src)
            out.append(export[0])
        except ExportFormatError as exc:
            out.append(exc)
    return out


# 2**70 and 2**64 are integers beyond 64 bits; a JSON reader may hand them over as floats
# (orjson does), which must not turn an error into a silent None.
@pytest.mark.parametrize("value", [2**70, 2**64, -(2**70), 1e30])
def test_timestamp_beyond_64_bits_is_an_error_in_files_and_lists(
    tmp_path: Path, value: Any
) -> None:
    raw = make_asset([make_polygon([[1, 1], [5, 1], [3, 4]])], external_id="big.png")
    raw["task"]["updatedAt"] = value
    for outcome in _both(tmp_path, raw):
        assert isinstance(outcome, ExportFormatError), outcome
        assert "big.png" in str(outcome) and "task.updatedAt" in str(outcome)


def test_timestamp_within_64_bits_reads_the_same_from_files_and_lists(tmp_path: Path) -> None:
    raw = make_asset([], external_id="ok.png")
    raw["task"]["updatedAt"] = 1693555519699  # epoch ms: 2023-09-01T08:05:19.699Z
    got = {str(a.task.updated_at) for a in _both(tmp_path, raw)}
    assert got == {"2023-09-01 08:05:19.699000+00:00"}


@pytest.mark.parametrize(
    ("field", "value"),
    [("dataset", [1, 2]), ("externalId", 5), ("dataset", ["a.png", 3.5])],
)
def test_url_and_external_id_must_be_strings(tmp_path: Path, field: str, value: Any) -> None:
    raw = make_asset([], external_id="e.png")
    raw[field] = value
    for outcome in _both(tmp_path, raw):
        assert isinstance(outcome, ExportFormatError), outcome
        assert field in str(outcome) and "string" in str(outcome)


def test_brush_data_url_must_be_a_string(tmp_path: Path) -> None:
    raw = make_asset([], external_id="b.png", brushDataUrl=5)
    for outcome in _both(tmp_path, raw):
        assert isinstance(outcome, ExportFormatError), outcome
        assert "b.png" in str(outcome) and "brushDataUrl" in str(outcome)


@pytest.mark.parametrize("points", [[[1, 1, 0], [9, 1, 0], [5, 8, 0]], [[1, 1], [9, 1, 2], [5, 8]]])
def test_polygon_vertices_with_a_third_coordinate_are_refused(
    tmp_path: Path, points: list[list[float]]
) -> None:
    raw = make_asset([make_polygon(points)], external_id="z.png")
    for outcome in _both(tmp_path, raw):
        assert isinstance(outcome, ExportFormatError), outcome
        assert "z.png" in str(outcome) and "polygon" in str(outcome)
