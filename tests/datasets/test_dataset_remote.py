"""The dataset end to end over remote storage: a loopback HTTP server (with faults and
request counts), ``memory://`` roots, and every export file kind."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch
from builders import H, W, make_asset, make_polygon, make_v2_asset, write_brush
from httpserver import serve
from PIL import Image

import ango_torch

SQUARE = [[2, 2], [8, 2], [8, 7], [2, 7]]


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def test_http_urls_with_faults_and_a_cache(tmp_path: Path) -> None:
    with serve() as server:
        assets = []
        for k in range(3):
            a = make_asset([make_polygon(SQUARE)])
            server.files[f"/img{k}.png"] = _png(k)
            a["asset"] = server.url(f"/img{k}.png", "X-Amz-Signature=abc")
            assets.append(a)
        brush = write_brush(tmp_path / "b.png", (H, W), {"#ff0000": (slice(0, 2), slice(0, 3))})
        server.files["/brush0.png"] = brush.read_bytes()
        assets[0]["task"]["brushDataUrl"] = server.url("/brush0.png")
        server.fail("/img1.png", "503", "503")  # transient: retried
        server.fail("/img2.png", "reset")
        ds = ango_torch.AngoDataset(
            assets, task="semantic", cache_dir=tmp_path / "cache", brush_colors={"#ff0000": "paint"}
        )
        first = [ds[i] for i in range(len(ds))]
        assert server.counts["/img1.png"] == 3 and server.counts["/img2.png"] == 2
        assert (first[0][1]["mask"][0:2, 0:3] == ds.classes.index("paint")).all()  # brush, HTTP
        np.testing.assert_array_equal(
            first[1][0].permute(1, 2, 0).numpy(), np.asarray(Image.open(io.BytesIO(_png(1))))
        )
        before = dict(server.counts)
        second = [ds[i] for i in range(len(ds))]  # a second epoch: all from the cache
        assert dict(server.counts) == before
        for (im_a, t_a), (im_b, t_b) in zip(first, second, strict=True):
            assert torch.equal(im_a, im_b) and torch.equal(t_a["mask"], t_b["mask"])


def test_expired_signed_url_is_a_clear_error(tmp_path: Path) -> None:
    with serve() as server:
        a = make_asset([make_polygon(SQUARE)])
        server.files["/x.png"] = _png(0)
        server.always("/x.png", "expired")
        a["asset"] = server.url("/x.png")
        ds = ango_torch.AngoDataset([a])
        with pytest.raises(ango_torch.ExpiredURLError, match="expired"):
            ds[0]


def test_memory_root_and_templates() -> None:
    fs = fsspec.filesystem("memory")
    a = make_asset([make_polygon(SQUARE)])
    fs.pipe(f"/imgs/by-id/{a['assetId']}", _png(3))
    ds = ango_torch.AngoDataset([a], root="memory://imgs/by-id/{assetId}")
    image, target = ds[0]
    assert image.shape == (3, H, W) and target["masks"].shape == (1, H, W)


def _write(kind: str, path: Path, assets: list[dict]) -> Path:
    text = json.dumps(assets)
    if kind == "ndjson":
        path.write_text("\n".join(json.dumps(a) for a in assets))
    elif kind == "zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("export.json", text)
    elif kind == "gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("kind", ["json", "ndjson", "zip", "gz"])
@pytest.mark.parametrize("generation", [2, 3])
def test_every_file_kind_and_generation_gives_the_same_targets(
    tmp_path: Path, kind: str, generation: int
) -> None:
    make = make_v2_asset if generation == 2 else make_asset
    assets = [
        make([make_polygon(SQUARE, "car"), make_polygon([[9, 1], [15, 1], [12, 9]], "bus")])
        for _ in range(2)
    ]
    images = tmp_path / "images"
    images.mkdir()
    for k, a in enumerate(assets):
        (images / a["externalId"]).write_bytes(_png(k))
    reference = ango_torch.AngoDataset(assets, root=images)
    ds = ango_torch.AngoDataset(
        _write(kind, tmp_path / f"e.{kind}", assets), root=images, cache_dir=tmp_path / "cache"
    )
    assert ds.classes == reference.classes == ["__background__", "bus", "car"]
    for i in range(2):
        a, b = ds[i][1], reference[i][1]
        assert torch.equal(a["masks"], b["masks"]) and torch.equal(a["labels"], b["labels"])
