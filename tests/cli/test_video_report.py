"""``inspect``/``validate`` on video exports: tracks, key frames, problems.

Expected counts are read off the hand-built exports (and the sample's make_video.py):
the key-frames-only sample has cup 0/16/31, plate 0/31, spoon 0/10/20(stop) entries.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from builders import make_asset, make_box

from ango_torch.cli import main

VIDEO = Path(__file__).resolve().parents[2] / "examples" / "data" / "video"


def test_inspect_reports_tracks_of_the_key_frame_sample(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["inspect", str(VIDEO / "video_keyframes.json"), "--json"]) == 0
    (video,) = json.loads(capsys.readouterr().out)["videos"]
    assert (video["tracks"], video["entries"], video["stops"]) == (3, 8, 1)
    # every frame 0..31 shows the cup; live key entries are on frames {0, 10, 16, 31}:
    # the other 28 frames exist only through interpolation
    assert video["key_frames_only"] and video["gaps"] == 32 - 4
    assert (video["frame_total"], video["last_frame"]) == (32, 31)


def test_validate_flags_video_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tools = [
        make_box(1, 1, 4, 4, objectId="t", page=0),
        make_box(2, 1, 4, 4, objectId="t", page=1),  # the same track on the next frame: fine
        make_box(3, 1, 4, 4, objectId="t", page=1),  # twice on frame 1: a duplicate
        make_box(1, 1, 4, 4, objectId="u"),  # no frame
        make_box(1, 1, 4, 4, objectId="v", page=12),  # frameTotal is 10: frames 0..9
    ]
    asset = make_asset(tools, external_id="clip.mp4")
    asset["metadata"].update(frameTotal=10, frameRate=5)
    path = tmp_path / "export.json"
    path.write_text(json.dumps([asset]))
    assert main(["validate", str(path), "--json"]) == 1
    codes = sorted(p["code"] for p in json.loads(capsys.readouterr().out)["problems"])
    assert codes == ["duplicate-id", "video-entry-without-frame", "video-past-last-frame"]
