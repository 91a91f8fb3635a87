"""``video_assets``: which assets are videos, by the rule of FORMAT.md (a video file
extension on the URL's path or the externalId, any case; or ``frameTotal``/``frameRate``
in the asset's metadata).  The expected flags are written out by hand from that rule;
the whole-table pre-check (issue 14) must never hide one.
"""

from __future__ import annotations

import json
from pathlib import Path

from builders import make_asset, make_box

import ango_torch
from ango_torch.targets.selection import video_assets


def test_each_way_an_asset_is_a_video_and_the_near_misses(tmp_path: Path) -> None:
    box = [make_box(1, 2, 3, 4)]
    cases: list[tuple[dict[str, object], bool]] = []

    def case(expected: bool, **changes: object) -> None:
        asset = make_asset(box)
        meta = changes.pop("meta", None)
        if isinstance(meta, dict):
            asset["metadata"].update(meta)
        asset.update(changes)
        cases.append((asset, expected))

    case(False)  # a plain image
    case(True, asset="https://b.s3.amazonaws.com/v/clip.MP4?X-Amz-Signature=a")
    case(True, externalId="drone/flight.webm")
    case(True, meta={"frameTotal": 300})
    case(True, meta={"frameRate": 29.97})
    case(True, externalId="clip.m\u212av")  # KELVIN SIGN: str.lower() makes it ".mkv"
    # Near misses: an extension only in the query string, a key only in an object's
    # metadata, an extension inside a longer suffix.
    case(False, asset="https://b.s3.amazonaws.com/x.jpg?name=a.mov")
    case(False, externalId="frames.mp4.png")
    not_asset_meta = make_asset([make_box(1, 2, 3, 4, metadata={"frameRate": 30})])
    cases.append((not_asset_meta, False))
    path = tmp_path / "e.json"
    path.write_text(json.dumps([a for a, _ in cases]))
    export = ango_torch.load_export(path, progress_bar=False, workers=1)
    assert video_assets(export.index).tolist() == [e for _, e in cases]


def test_an_image_export_has_no_video(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text(json.dumps([make_asset([make_box(1, 2, 3, 4)]) for _ in range(5)]))
    export = ango_torch.load_export(path, progress_bar=False, workers=1)
    assert not video_assets(export.index).any()
