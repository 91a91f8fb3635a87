"""ango_torch.assets.prefetch: the files of an export, their expiry, and ``ango-torch prefetch``."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builders import make_asset, make_box
from httpserver import LoopbackServer, serve
from PIL import Image

from ango_torch import StageNotFoundError, load_export
from ango_torch.assets.fetch import AssetStore
from ango_torch.assets.prefetch import PrefetchItem, expiry_of_export, prefetch_items
from ango_torch.cli import main

AMZ = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Date=20230901T080000Z&X-Amz-Expires={}&X-Amz-Signature=s"
)


def png(seed: int, mode: str = "RGB") -> bytes:
    """A small 17×11 PNG (``RGBA`` for brush masks)."""
    channels = len(mode)
    pixels = np.random.default_rng(seed).integers(0, 256, (11, 17, channels), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")  # (H, W, 3|4) uint8: RGB or RGBA
    return out.getvalue()


def history(stage: str, stage_id: str, brush: str = "") -> dict[str, Any]:
    return {
        "stage": stage,
        "stageId": stage_id,
        "tools": [make_box(1, 1, 2, 2)],
        "brushDataUrl": brush,
    }


def small_export(base: str = "https://b.s3.amazonaws.com") -> list[dict[str, Any]]:
    """Three assets: an image with brush masks (answer, Label; none for Review), a
    three-page asset with a Label brush only, and an image without any brush."""
    image = make_asset(
        [make_box(2, 2, 4, 3)],
        external_id="sub/img.png",
        stage_history=[
            history("Label", "L", f"{base}/img-label.png"),
            history("Review", "R"),
        ],
        brushDataUrl=f"{base}/img-brush.png",
    )
    image["asset"] = f"{base}/img.png"
    pages = make_asset(
        external_id="doc.tif", stage_history=[history("Label", "L", f"{base}/doc-label.png")]
    )
    pages["asset"] = f"{base}/doc-cover.png"
    pages["dataset"] = [f"{base}/doc-{p}.png" for p in range(3)]
    plain = make_asset(external_id="plain.png")
    plain["asset"] = f"{base}/plain.png"
    return [image, pages, plain]


# -- prefetch_items ----------------------------------------------------------------------


def _brushes(items: list[PrefetchItem]) -> list[tuple[str, str | None, str | None]]:
    return [(i.external_id, i.stage_key, i.url) for i in items if i.kind == "brush"]


B = "https://b.s3.amazonaws.com"


@pytest.mark.parametrize(
    ("stage", "brush", "expected", "error"),
    [
        (None, True, [("sub/img.png", None, f"{B}/img-brush.png")], None),
        (
            "Label",
            True,
            [("sub/img.png", "L", f"{B}/img-label.png"), ("doc.tif", "L", f"{B}/doc-label.png")],
            None,
        ),
        (
            "L",
            True,
            [("sub/img.png", "L", f"{B}/img-label.png"), ("doc.tif", "L", f"{B}/doc-label.png")],
            None,
        ),
        ("Review", True, [], None),  # the snapshot exists but has no brush mask
        ("Complete", True, [("sub/img.png", None, f"{B}/img-brush.png")], None),  # = the answer
        ("Label", False, [], None),
        ("Nope", True, [], StageNotFoundError),
    ],
    ids=[
        "answer",
        "stage-name",
        "stage-id",
        "stage-without-brush",
        "answer-stage",
        "no-brush",
        "unknown-stage",
    ],
)
def test_prefetch_items_brush_per_stage(
    stage: str | None,
    brush: bool,
    expected: list[tuple[str, str | None, str]],
    error: type[Exception] | None,
) -> None:
    export = load_export(small_export())
    if error is not None:
        with pytest.raises(error, match="Nope"):
            prefetch_items(export, stage=stage, brush=brush)
        return
    items = prefetch_items(export, stage=stage, brush=brush)
    assert _brushes(items) == expected
    images = [i for i in items if i.kind == "image"]
    assert images == [
        PrefetchItem(export[0].asset_id, "sub/img.png", f"{B}/img.png"),
        *(
            PrefetchItem(export[1].asset_id, "doc.tif", f"{B}/doc-{p}.png", page=p)
            for p in range(3)
        ),
        PrefetchItem(export[2].asset_id, "plain.png", f"{B}/plain.png"),
    ]


def test_prefetch_items_order_and_missing_url() -> None:
    raw = small_export()
    raw[2]["asset"] = ""  # no URL: listed anyway, so that prefetch reports it
    items = prefetch_items(load_export(raw))
    assert [(i.external_id, i.kind, i.page) for i in items] == [
        ("sub/img.png", "image", None),
        ("sub/img.png", "brush", None),
        ("doc.tif", "image", 0),
        ("doc.tif", "image", 1),
        ("doc.tif", "image", 2),
        ("plain.png", "image", None),
    ]
    assert items[-1].url is None


def test_expiry_of_export_counts_assets_pages_and_brushes() -> None:
    raw = small_export()
    raw[0]["asset"] += "?" + AMZ.format(3600)  # expired at 09:00
    raw[0]["task"]["brushDataUrl"] += "?" + AMZ.format(90000)  # Sep 2nd 09:00
    raw[1]["dataset"][2] += "?" + AMZ.format(60)  # expired at 08:01
    raw[1]["task"]["stageHistory"][0]["brushDataUrl"] += "?" + AMZ.format(3600)
    raw[2]["dataset"] = [raw[0]["asset"]]  # the same URL twice counts once
    report = expiry_of_export(load_export(raw), now=datetime(2023, 9, 1, 12, tzinfo=timezone.utc))
    # distinct URLs: img, img-brush, img-label, doc-cover, doc-0..2, doc-label, plain
    assert (report.total, report.signed, report.expired, report.expiring_soon) == (9, 4, 3, 1)
    assert report.earliest == datetime(2023, 9, 1, 8, 1, tzinfo=timezone.utc)


# -- ango-torch prefetch -----------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with serve() as srv:
        yield srv


def _export_file(tmp_path: Path, server: LoopbackServer) -> Path:
    """``small_export`` served by ``server``; ``plain.png`` is missing (404)."""
    base = server.url("").rstrip("/")
    raw = small_export(base)
    raw[0]["asset"] += "?X-Amz-Signature=secret"
    files = {
        "/img.png": png(1),
        "/img-brush.png": png(2, "RGBA"),
        "/img-label.png": png(3, "RGBA"),
        "/doc-0.png": png(4),
        "/doc-1.png": png(5),
        "/doc-2.png": png(6),
        "/doc-label.png": png(7, "RGBA"),
    }
    server.files.update(files)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(raw))
    return path


def test_cli_prefetch_end_to_end(
    server: LoopbackServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = _export_file(tmp_path, server)
    out = tmp_path / "imgs"
    args = ["prefetch", str(export), "--to", str(out), "--no-progress"]
    assert main(args) == 1
    text = capsys.readouterr().out
    assert "5 fetched, 0 skipped (already complete), 1 failed" in text
    assert "asset 'plain.png'" in text and "404" in text
    assert "secret" not in text  # signatures never reach the output
    assert "root=" not in text  # no "done" line on failure

    # Second run: complete files are skipped (no request), only the failure is retried.
    before = sum(server.counts.values())
    assert main(args) == 1
    assert "0 fetched, 5 skipped (already complete), 1 failed" in capsys.readouterr().out
    assert sum(server.counts.values()) - before == 1
    server.files["/plain.png"] = png(8)
    assert main([*args, "--stage", "Label", "--concurrency", "2"]) == 0
    text = capsys.readouterr().out
    assert "3 fetched, 4 skipped (already complete), 0 failed" in text
    assert f"root={str(out)!r}" in text and f"--root {out}" in text

    # root=DIR finds every file without a URL.
    store = AssetStore(root=out)
    asset_ids = {a["externalId"]: a["assetId"] for a in json.loads(export.read_text())}
    expect: list[tuple[dict[str, Any], str]] = [
        ({"external_id": "sub/img.png"}, "/img.png"),
        ({"external_id": "sub/img.png", "kind": "brush"}, "/img-brush.png"),
        ({"external_id": "sub/img.png", "kind": "brush", "stage_key": "L"}, "/img-label.png"),
        *(({"external_id": "doc.tif", "page": p}, f"/doc-{p}.png") for p in range(3)),
        ({"external_id": "doc.tif", "kind": "brush", "stage_key": "L"}, "/doc-label.png"),
        ({"external_id": "plain.png"}, "/plain.png"),
    ]
    keys = {  # brush masks are named by their content (prefetch_items says which)
        (i.external_id, i.stage_key): i.content_key
        for stage in (None, "Label")
        for i in prefetch_items(load_export(export), stage=stage)
        if i.kind == "brush"
    }
    before = sum(server.counts.values())
    for kw, served in expect:
        if kw.get("kind") == "brush":
            kw = {**kw, "content_key": keys[kw["external_id"], kw.get("stage_key")]}
        got = store.fetch(asset_id=asset_ids[kw["external_id"]], url=None, **kw)
        assert got == server.files[served], kw
    assert sum(server.counts.values()) == before
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]


def test_cli_prefetch_lists_at_most_50_failures(
    server: LoopbackServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = [make_asset(external_id=f"gone_{i:02d}.png") for i in range(52)]
    for a in raw:
        a["asset"] = server.url("/" + a["externalId"])
    raw.append({"externalId": "broken"})  # unreadable: counted as a failure too
    path = tmp_path / "e.json"
    path.write_text(json.dumps(raw))
    assert main(["prefetch", str(path), "--to", str(tmp_path / "out"), "--no-brush"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "0 fetched, 0 skipped (already complete), 53 failed" in lines[0]
    listed = [line for line in lines if line.startswith("  asset ") or "unreadable" in line]
    assert len(listed) == 50 and "unreadable asset #52" in lines[1]
    assert "  ... and 3 more" in lines


def test_cli_prefetch_no_verify_writes_undecodable_files(
    server: LoopbackServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.files["/junk.png"] = b"<html>not an image</html>"
    asset = make_asset(external_id="junk.png")
    asset["asset"] = server.url("/junk.png")
    path = tmp_path / "e.json"
    path.write_text(json.dumps([asset]))
    out = tmp_path / "out"
    assert main(["prefetch", str(path), "--to", str(out)]) == 1
    assert "not a decodable image" in capsys.readouterr().out
    assert not (out / "junk.png").exists()
    assert main(["prefetch", str(path), "--to", str(out), "--no-verify"]) == 0
    assert (out / "junk.png").read_bytes() == server.files["/junk.png"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--concurrency", "0"], "≥ 1"),
        (["--concurrency", "x"], "integer"),
        (["--storage-options", "[1]"], "JSON object"),
        ([], "--to"),
    ],
    ids=["zero-concurrency", "bad-concurrency", "bad-storage-options", "missing-to"],
)
def test_cli_prefetch_bad_arguments(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    to = [] if extra == [] else ["--to", str(tmp_path)]
    with pytest.raises(SystemExit) as exc:
        main(["prefetch", str(tmp_path / "e.json"), *to, *extra])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_cli_prefetch_unknown_stage_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "e.json"
    path.write_text(json.dumps(small_export()))
    assert main(["prefetch", str(path), "--to", str(tmp_path / "o"), "--stage", "Nope"]) == 2
    assert "stage 'Nope'" in capsys.readouterr().err
