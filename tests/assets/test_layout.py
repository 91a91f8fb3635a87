"""On-disk layout: shared externalIds, brush masks keyed by content, per-host filesystems,
EXIF-rotated sizes and validate's ring areas (issue 8, items 3, 4, 12 and two checks)."""

from __future__ import annotations

import io
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import fsspec
import numpy as np
import pytest
from builders import H, W, make_asset, make_box, make_polygon, write_brush
from fsspec.spec import AbstractFileSystem
from PIL import Image

from ango_torch import AngoDataset, load_export
from ango_torch.assets.fetch import AssetStore
from ango_torch.assets.prefetch import prefetch, prefetch_items
from ango_torch.cli import main
from ango_torch.errors import SizeMismatchError
from ango_torch.export.validate import _ring_areas, find_problems


@pytest.fixture
def mem() -> Iterator[str]:
    root = f"memory://layout-{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _pixels(seed: int, size: tuple[int, int] = (H, W)) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def _png(pixels: np.ndarray[Any, Any]) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def _put(url: str, data: bytes) -> str:
    fsspec.filesystem("memory").pipe(url, data)
    return url


# -- item 3: shared externalIds -----------------------------------------------------------


def _twins(mem: str) -> tuple[list[dict[str, Any]], list[np.ndarray[Any, Any]]]:
    """Two assets named 'img.png' (and one 'IMG.PNG'), one unique 'solo.png'; each image
    a different random PNG served from memory://."""
    names = ["img.png", "img.png", "IMG.PNG", "solo.png"]
    assets, pixels = [], []
    for k, name in enumerate(names):
        a = make_asset([make_box(k, k, 3, 2)], external_id=name)
        pixels.append(_pixels(k))
        a["asset"] = _put(f"{mem}/src/{k}.png", _png(pixels[-1]))
        assets.append(a)
    return assets, pixels


def test_shared_external_ids_get_their_own_image_through_prefetch(mem: str, tmp_path: Path) -> None:
    assets, pixels = _twins(mem)
    out = tmp_path / "imgs"
    report = prefetch(prefetch_items(load_export(assets)), to=out, progress=False)
    assert report.ok and report.fetched == 4
    # The unique name keeps root/<externalId>; the others get their own folder.
    assert (out / "solo.png").is_file()
    for a in assets[:3]:
        assert (out / "_assets" / a["assetId"] / a["externalId"]).is_file()
    # root= reads each asset's own pixels (the arrays written above), with no URL.
    for a in assets:
        a["asset"] = None
    ds = AngoDataset(assets, task="detection", root=out)
    for i, expected in enumerate(pixels):
        image, _ = ds[i]
        assert np.array_equal(image.permute(1, 2, 0).numpy(), expected), i


def test_existing_root_keeps_external_id_names(tmp_path: Path) -> None:
    # Unique externalIds (the common case): a hand-made root/<externalId> still works.
    a = make_asset([make_box(1, 1, 3, 2)], external_id="sub/x.png")
    a["asset"] = None
    (tmp_path / "sub").mkdir()
    Image.fromarray(_pixels(7)).save(tmp_path / "sub" / "x.png")
    image, _ = AngoDataset([a], task="detection", root=tmp_path)[0]
    assert np.array_equal(image.permute(1, 2, 0).numpy(), _pixels(7))


def test_validate_reports_shared_external_ids(
    mem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assets, _ = _twins(mem)
    problems = [p for p in find_problems(load_export(assets)) if p.code.startswith("duplicate")]
    # Assets #0, #1 (same name) and #2 (same up to case) share one; #3 is unique.
    assert [(p.code, p.asset_index) for p in problems] == [
        ("duplicate-external-id", k) for k in (0, 1, 2)
    ]
    assert "shared (up to case)" in problems[0].message
    export = tmp_path / "e.json"
    export.write_text(json.dumps(assets))
    assert main(["validate", str(export)]) == 1
    assert "duplicate-external-id" in capsys.readouterr().out
    assets[1]["assetId"] = assets[0]["assetId"]
    codes = [p.code for p in find_problems(load_export(assets))]
    assert codes.count("duplicate-asset-id") == 2


def test_convert_never_overwrites_an_asset_with_another(tmp_path: Path) -> None:
    # Same externalId, different boxes: box (1, 2, 4, 3) and box (9, 5, 6, 4) on 17×11.
    first = make_asset([make_box(1, 2, 4, 3)], external_id="x.jpg")
    second = make_asset([make_box(9, 5, 6, 4)], external_id="x.jpg")
    export = tmp_path / "e.json"
    export.write_text(json.dumps([first, second]))
    assert main(["convert", str(export), "--to", "yolo", "--out", str(tmp_path / "y")]) == 0
    labels = tmp_path / "y" / "labels" / "_assets"
    got = [(labels / a["assetId"] / "x.txt").read_text() for a in (first, second)]
    # YOLO by hand: cx = (x + w/2)/17, cy = (y + h/2)/11, w/17, h/11, class 0.
    assert got == [
        f"0 {3 / 17:.6f} {3.5 / 11:.6f} {4 / 17:.6f} {3 / 11:.6f}\n",
        f"0 {12 / 17:.6f} {7 / 11:.6f} {6 / 17:.6f} {4 / 11:.6f}\n",
    ]
    assert main(["convert", str(export), "--to", "masks", "--out", str(tmp_path / "m")]) == 0
    written = sorted(
        p.relative_to(tmp_path / "m").as_posix() for p in (tmp_path / "m").rglob("*.png")
    )
    assert written == sorted(f"_assets/{a['assetId']}/x.png" for a in (first, second))


# -- item 4: brush masks keyed by their content ------------------------------------------

RED = "#ff0000"


def _brush_export(mem: str, brush_url: str, **task: Any) -> list[dict[str, Any]]:
    a = make_asset([], external_id="b.png", brushDataUrl=brush_url, **task)
    a["assetId"] = "same-asset"
    a["asset"] = f"{mem}/img.png"
    return [a]


def _painted(mem: str, name: str, sy: slice, sx: slice) -> str:
    path = write_brush(Path(f"/tmp/{uuid.uuid4().hex}.png"), (H, W), {RED: (sy, sx)})
    url = _put(f"{mem}/{name}", path.read_bytes())
    path.unlink()
    return url


def _mask(assets: list[dict[str, Any]], **kw: Any) -> np.ndarray[Any, Any]:
    ds = AngoDataset(assets, task="semantic", brush_colors={RED: "road"}, **kw)
    return ds[0][1]["mask"].numpy()


def _expected(sy: slice, sx: slice) -> np.ndarray[Any, Any]:
    mask = np.zeros((H, W), np.int64)
    mask[sy, sx] = 1  # class 1 = road where painted, 0 elsewhere
    return mask


def test_reexported_brush_is_not_served_from_the_cache(mem: str, tmp_path: Path) -> None:
    _put(f"{mem}/img.png", _png(_pixels(0)))
    old = _painted(mem, "v1/brush.png?X-Amz-Signature=a", slice(0, 3), slice(0, 4))
    new = _painted(mem, "v2/brush.png?X-Amz-Signature=b", slice(5, 9), slice(10, 15))
    cache = tmp_path / "cache"
    first = _mask(_brush_export(mem, old), cache_dir=cache)
    assert np.array_equal(first, _expected(slice(0, 3), slice(0, 4)))
    second = _mask(_brush_export(mem, new), cache_dir=cache)
    assert np.array_equal(second, _expected(slice(5, 9), slice(10, 15)))


def test_same_brush_path_updated_task_is_fetched_again(mem: str, tmp_path: Path) -> None:
    # The same object key overwritten by a later edit: updatedAt tells the two apart.
    _put(f"{mem}/img.png", _png(_pixels(0)))
    url = _painted(mem, "brush.png", slice(0, 3), slice(0, 4))
    cache = tmp_path / "cache"
    before = _brush_export(mem, url, updatedAt="2024-01-01T00:00:00.000Z")
    assert np.array_equal(_mask(before, cache_dir=cache), _expected(slice(0, 3), slice(0, 4)))
    _painted(mem, "brush.png", slice(6, 8), slice(1, 2))
    after = _brush_export(mem, url, updatedAt="2024-02-01T00:00:00.000Z")
    assert np.array_equal(_mask(after, cache_dir=cache), _expected(slice(6, 8), slice(1, 2)))


def test_prefetch_of_a_reexport_fetches_the_new_brush(mem: str, tmp_path: Path) -> None:
    _put(f"{mem}/img.png", _png(_pixels(0)))
    old = _painted(mem, "v1/brush.png", slice(0, 3), slice(0, 4))
    new = _painted(mem, "v2/brush.png", slice(5, 9), slice(10, 15))
    out = tmp_path / "imgs"
    assert prefetch(prefetch_items(load_export(_brush_export(mem, old))), to=out).fetched == 2
    second = _brush_export(mem, new)
    again = prefetch(prefetch_items(load_export(second)), to=out)
    assert (again.fetched, again.skipped) == (1, 1)  # the new brush; the image is kept
    fsspec.filesystem("memory").rm(new)  # root= must hold the new mask
    assert np.array_equal(_mask(second, root=out), _expected(slice(5, 9), slice(10, 15)))


def test_brush_without_content_key_is_refused() -> None:
    with pytest.raises(ValueError, match="content_key"):
        AssetStore().fetch(asset_id="a", external_id="a.png", url=None, kind="brush")


# -- one filesystem per (protocol, options) -----------------------------------------------


class HostFS(AbstractFileSystem):  # type: ignore[misc]
    """``hostfs://<host>/<path>``: the host comes from the URL, as ftp/sftp/abfs do;
    every file's bytes name the instance's host, token and the path."""

    protocol = "hostfs"
    made: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, host: str = "", token: str = "", **kw: Any) -> None:
        super().__init__(**kw)
        self.host, self.token = host, token
        HostFS.made.append({"host": host, "token": token})

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return urlsplit(path).path if "://" in path else path

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        return {"host": urlsplit(path).netloc}

    def cat_file(self, path: str, start: Any = None, end: Any = None, **kw: Any) -> bytes:
        return f"{self.host}|{self.token}|{path}".encode()


@pytest.fixture
def hostfs() -> Iterator[type[HostFS]]:
    fsspec.register_implementation("hostfs", HostFS, clobber=True)
    HostFS.made.clear()
    yield HostFS
    sys.modules["fsspec.registry"]._registry.pop("hostfs", None)


def test_filesystems_are_per_host_and_options(hostfs: type[HostFS]) -> None:
    store = AssetStore(storage_options={"token": "t1"})

    def get(url: str, s: AssetStore = store) -> bytes:
        return s.fetch(asset_id="a", external_id="a.png", url=url)

    assert get("hostfs://alpha/x.png") == b"alpha|t1|/x.png"
    assert get("hostfs://beta/x.png") == b"beta|t1|/x.png"
    assert get("hostfs://alpha/y.png") == b"alpha|t1|/y.png"  # reused, not made again
    other = AssetStore(storage_options={"token": "t2"})
    assert get("hostfs://alpha/x.png", other) == b"alpha|t2|/x.png"
    assert hostfs.made == [
        {"host": "alpha", "token": "t1"},
        {"host": "beta", "token": "t1"},
        {"host": "alpha", "token": "t2"},
    ]


# -- EXIF orientation vs the export's width/height ----------------------------------------


def _rotated_jpeg(path: Path) -> None:
    """A 17×11 (W×H) stored JPEG tagged orientation 6: displayed 11 wide, 17 high."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_pixels(3)).save(path, "JPEG", exif=exif)


@pytest.mark.parametrize(
    ("width", "height"), [(11, 17), (17, 11)], ids=["displayed-size", "stored-size"]
)
def test_exif_rotated_photo_accepts_either_size(tmp_path: Path, width: int, height: int) -> None:
    a = make_asset([make_box(1, 1, 3, 2)], external_id="phone.jpg", width=width, height=height)
    a["asset"] = None
    _rotated_jpeg(tmp_path / "phone.jpg")
    image, target = AngoDataset([a], task="detection", root=tmp_path)[0]
    # Pixels and annotations are in displayed coordinates: 17 rows of 11 pixels.
    assert image.shape == (3, 17, 11) and target["boxes"].canvas_size == (17, 11)


def test_transposed_size_without_exif_still_mismatches(tmp_path: Path) -> None:
    a = make_asset([make_box(1, 1, 3, 2)], external_id="flat.png", width=H, height=W)
    a["asset"] = None
    Image.fromarray(_pixels(4)).save(tmp_path / "flat.png")  # 17×11, no orientation
    with pytest.raises(SizeMismatchError, match=r"flat\.png"):
        AngoDataset([a], task="detection", root=tmp_path)[0]


# -- item 12: validate's ring areas with short rings between polygons ---------------------


def _line(points: list[list[float]]) -> dict[str, Any]:
    return {
        "polyline": points,
        "objectId": f"l{uuid.uuid4().hex[:6]}",
        "title": "lane",
        "schemaId": "s-lane",
        "classifications": [],
    }


def test_zero_area_ignores_short_rings_between_polygons() -> None:
    # Shoelace by hand: A (0,0),(2,0),(0,2) = 2; B (0,-4),(4,-4),(0,0) = 16/2 = 8;
    # C (0,0),(1,1),(2,2) collinear = 0; D (0,5),(3,5),(0,8) = 9/2 = 4.5; short rings 0.
    a = make_polygon([[0, 0], [2, 0], [0, 2]])
    b = make_polygon([[0, -4], [4, -4], [0, 0]])
    c = make_polygon([[0, 0], [1, 1], [2, 2]])
    d = make_polygon([[0, 5], [3, 5], [0, 8]])
    line = _line([[0, 0], [1, 0]])  # before the fix its last vertex crossed into B: -4
    lead = _line([[3, 3], [1, 0]])  # a short ring first
    tail = _line([[0, 0], [1, 0]])  # after C: crossed into D's (0, 5), adding 5
    export = load_export([make_asset([lead, a, line, b, c, tail, d], width=40, height=40)])
    assert _ring_areas(export.index).tolist() == [0.0, 2.0, 0.0, 8.0, 0.0, 0.0, 4.5]
    zero = [p.object_id for p in find_problems(export) if p.code == "zero-area"]
    assert zero == [c["objectId"]]


@pytest.mark.parametrize(
    ("base", "shared", "external_id", "expected"),
    [
        ("/r", False, "a/b.jpg", "/r/a/b.jpg"),
        ("/r", True, "a/b.jpg", "/r/_assets/id%2F1/a/b.jpg"),
        ("s3://b/imgs/{externalId}.jpg", False, "x", "s3://b/imgs/x.jpg"),
        ("s3://b/imgs/{externalId}.jpg", True, "x", "s3://b/imgs/_assets/id%2F1/x.jpg"),
        ("s3://b/{assetId}.jpg", True, "x", "s3://b/id/1.jpg"),  # collision-free already
    ],
    ids=["unique", "shared", "template", "template-shared", "assetid-template"],
)
def test_image_paths_by_hand(base: str, shared: bool, external_id: str, expected: str) -> None:
    from ango_torch.assets.fetch import asset_path

    got = asset_path(base, asset_id="id/1", external_id=external_id, shared=shared)
    assert got == expected


def test_reserved_and_case_folded_names_are_shared() -> None:
    from ango_torch.assets.layout import shared_external_ids

    names = ["a.jpg", "A.JPG", "b.jpg", "_assets/x.jpg", "_Brush/y.png", "c/_assets.png"]
    assert shared_external_ids(names).tolist() == [True, True, False, True, True, False]


def test_reserved_first_folder_as_the_layout_splits_paths() -> None:
    """Reference: the first folder as ``re.split(r"[\\/]", name, maxsplit=1)[0]`` (how
    asset_path splits a name) is a reserved one, on names built from reserved folders,
    their near misses and both slashes."""
    import itertools
    import re

    from ango_torch.assets.layout import shared_external_ids

    parts = ["_assets", "_ASSETS", "_brush", "_assetsx", "_asset", "a", "", "x.jpg"]
    names = sorted({"".join(p) for p in itertools.product(parts, ["", "/", "\\"], parts)})
    reserved = {"_assets", "_brush"}
    expected = [re.split(r"[\\/]", n.casefold(), maxsplit=1)[0] in reserved for n in names]
    # Names not reserved made distinct up to case (a case-folded duplicate is shared for
    # another reason); reserved ones are shared either way.
    pairs = enumerate(zip(names, expected, strict=True))
    distinct = [n if e else f"{n}#{k}" for k, (n, e) in pairs]
    assert shared_external_ids(distinct).tolist() == expected
    assert sum(expected) > 20 and not all(expected)


def test_convert_names_never_meet_after_the_extension_is_replaced(tmp_path: Path) -> None:
    # 'a.b.jpg' → 'a.b.png', but 'a.b' and 'a.c' share the stem 'a' and keep their full
    # names: 'a.b.png' again. Worked by hand: the clash makes 'a.b.jpg' keep its too.
    assets = [make_asset([make_box(1, 1, 2, 2)], external_id=n) for n in ("a.b.jpg", "a.b", "a.c")]
    export = tmp_path / "e.json"
    export.write_text(json.dumps(assets))
    assert main(["convert", str(export), "--to", "masks", "--out", str(tmp_path / "m")]) == 0
    written = sorted(p.name for p in (tmp_path / "m").glob("*.png"))
    assert written == ["a.b.jpg.png", "a.b.png", "a.c.png"]


def test_cli_prefetch_says_which_names_are_shared(
    mem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assets, _ = _twins(mem)  # 'img.png' twice and 'IMG.PNG': three shared names
    export = tmp_path / "e.json"
    export.write_text(json.dumps(assets))
    out = tmp_path / "imgs"
    assert main(["prefetch", str(export), "--to", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "4 fetched" in text and "3 assets share an externalId" in text
    assert f"{out}/_assets/<assetId>/" in text


def test_brush_key_follows_the_instant_not_its_spelling() -> None:
    # The two parse paths may keep updatedAt as exported or as isoformat: one instant,
    # one key (1704067200000 ms = 2024-01-01T00:00:00Z); a later instant, a new key.
    from ango_torch.assets.layout import brush_content_key

    def key(updated: Any) -> str:
        a = make_asset([], brushDataUrl="https://b/x.png?sig=1", updatedAt=updated)
        a["assetId"], a["externalId"], a["task"]["taskId"] = "id", "x.png", "t"
        return brush_content_key(load_export([a]).index, 0)

    same = {
        key(t) for t in ("2024-01-01T00:00:00.000Z", "2024-01-01T00:00:00+00:00", 1704067200000)
    }
    assert len(same) == 1
    assert key("2024-01-01T00:00:01Z") not in same
