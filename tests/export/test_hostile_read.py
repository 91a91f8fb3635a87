"""Hostile and broken export files: typed errors, bounded memory, CLI exit status 2.

Each case builds its file in ``tmp_path`` with the standard library (gzip, zipfile,
json) and byte patches at offsets taken from the formats' specifications (RFC 1952
for gzip, PKWARE APPNOTE 4.3.7/4.3.12 for ZIP headers), never from ango_torch's output.
The expected outcome of every case is "this file is malformed or hostile", so the
expected exception comes from the format, not from the code under test.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from builders import make_asset, make_box

import ango_torch
from ango_torch import cli
from ango_torch.errors import (
    ArchiveError,
    DecompressionBombError,
    ExportFormatError,
    LimitError,
)
from ango_torch.limits import ENV, Limits, current, override


def _array() -> bytes:
    return json.dumps([make_asset([make_box(1, 1, 2, 3)]) for _ in range(3)]).encode()


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _patch_zip_headers(data: bytes, local_off: int, central_off: int, value: int) -> bytes:
    """Set a 2-byte field in every local (PK\\3\\4) and central (PK\\1\\2) header."""
    out = bytearray(data)
    for sig, off in ((b"PK\x03\x04", local_off), (b"PK\x01\x02", central_off)):
        pos = out.find(sig)
        while pos >= 0:
            struct.pack_into("<H", out, pos + off, value)
            pos = out.find(sig, pos + 4)
    return bytes(out)


def _gz_bad_crc() -> bytes:
    # RFC 1952: the member ends with CRC32 then ISIZE (4 bytes each, little endian).
    gz = bytearray(gzip.compress(_array()))
    gz[-8] ^= 0xFF
    return bytes(gz)


def _gz_corrupt_deflate() -> bytes:
    # A 10-byte header, then the deflate stream: overwrite bytes in its middle.
    gz = bytearray(gzip.compress(_array()))
    mid = len(gz) // 2
    gz[mid : mid + 16] = b"\xff" * 16
    return bytes(gz)


def _zip_crc_mismatch() -> bytes:
    data = _array()
    z = bytearray(_zip({"export.json": data}))
    pos = z.find(data)  # stored: the member's bytes appear verbatim
    z[pos + len(data) // 2] ^= 0x01
    return bytes(z)


def _zip_nested(depth: int) -> bytes:
    data = _array()
    for _ in range(depth):
        data = _zip({"export.json": data})
    return data


def _deep_classification(depth: int) -> dict[str, Any]:
    c: dict[str, Any] = {"title": "leaf", "tool": "text", "answer": "x"}
    for _ in range(depth):
        c = {"title": "n", "tool": "radio", "answer": "a", "classifications": [c]}
    asset = make_asset([], external_id="deep.png")
    asset["task"]["classifications"] = [c]
    return asset


def _deep_array_file() -> bytes:
    good = make_asset([])
    return json.dumps([good, _deep_classification(300)]).encode()


def _deep_ndjson_file() -> bytes:
    lines = [make_asset([]), make_asset([]), _deep_classification(300)]
    return b"\n".join(json.dumps(a).encode() for a in lines) + b"\n"


def _one_big_asset(nbytes: int) -> bytes:
    a = make_asset([], external_id="big.png")
    a["padding"] = "A" * nbytes
    return json.dumps([a]).encode()


def _empty_assets(n: int) -> bytes:
    return b"[" + b",".join([b"{}"] * n) + b"]"


def _long_ndjson_line(nbytes: int) -> bytes:
    a = make_asset([], external_id="long.png")
    a["padding"] = "A" * nbytes
    return json.dumps(make_asset([])).encode() + b"\n" + json.dumps(a).encode() + b"\n"


# Lowered limits make the bombs small: 4 MiB of output stands in for 2 GiB.
SMALL = {"max_asset_bytes": 1 << 20, "expansion_grace_bytes": 64 << 10}

CASES: list[tuple[str, Callable[[], bytes], dict[str, Any], type[Exception], str]] = [
    # id, file bytes, limits, expected exception, message pattern
    ("gz-truncated", lambda: gzip.compress(_array())[:-30], {}, ArchiveError, r"truncated"),
    ("gz-bad-crc", _gz_bad_crc, {}, ArchiveError, r"corrupt gzip"),
    (
        "gz-trailing-garbage",
        lambda: gzip.compress(_array()) + b"garbage!",
        {},
        ArchiveError,
        r"corrupt gzip",
    ),
    ("gz-corrupt-deflate", _gz_corrupt_deflate, {}, ArchiveError, r"corrupt gzip|truncated"),
    ("gz-in-gz", lambda: gzip.compress(gzip.compress(_array())), {}, ArchiveError, r"nested"),
    ("zip-crc-mismatch", _zip_crc_mismatch, {}, ArchiveError, r"corrupt ZIP"),
    (
        # APPNOTE: general purpose flag bit 0 = encrypted (local +6, central +8).
        "zip-encrypted",
        lambda: _patch_zip_headers(_zip({"export.json": _array()}), 6, 8, 0x1),
        {},
        ArchiveError,
        r"encrypted",
    ),
    (
        # APPNOTE: compression method 99 (AES) at local +8, central +10.
        "zip-unsupported-compression",
        lambda: _patch_zip_headers(_zip({"export.json": _array()}), 8, 10, 99),
        {},
        ArchiveError,
        r"compression method",
    ),
    ("zip-in-zip", lambda: _zip_nested(2), {}, ArchiveError, r"nested"),
    ("zip-nested-300", lambda: _zip_nested(300), {}, ArchiveError, r"nested"),
    (
        "zip-of-gz-of-gz",
        lambda: _zip({"e.json.gz": gzip.compress(gzip.compress(_array()))}),
        {},
        ArchiveError,
        r"nested",
    ),
    ("array-deep-nesting", _deep_array_file, {}, LimitError, r"#1.*max_depth"),
    ("ndjson-deep-nesting", _deep_ndjson_file, {}, LimitError, r"#2.*line 3.*max_depth"),
    ("array-of-one-number", lambda: b"[1]", {}, ExportFormatError, r"element #0.*not an object"),
    ("array-of-null", lambda: b"[ null ]", {}, ExportFormatError, r"element #0.*not an object"),
    (
        "number-after-asset",
        lambda: json.dumps([make_asset([]), 7]).encode(),
        {},
        ExportFormatError,
        r"element #1.*not an object",
    ),
    (
        "one-huge-asset",
        lambda: _one_big_asset(3 << 20),
        SMALL | {"max_expansion_ratio": 1e9},
        LimitError,
        r"#0.*max_asset_bytes",
    ),
    (
        "gz-one-huge-asset",
        lambda: gzip.compress(_one_big_asset(4 << 20)),
        SMALL | {"max_expansion_ratio": 1e9},
        LimitError,
        r"#0.*max_asset_bytes",
    ),
    (
        "gz-huge-asset-ratio",
        lambda: gzip.compress(_one_big_asset(4 << 20)),
        SMALL,
        DecompressionBombError,
        r"max_expansion_ratio",
    ),
    (
        "gz-many-empty-assets",
        lambda: gzip.compress(_empty_assets(2_000_000), 9),
        SMALL,
        DecompressionBombError,
        r"max_expansion_ratio",
    ),
    (
        "zip-many-empty-assets",
        lambda: _zip({"e.json": _empty_assets(2_000_000)}, zipfile.ZIP_DEFLATED),
        SMALL,
        DecompressionBombError,
        r"max_expansion_ratio",
    ),
    (
        "ndjson-long-line",
        lambda: _long_ndjson_line(3 << 20),
        SMALL,
        LimitError,
        r"#1.*line 2.*max_asset_bytes",
    ),
    (
        "zip-ndjson-long-line",
        lambda: _zip({"e.ndjson": _long_ndjson_line(4 << 20)}, zipfile.ZIP_DEFLATED),
        SMALL | {"max_expansion_ratio": 1e9},
        LimitError,
        r"#1.*line 2.*max_asset_bytes",
    ),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize(("case", "build", "limits", "exc", "match"), CASES, ids=IDS)
@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_hostile_file_raises_typed_error(
    tmp_path: Path,
    case: str,
    build: Callable[[], bytes],
    limits: dict[str, Any],
    exc: type[Exception],
    match: str,
    on_error: Any,
) -> None:
    path = tmp_path / case
    path.write_bytes(build())
    with override(**limits), pytest.raises(exc, match=match) as info:
        ango_torch.load_export(path, on_error=on_error)
    assert isinstance(info.value, ango_torch.AngoTorchError)
    assert case in str(info.value)  # names the export file


@pytest.mark.parametrize(("case", "build", "limits", "exc", "match"), CASES, ids=IDS)
def test_cli_exits_2_with_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    build: Callable[[], bytes],
    limits: dict[str, Any],
    exc: type[Exception],
    match: str,
) -> None:
    path = tmp_path / case
    path.write_bytes(build())
    for command in ("inspect", "validate"):
        with override(**limits):
            assert cli.main([command, str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"ango-torch {command}: error: ") and err.count("\n") == 1, err


def test_limits_keyword_overrides_for_one_call(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_bytes(json.dumps([make_asset([]), _deep_classification(100)]).encode())
    with pytest.raises(LimitError, match=r"#1.*max_depth"):
        ango_torch.load_export(path)
    # 100 classification levels are 2 JSON levels each (list + object) below the asset,
    # task, classifications list and top classification: 4 + 2 * 100 = 204 levels.
    with pytest.raises(LimitError, match=r"#1.*max_depth"):
        ango_torch.load_export(path, limits=Limits(max_depth=203))
    export = ango_torch.load_export(path, limits=Limits(max_depth=204))
    assert [a.external_id for a in export][1] == "deep.png"
    with pytest.raises(ValueError, match="max_depth"):
        Limits(max_depth=256)  # beyond what orjson encodes


def test_parsed_dicts_too_deep_raise(tmp_path: Path) -> None:
    # A 1,000-deep chain of dicts (deeper than Python's default recursion limit).
    asset = make_asset([], external_id="chain.png")
    node: dict[str, Any] = {}
    asset["metadata"]["x"] = node
    for _ in range(1000):
        node["x"] = {}
        node = node["x"]
    for on_error in ("raise", "skip"):
        with pytest.raises(LimitError, match=r"'chain.png' \(#1\).*max_depth"):
            ango_torch.load_export([make_asset([]), asset], on_error=on_error)


def test_depth_at_the_limit_is_accepted(tmp_path: Path) -> None:
    # Asset = level 1, metadata = 2, then 62 nested dicts: 64 levels, the default limit.
    asset = make_asset([], external_id="edge.png")
    node = asset["metadata"]
    for _ in range(62):
        node["x"] = {}
        node = node["x"]
    path = tmp_path / "edge.json"
    path.write_bytes(json.dumps([asset]).encode())
    assert current().max_depth == 64
    assert ango_torch.load_export(path)[0].external_id == "edge.png"
    assert ango_torch.load_export([asset])[0].external_id == "edge.png"
    node["x"] = {}  # 65 levels
    path.write_bytes(json.dumps([asset]).encode())
    with pytest.raises(LimitError, match=r"#0.*more than 64 levels"):
        ango_torch.load_export(path)
    with pytest.raises(LimitError, match=r"#0.*more than 64 levels"):
        ango_torch.load_export([asset])


def test_skip_keeps_first_n_reasons_and_counts_the_rest(tmp_path: Path) -> None:
    # 5,000 '{}' assets, each without assetId/externalId: 5,000 skipped by construction.
    path = tmp_path / "empty.json"
    path.write_bytes(_empty_assets(5000))
    with override(max_skipped=10):
        export = ango_torch.load_export(path, on_error="skip")
    assert len(export) == 0
    assert len(export.skipped) == 10 and export.skipped_count == 5000
    assert [s.index for s in export.skipped] == list(range(10))


def test_gzip_bomb_memory_stays_bounded(tmp_path: Path) -> None:
    # 64 MiB of one asset's padding, compressed ~1000x; with the ratio check off, the
    # 1 MiB asset limit must stop it after about one read chunk (8 MiB), never holding
    # the whole member.
    path = tmp_path / "bomb.json.gz"
    with gzip.open(path, "wb", 9) as g:
        g.write(b'[{"externalId": "bomb.png", "padding": "')
        block = b"A" * (1 << 20)
        for _ in range(64):
            g.write(block)
        g.write(b'"}]')
    assert path.stat().st_size < 256 << 10
    tracemalloc.start()
    try:
        with (
            override(max_asset_bytes=1 << 20, max_expansion_ratio=1e9),
            pytest.raises(LimitError, match="max_asset_bytes"),
        ):
            ango_torch.load_export(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40 << 20, peak


def test_zlib_errors_are_not_leaked_for_zip_deflate(tmp_path: Path) -> None:
    # A deflated member whose compressed bytes are garbled: zlib.error inside zipfile.
    data = _array()
    z = bytearray(_zip({"export.json": data}, zipfile.ZIP_DEFLATED))
    start = z.find(b"export.json") + len("export.json")
    z[start + 10 : start + 40] = b"\xff" * 30
    path = tmp_path / "garbled.zip"
    path.write_bytes(bytes(z))
    with pytest.raises(ArchiveError, match="corrupt ZIP"):
        ango_torch.load_export(path)


def test_validate_and_inspect_count_skipped_beyond_the_kept_reasons(tmp_path: Path) -> None:
    from ango_torch.export.validate import find_problems, summarize

    # 50 '{}' assets (no assetId/externalId): 50 unreadable by construction, 5 kept.
    path = tmp_path / "empty.json"
    path.write_bytes(_empty_assets(50))
    with override(max_skipped=5):
        export = ango_torch.load_export(path, on_error="skip")
    assert summarize(export)["skipped"] == 50
    malformed = [p for p in find_problems(export) if p.code == "malformed"]
    assert len(malformed) == 6 and "45 more unreadable assets" in malformed[-1].message


def test_cli_subprocess_exit_2_and_env_override(tmp_path: Path) -> None:
    # The deep file of the table (604 JSON levels) against the default max_depth=64,
    # then a 204-level one with the limit raised through ANGO_TORCH_LIMITS.
    deep = tmp_path / "deep.json"
    deep.write_bytes(_deep_array_file())
    cmd = [sys.executable, "-m", "ango_torch", "inspect", str(deep)]
    env = {k: v for k, v in os.environ.items() if k != ENV}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "max_depth" in done.stderr
    ok = tmp_path / "ok.json"
    ok.write_bytes(json.dumps([make_asset([]), _deep_classification(100)]).encode())
    cmd[-1] = str(ok)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    env[ENV] = "max_depth=204"
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "assets       2 (0 unreadable)" in done.stdout


def test_env_limits_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "max_depth=12, max_expansion_ratio=50.5")
    assert (current().max_depth, current().max_expansion_ratio) == (12, 50.5)
    monkeypatch.setenv(ENV, "max_dpth=12")
    with pytest.raises(ValueError, match="unknown limit 'max_dpth'"):
        current()
    monkeypatch.setenv(ENV, "max_depth=lots")
    with pytest.raises(ValueError, match="not a number"):
        current()


@pytest.mark.parametrize("element", [5, None, "x"], ids=["int", "null", "str"])
def test_parsed_list_with_a_non_object_is_a_format_error(element: Any) -> None:
    # Not a dict: malformed by the format's definition (each asset is a JSON object).
    with pytest.raises(ExportFormatError):
        ango_torch.load_export([make_asset([]), element])


@pytest.mark.parametrize("where_", ["externalId", "title", "key"])
def test_parsed_list_with_a_lone_surrogate_is_a_format_error(where_: str) -> None:
    # A JSON file cannot hold a lone surrogate (orjson and json refuse "\ud800" text as
    # UTF-8); an already-parsed dict can, and UTF-8 tables cannot store it.
    asset = make_asset([make_box(1, 1, 3, 3)])
    if where_ == "externalId":
        asset["externalId"] = "a\ud800b"
    elif where_ == "title":
        asset["task"]["tools"][0]["title"] = "a\ud800b"
    else:
        asset["task"]["tools"][0]["x\udc00"] = 1
    with pytest.raises(ExportFormatError, match=r"asset .*\(#1\).*lone surrogate"):
        ango_torch.load_export([make_asset([]), asset])
