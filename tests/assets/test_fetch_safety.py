"""Hostile exports against the fetch layer (issue 9): typed errors, bounded reads, nothing
read from the local disk unasked, nothing read or written outside ``root`` / ``--to``.

Expected outcomes are the issue's own rules (which exception, what a message names,
which file must stay unwritten), and pixel values come from the PNGs each test writes;
no expected value is taken from the package's output.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pytest
from builders import H, W, make_asset, make_polygon
from httpserver import serve
from PIL import Image

from ango_torch import AngoDataset
from ango_torch.assets.fetch import AssetStore, RetryPolicy, is_local_url
from ango_torch.assets.layout import asset_path
from ango_torch.assets.prefetch import PrefetchItem, prefetch
from ango_torch.cli import main
from ango_torch.errors import (
    AngoTorchError,
    AssetFetchError,
    AssetTooLargeError,
    DecodeError,
    LimitError,
    LocalURLError,
    OntologyError,
    UnsafePathError,
)
from ango_torch.limits import override

FAST = RetryPolicy(attempts=1, timeout=2, total_timeout=5)


def _png(value: int = 7) -> bytes:
    """A W×H RGB PNG filled with ``value``: the test checks pixels against ``value``."""
    out = io.BytesIO()
    Image.fromarray(np.full((H, W, 3), value, np.uint8)).save(out, "PNG")
    return out.getvalue()


def _asset(**top: Any) -> dict[str, Any]:
    asset = make_asset([make_polygon([[1, 1], [9, 1], [5, 8]])], external_id="coins.png")
    for key, value in top.items():
        if key == "brushDataUrl":
            asset["task"]["brushDataUrl"] = value
        else:
            asset[key] = value
    return asset


@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Turn a hang (reading /dev/zero for ever) into a test failure."""

    def fail(signum: int, frame: Any) -> None:
        raise AssertionError(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def memdir() -> Iterator[str]:
    base = f"memory://safety-{uuid.uuid4().hex}"
    yield base
    fs = fsspec.filesystem("memory")
    if fs.exists(base):
        fs.rm(base, recursive=True)


# --------------------------------------------------------------------- the typed-error table
# Each case: how to build the asset and the dataset's options from tmp_path, which
# AngoTorchError subclass the first sample must raise (the rule of issue 9 item 1/3), and a
# fragment the message must hold.  Every message must also name the asset and its index.


def _root(tmp: Path) -> Path:
    root = tmp / "root"
    root.mkdir(exist_ok=True)
    (root / "coins.png").write_bytes(_png())
    return root


Case = Callable[[Path], tuple[dict[str, Any], dict[str, Any]]]

CASES: list[tuple[str, Case, type[AngoTorchError], str]] = [
    (
        "externalId-too-long",
        lambda t: (_asset(externalId="a" * 300 + ".png"), {"root": _root(t)}),
        UnsafePathError,
        "field 'externalId'.*255",
    ),
    (
        "externalId-trailing-dot",
        lambda t: (_asset(externalId="coins.png/."), {"root": _root(t)}),
        UnsafePathError,
        "field 'externalId'.*'.' or empty",
    ),
    (
        "assetId-dot-with-cache",
        lambda t: (_asset(assetId="."), {"cache_dir": t / "cache"}),
        UnsafePathError,
        "field 'assetId'",
    ),
    (
        "assetId-dotdot-with-cache",
        lambda t: (_asset(assetId=".."), {"cache_dir": t / "cache"}),
        UnsafePathError,
        "field 'assetId'",
    ),
    (
        "assetId-300-with-cache",
        lambda t: (_asset(assetId="b" * 300), {"cache_dir": t / "cache"}),
        UnsafePathError,
        "field 'assetId'.*255",
    ),
    (
        "brush-zip-chain",
        lambda t: (_asset(brushDataUrl="zip://x::/missing.zip"), {"root": _root(t)}),
        LocalURLError,
        "field 'brushDataUrl'.*allow_local_urls",
    ),
    (
        "brush-zip-chain-allowed",
        lambda t: (
            _asset(brushDataUrl=f"zip://x::{t}/missing.zip"),
            {"root": _root(t), "allow_local_urls": True},
        ),
        AssetFetchError,
        "field 'brushDataUrl'.*missing",
    ),
    (
        "malformed-url",
        lambda t: (_asset(asset="https://[::1/x"), {}),
        AssetFetchError,
        "field 'asset'.*malformed URL",
    ),
    (
        "unknown-protocol",
        lambda t: (_asset(asset="unknownproto://x/y.png"), {}),
        AssetFetchError,
        "field 'asset'.*unknownproto",
    ),
    (
        "absolute-path-url",
        lambda t: (_asset(asset=str(_root(t) / "coins.png"), externalId="x.png"), {}),
        LocalURLError,
        "field 'asset'.*names a file on this machine",
    ),
    (
        "file-url",
        lambda t: (_asset(asset=(_root(t) / "coins.png").as_uri(), externalId="x.png"), {}),
        LocalURLError,
        "field 'asset'",
    ),
    (
        "relative-path-url",
        lambda t: (_asset(asset="root/coins.png", externalId="x.png"), {}),
        LocalURLError,
        "field 'asset'",
    ),
    (
        "relative-path-url-missing-under-root",
        lambda t: (_asset(asset="root/coins.png", externalId="x.png"), {"root": _root(t)}),
        LocalURLError,
        "not found at",
    ),
    (
        "pages-local-url",
        lambda t: (_asset(dataset=["/etc/hostname"], externalId="doc.tif"), {}),
        LocalURLError,
        "field 'dataset', page 0",
    ),
    (
        "dev-zero-allowed",
        lambda t: (_asset(asset="/dev/zero"), {"allow_local_urls": True}),
        AssetFetchError,
        "not a regular file",
    ),
    (
        "folder-allowed",
        lambda t: (_asset(asset=str(t)), {"allow_local_urls": True}),
        AssetFetchError,
        "not a regular file",
    ),
]


@pytest.mark.parametrize(
    ("make", "error", "match"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_fetch_raises_typed_error_naming_asset(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make: Case,
    error: type[AngoTorchError],
    match: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # relative URLs resolve here, next to root/
    asset, options = make(tmp_path)
    with _deadline(20), pytest.raises(error, match=match) as info:
        AngoDataset([asset], task="semantic", **options)[0]
    assert f"asset {asset['externalId']!r} (#0)" in str(info.value)


@pytest.mark.parametrize(
    ("make", "error", "match"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_fetch_exits_2_on_the_command_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    make: Case,
    error: type[AngoTorchError],
    match: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    asset, options = make(tmp_path)
    path = tmp_path / "export.json"
    path.write_text(json.dumps([asset]))
    argv = ["preview", str(path), "--out", str(tmp_path / "out"), "--task", "semantic"]
    if "root" in options:
        argv += ["--root", str(options["root"])]
    if "cache_dir" in options:
        argv += ["--cache-dir", str(options["cache_dir"])]
    if options.get("allow_local_urls"):
        argv.append("--allow-local-urls")
    with _deadline(30):
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(match, err) and "(#0)" in err and "Traceback" not in err


def test_a_fifo_under_root_is_refused_not_waited_on(tmp_path: Path) -> None:
    # Opening a FIFO for reading blocks until a writer comes: it must be refused at once.
    root = tmp_path / "root"
    root.mkdir()
    os.mkfifo(root / "coins.png")
    with _deadline(10), pytest.raises(AssetFetchError, match="not a regular file"):
        AngoDataset([_asset()], root=root, task="detection")[0]


def test_dev_zero_as_url_is_refused_by_default(tmp_path: Path) -> None:
    with _deadline(10), pytest.raises(LocalURLError, match=r"'/dev/zero'.*allow_local_urls"):
        AngoDataset([_asset(asset="/dev/zero")], task="detection")[0]


# ------------------------------------------------------------------ max_asset_file_bytes


def test_local_file_over_the_limit(tmp_path: Path) -> None:
    root = _root(tmp_path)
    size = (root / "coins.png").stat().st_size
    ds = AngoDataset([_asset()], root=root, task="detection")
    assert ds[0][0].shape == (3, H, W)  # under the default limit
    with override(max_asset_file_bytes=size - 1):
        small = AngoDataset([_asset()], root=root, task="detection")
    with pytest.raises(AssetTooLargeError, match="max_asset_file_bytes") as info:
        small[0]
    assert isinstance(info.value, LimitError) and isinstance(info.value, OSError)
    assert "asset 'coins.png' (#0)" in str(info.value)


def test_http_body_over_the_limit_is_cut(tmp_path: Path) -> None:
    body = _png()
    with serve() as server, override(max_asset_file_bytes=len(body) - 1):
        server.files["/big.png"] = body
        store = AssetStore(retry=FAST)
        with pytest.raises(AssetTooLargeError, match=r"Content-Length"):
            store.fetch(asset_id="a", external_id="big.png", url=server.url("/big.png"))


def test_fsspec_object_over_the_limit(memdir: str) -> None:
    body = _png()
    fsspec.filesystem("memory").pipe_file(f"{memdir}/big.png", body)
    store = AssetStore(limits=None)
    assert store.fetch(asset_id="a", external_id="b.png", url=f"{memdir}/big.png") == body
    with override(max_asset_file_bytes=len(body) - 1):
        small = AssetStore()
    with pytest.raises(AssetTooLargeError):
        small.fetch(asset_id="a", external_id="b.png", url=f"{memdir}/big.png")


# ------------------------------------------------------------------------ odd URLs, root


def test_non_ascii_url_is_percent_encoded_and_fetched() -> None:
    with serve() as server:
        server.files["/%C3%A9t%C3%A9%20x.png"] = _png(7)  # UTF-8 of "été x", as browsers send
        ds = AngoDataset([_asset(asset=server.url("/été x.png"))], task="detection")
        ds.store.retry = FAST
        image = ds[0][0]
    assert image.shape == (3, H, W) and int(image.min()) == int(image.max()) == 7


_ROAD = {"title": "road", "tool": "brush", "color": "#ff0000"}


def test_malformed_url_does_not_break_construction() -> None:
    # Expiry parsing, brush keys and redaction must cope with it; the fetch names it.
    asset = _asset(asset="https://[::1/x?X-Amz-Date=20240101T000000Z&X-Amz-Expires=1")
    asset["task"]["brushDataUrl"] = "https://[::1/brush.png"
    ontology = {"tools": [{"title": "car", "tool": "polygon"}, _ROAD]}  # no colour discovery
    ds = AngoDataset([asset], task="semantic", ontology=ontology)
    assert len(ds) == 1
    with pytest.raises(AssetFetchError, match=r"'asset'.*malformed URL 'https://\[::1/x\?…'"):
        ds[0]
    with pytest.raises(AssetFetchError, match=r"'brushDataUrl'.*malformed URL 'https://\[::1/b"):
        AssetStore().fetch(
            asset_id="a",
            external_id="b",
            url="https://[::1/brush.png",
            kind="brush",
            content_key="k",
        )


def test_root_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "export.json"
    export.write_text(json.dumps([_asset()]))
    with pytest.raises(AssetFetchError, match="is a file, not a folder"):
        AngoDataset(export, root=export)
    out = str(tmp_path / "out")
    assert main(["preview", str(export), "--out", out, "--root", str(export)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_non_hex_brush_colour_names_the_class() -> None:
    ontology = {"tools": [{"title": "road", "tool": "brush", "color": "reddish"}]}
    with pytest.raises(OntologyError, match=r"tools\[0\] \(class 'road'\), field 'color'"):
        AngoDataset([_asset()], ontology=ontology, task="semantic")
    # A display colour of another tool may be any Pillow colour name: not an error.
    named = {"tools": [{"title": "car", "tool": "polygon", "color": "red"}]}
    assert AngoDataset([_asset()], ontology=named, task="detection").classes[1] == "car"


def test_decode_error_never_echoes_the_files_bytes(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"root:x:0:0:SECRET-TOKEN-123:/root:/bin/bash\n")
    ds = AngoDataset(
        [_asset(asset=str(secret), externalId="x.png")], task="detection", allow_local_urls=True
    )
    with pytest.raises(DecodeError) as info:
        ds[0]
    message = str(info.value)
    assert "SECRET" not in message and "root:x" not in message
    # 11 ("root:x:0:0:") + 16 (token) + 6 (":/root") + 10 (":/bin/bash") + 1 ("\n") = 44
    assert "44 bytes, plain text" in message


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("https://bucket.s3.amazonaws.com/a.png?X-Amz-Signature=x", False),
        ("http://[::1]:8080/a.png", False),  # "::" of IPv6 is no fsspec chain
        ("s3://bucket/a.png", False),
        ("memory://x/a.png", False),
        ("/etc/passwd", True),
        ("images/a.png", True),
        ("../a.png", True),
        ("file:///etc/passwd", True),
        ("FILE:///etc/passwd", True),
        ("local:///etc/passwd", True),
        ("zip://x::/missing.zip", True),
        ("simplecache::s3://bucket/a.png", True),
        ("s3://bucket/a.png::file:///x", True),
        ("dir://x", True),
        ("C:\\images\\a.png", True),
        ("", True),
    ],
)
def test_is_local_url(url: str, local: bool) -> None:
    assert is_local_url(url) is local


# ----------------------------------------------------------------- templates and symlinks


def test_template_is_expanded_once() -> None:
    # Hand-derived: the externalId is placed as it is, its "{assetId}" left alone.
    path = asset_path("/r/{assetId}/{externalId}", asset_id="x", external_id="{assetId}.png")
    assert path == "/r/x/{assetId}.png"
    path = asset_path("/r/{externalId}", asset_id="x", external_id="{externalId}{assetId}")
    assert path == "/r/{externalId}{assetId}"


def _escape_template(tmp: Path) -> tuple[dict[str, Any], str]:
    """A root template and ids that, expanded twice, read ``tmp/secret.png``."""
    (tmp / "root").mkdir(exist_ok=True)
    (tmp / "secret.png").write_bytes(_png(99))
    asset = _asset(assetId=".", externalId="{assetId}{assetId}/secret.png")
    return asset, f"{tmp}/root/{{assetId}}/{{externalId}}"


def test_template_with_crafted_ids_reads_nothing_outside_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asset, root = _escape_template(tmp_path)
    with pytest.raises(UnsafePathError, match=r"asset '\{assetId\}\{assetId\}/secret.png' \(#0\)"):
        AngoDataset([asset], root=root, task="detection")[0]
    export = tmp_path / "export.json"
    export.write_text(json.dumps([asset]))
    out = str(tmp_path / "out")
    assert main(["preview", str(export), "--out", out, "--root", root]) == 2
    assert "field 'assetId'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _symlinked_root(tmp: Path) -> Path:
    """root/coins.png → tmp/outside.png (pixel value 42), root/sub → tmp/outdir/."""
    root = tmp / "root"
    root.mkdir()
    (tmp / "outside.png").write_bytes(_png(42))
    (root / "coins.png").symlink_to(tmp / "outside.png")
    (tmp / "outdir").mkdir()
    (tmp / "outdir" / "a.png").write_bytes(_png(43))
    (root / "sub").symlink_to(tmp / "outdir", target_is_directory=True)
    (root / "inner.png").write_bytes(_png(44))
    (root / "link.png").symlink_to(root / "inner.png")  # stays inside root: followed
    return root


@pytest.mark.parametrize(("external_id", "value"), [("coins.png", 42), ("sub/a.png", 43)])
def test_symlinks_out_of_root_are_not_followed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], external_id: str, value: int
) -> None:
    root = _symlinked_root(tmp_path)
    asset = _asset(externalId=external_id)
    with pytest.raises(UnsafePathError, match=r"outside root.*follow_symlinks=True") as info:
        AngoDataset([asset], root=root, task="detection")[0]
    assert f"asset {external_id!r} (#0)" in str(info.value)
    image = AngoDataset([asset], root=root, task="detection", follow_symlinks=True)[0][0]
    assert int(image.min()) == int(image.max()) == value
    export = tmp_path / "export.json"
    export.write_text(json.dumps([asset]))
    argv = ["preview", str(export), "--out", str(tmp_path / "out"), "--root", str(root)]
    assert main(argv) == 2
    assert "outside root" in capsys.readouterr().err
    assert main([*argv, "--follow-symlinks"]) == 0


def test_symlinks_inside_root_and_a_symlinked_root_are_followed(tmp_path: Path) -> None:
    root = _symlinked_root(tmp_path)
    image = AngoDataset([_asset(externalId="link.png")], root=root, task="detection")[0][0]
    assert int(image.min()) == int(image.max()) == 44
    alias = tmp_path / "alias"
    alias.symlink_to(root, target_is_directory=True)
    image = AngoDataset([_asset(externalId="inner.png")], root=alias, task="detection")[0][0]
    assert int(image.min()) == int(image.max()) == 44


# ---------------------------------------------------------------------------- prefetch


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_prefetch_template_with_crafted_ids_writes_nothing_outside(
    tmp_path: Path, memdir: str
) -> None:
    fsspec.filesystem("memory").pipe_file(f"{memdir}/evil.png", _png())
    item = PrefetchItem(".", "{assetId}{assetId}/evil.png", f"{memdir}/evil.png")
    (tmp_path / "dest").mkdir()
    report = prefetch([item], to=f"{tmp_path}/dest/{{assetId}}/{{externalId}}", progress=False)
    assert report.fetched == 0 and len(report.failed) == 1
    assert "field 'assetId'" in report.failed[0][1]
    assert _files(tmp_path) == []


def test_prefetch_never_follows_a_symlink_out_of_its_destination(
    tmp_path: Path, memdir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fsspec.filesystem("memory").pipe_file(f"{memdir}/img.png", _png())
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "sub").symlink_to(outside, target_is_directory=True)
    asset = _asset(asset=f"{memdir}/img.png", externalId="sub/img.png")
    export = tmp_path / "export.json"
    export.write_text(json.dumps([asset]))
    # Failures are listed and exit 1 (the CLI's "problems found"), never a write outside.
    assert main(["prefetch", str(export), "--to", str(dest), "--no-brush"]) == 1
    assert "outside the destination" in capsys.readouterr().out
    assert _files(outside) == []


def test_prefetch_refuses_local_urls_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "src.png"
    source.write_bytes(_png())
    export = tmp_path / "export.json"
    export.write_text(json.dumps([_asset(asset=str(source))]))
    dest = tmp_path / "dest"
    assert main(["prefetch", str(export), "--to", str(dest), "--no-brush"]) == 1
    assert "allow_local_urls" in capsys.readouterr().out
    assert not (dest / "coins.png").exists()
    argv = ["prefetch", str(export), "--to", str(dest), "--no-brush", "--allow-local-urls"]
    assert main(argv) == 0
    assert (dest / "coins.png").read_bytes() == source.read_bytes()


def test_reading_a_small_local_file_does_not_allocate_the_limit(tmp_path: Path) -> None:
    """``read_local`` asks for the file's size, not for ``limit`` bytes (read(n) allocates
    n up front). Reference: tracemalloc's peak for a 10-byte file under a 1 GiB limit."""
    import tracemalloc

    from ango_torch.assets._local import read_local

    path = tmp_path / "small.bin"
    path.write_bytes(b"0123456789")
    tracemalloc.start()
    try:
        data = read_local(str(path), "asset #0", 1 << 30)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert data == b"0123456789"
    assert peak < 1 << 20
