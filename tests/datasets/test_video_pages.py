"""Multi-image assets through the clip API: pages are frames, tracks interpolate.

Expected pixels are the PNGs written here (read back with PIL); the box on page 1 is
the midpoint of the key boxes on pages 0 and 2, worked out by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from builders import make_asset, make_box, write_images
from PIL import Image

from ango_torch.datasets.video import AngoVideoDataset


def test_pages_are_clip_frames_with_interpolated_tracks(tmp_path: Path) -> None:
    asset = make_asset(
        [
            make_box(0, 0, 4, 4, objectId="t", page=0),
            make_box(4, 2, 4, 4, objectId="t", page=2),
        ]
    )
    asset["dataset"] = [f"https://x/{asset['assetId']}/p{p}.png" for p in range(3)]
    pages = tmp_path / f"{asset['externalId']}.pages"
    write_images(pages, [{"externalId": str(p), "metadata": {}} for p in range(3)])
    vds = AngoVideoDataset([asset], root=tmp_path, clip_len=3)
    assert len(vds) == 1
    clip, target = vds[0]
    expected = np.stack([np.asarray(Image.open(pages / str(p))) for p in range(3)])
    assert np.array_equal(clip.numpy().transpose(0, 2, 3, 1), expected)
    assert target["frames"].tolist() == [0, 1, 2]
    # page 1: halfway between (0, 0, 4, 4) and (4, 2, 8, 6)
    assert target["boxes"].tolist() == [[0, 0, 4, 4], [2, 1, 6, 5], [4, 2, 8, 6]]
    assert target["keyframe"].tolist() == [True, False, True]
