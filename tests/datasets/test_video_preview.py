"""Clip previews: one GIF frame per clip frame; interpolated boxes dashed.

The cup's box on frame t is (70 - 2t, 40 - t, 120 - 2t, 80 - t) by the sample's
construction (make_video.py: window at (100 + 2t, 60 + t), cup at (170, 100, 50×40)).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ango_torch.cli import main

VIDEO = Path(__file__).resolve().parents[2] / "examples" / "data" / "video"


def _yellow(px: np.ndarray) -> bool:
    return bool(px[0] > 200 and px[1] > 200 and px[2] < 80)


def test_clip_gif_dashes_interpolated_boxes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANGO_TORCH_VIDEO_DECODER", "pyav")
    args = ["preview", str(VIDEO / "video_keyframes.json"), "--root", str(VIDEO)]
    args += ["--out", str(tmp_path), "--clips", "4", "--limit", "1", "--task", "detection"]
    assert main(args) == 0
    (gif,) = sorted(tmp_path.glob("*.gif"))
    with Image.open(gif) as im:
        assert im.n_frames == 4  # clip frames 0..3
        im.seek(2)  # frame 2: the cup is interpolated between its key frames 0 and 16
        rgb = np.asarray(im.convert("RGB"))
    x1, y1 = 70 - 2 * 2, 40 - 2
    # dashes of 4 px, gaps of 4 px along the top edge, from the left corner
    assert _yellow(rgb[y1, x1 + 1]) and _yellow(rgb[y1, x1 + 3])
    assert not _yellow(rgb[y1, x1 + 6])
    assert _yellow(rgb[y1, x1 + 9])
