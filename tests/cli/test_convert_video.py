"""``convert --to ytvis`` and ``--to mot`` on the bundled key-frames-only video export.

Expected boxes come from the sample's construction (a 160×120 window moving by (+2, +1)
px per frame from (100, 60) over fixed photo boxes; see make_video.py's docstring), the
plate's area from the shoelace formula of its photo polygon, worked out here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pycocotools import mask as mask_utils

from ango_torch.cli import main

VIDEO = Path(__file__).resolve().parents[2] / "examples" / "data" / "video"
KEYS = str(VIDEO / "video_keyframes.json")


def cup_xywh(t: int) -> list[float]:
    return [170 - 100 - 2 * t, 100 - 60 - t, 50, 40]


def test_ytvis_tracks_hold_every_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANGO_TORCH_VIDEO_DECODER", "pyav")
    out = tmp_path / "vis.json"
    assert main(["convert", KEYS, "--root", str(VIDEO), "--to", "ytvis", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    (video,) = doc["videos"]
    assert (video["length"], video["height"], video["width"]) == (32, 120, 160)
    assert [c["name"] for c in doc["categories"]] == ["cup", "plate", "spoon"]
    cup, plate, spoon = doc["annotations"]
    assert cup["bboxes"] == [cup_xywh(t) for t in range(32)]  # interpolated between keys
    assert cup["segmentations"] == [None] * 32  # a box track has no mask
    # the spoon stops on frame 20
    assert [b is not None for b in spoon["bboxes"]] == [t < 20 for t in range(32)]
    # plate (175,150) (215,145) (250,160) (210,175): shoelace area
    # |(175*145-215*150) + (215*160-250*145) + (250*175-210*160) + (210*150-175*175)| / 2
    area = (
        abs(
            (175 * 145 - 215 * 150)
            + (215 * 160 - 250 * 145)
            + (250 * 175 - 210 * 160)
            + (210 * 150 - 175 * 175)
        )
        / 2
    )
    for t in (0, 7, 31):
        pixels = float(mask_utils.area(plate["segmentations"][t]))
        assert abs(pixels - area) / area < 0.05  # rasterized vs exact area


def test_mot_lines_are_one_based_frames_and_ids(tmp_path: Path) -> None:
    out = tmp_path / "mot"
    assert main(["convert", KEYS, "--root", str(VIDEO), "--to", "mot", "--out", str(out)]) == 0
    lines = (out / "pan" / "gt" / "gt.txt").read_text().splitlines()
    assert len(lines) == 32 + 32 + 20  # cup, plate on every frame; spoon on 0..19
    rows = [line.split(",") for line in lines]
    cups = [r for r in rows if r[1] == "1"]
    assert [int(r[0]) for r in cups] == list(range(1, 33))
    assert [[float(v) for v in r[2:6]] for r in cups] == [cup_xywh(t) for t in range(32)]
    assert "seqLength=32" in (out / "pan" / "seqinfo.ini").read_text()
