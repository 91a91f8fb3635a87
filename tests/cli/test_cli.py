"""``ango-torch inspect`` and ``validate``: output, exit codes, JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from builders import make_asset, make_box, make_polygon

from ango_torch.cli import main


def _write(tmp_path: Path, assets: list) -> Path:
    path = tmp_path / "e.json"
    path.write_text(json.dumps(assets))
    return path


def test_inspect_summarizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hist = [{"stage": "Label", "stageId": "L", "tools": [make_box(0, 0, 1, 1)]}]
    path = _write(
        tmp_path,
        [
            make_asset(
                [make_polygon([[1, 1], [9, 1], [5, 8]]), make_box(2, 2, 3, 3, "person")],
                stage_history=hist,
            ),
            make_asset([make_box(2, 2, 3, 3, "person")], width=None),
        ],
    )
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "assets       2" in out and "objects      3" in out
    assert "person" in out and "polygon" in out and "Label" in out
    assert "1 known, 1 missing" in out
    assert main(["inspect", str(path), "--json", "--stage", "Label"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["objects"] == 1 and data["assets_with_stage"] == 1
    assert data["objects_per_class"] == {"car": 1}


def test_validate_lists_problems_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dup = make_box(1, 1, 2, 2)
    bad = make_asset(
        [
            make_polygon([[1, 1], [5, 1]]),  # 2 points
            make_polygon([[1, 1], [5, 1], [9, 1]]),  # zero area
            make_box(500, 500, 3, 3),  # far outside 17×11
            dup,
            {**dup},  # duplicate objectId
            {"cuboid": {}, "objectId": "cu", "title": "x"},  # unknown tool
        ],
        width=None,
        height=None,
    )
    bad["task"]["relations"] = [
        {
            "objectId": "r",
            "title": "rel",
            "from": dup["objectId"],
            "to": "ghost",
            "direction": "straight",
        }
    ]
    path = _write(tmp_path, [make_asset([make_box(1, 1, 2, 2)]), bad, {"externalId": "x"}])
    assert main(["validate", str(path), "--json"]) == 1
    codes = sorted(p["code"] for p in json.loads(capsys.readouterr().out)["problems"])
    assert codes == [
        "dangling-relation",
        "duplicate-id",
        "malformed",
        "missing-size",
        "too-few-points",
        "unknown-tool",
        "zero-area",
    ]
    main(["validate", str(path)])
    out = capsys.readouterr().out
    assert "[too-few-points] asset 'img_" in out and "3 points" not in out


def test_validate_ok_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(
        tmp_path,
        [make_asset([make_box(1, 1, 2, 2), make_box(800, 1, 2, 2)], width=1000, height=600)],
    )
    assert main(["validate", str(path)]) == 0
    assert "0 problems: OK" in capsys.readouterr().out


def test_outside_image_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, [make_asset([make_box(500, 500, 3, 3)])])
    assert main(["validate", str(path)]) == 1
    assert "far outside the 17×11 image" in capsys.readouterr().out


def test_errors_are_reported_not_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tmp_path / "missing.json")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "cmd", ["inspect", "validate", "prefetch", "preview", "convert", "evaluate"]
)
def test_every_subcommand_has_help(cmd: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ango_torch", cmd, "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "usage: ango-torch " + cmd in out


def test_validate_segmentations_and_ontology(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seg_ok = {
        "segmentation": {
            "zones": [{"region": [[0, 0], [5, 0], [5, 5]], "holes": [[[1, 1], [2, 1], [1, 2]]]}]
        },
        "objectId": "ok",
        "title": "car",
    }
    seg_flat = {
        "segmentation": {"zones": [{"region": [[0, 0], [5, 5], [9, 9]]}]},
        "objectId": "flat",
        "title": "car",
    }
    seg_short = {
        "segmentation": {
            "zones": [{"region": [[0, 0], [5, 5], [9, 1]]}, {"region": [[1, 1], [2, 2]]}]
        },
        "objectId": "short",
        "title": "car",
    }
    bike = make_polygon([[1, 1], [5, 1], [3, 4]], "bike")
    path = _write(tmp_path, [make_asset([seg_ok, seg_flat, seg_short, bike])])
    onto = tmp_path / "o.json"
    onto.write_text(json.dumps({"tools": [{"title": "car", "tool": "segmentation"}]}))
    assert main(["validate", str(path), "--ontology", str(onto), "--json"]) == 1
    found = {(p["object_id"], p["code"]) for p in json.loads(capsys.readouterr().out)["problems"]}
    assert found == {
        ("flat", "zero-area"),
        ("short", "too-few-points"),
        (bike["objectId"], "unknown-class"),
    }
