"""File kinds (JSON, NDJSON, ZIP, gzip), fsspec sources, and broken files."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import fsspec
import pytest
from builders import make_asset, make_box, make_polygon

import ango_torch
import ango_torch.export._read as read
from ango_torch.errors import AssetFetchError, ExportFormatError


def _assets(n: int = 4) -> list[dict[str, Any]]:
    tricky = make_asset([make_polygon([[1, 1], [9, 1], [5, 8]])], external_id='we"ird]}{.png')
    tricky["task"]["classifications"] = [
        {"title": "note", "tool": "text", "answer": 'a \\"quoted\\" ] } \\\\ text'}
    ]
    return [tricky] + [make_asset([make_box(i, 1, 2, 3)]) for i in range(n - 1)]


def _write(path: Path, kind: str, assets: list[dict[str, Any]]) -> Path:
    array = json.dumps(assets, indent=2).encode()
    ndjson = "\n".join(json.dumps(a) for a in assets).encode() + b"\n"
    if kind == "json":
        path.write_bytes(array)
    elif kind == "ndjson":
        path.write_bytes(ndjson)
    elif kind == "json.gz":
        path.write_bytes(gzip.compress(array))
    elif kind == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("export-2026.json", array)
    elif kind == "ndjson.zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("export.ndjson", ndjson)
    return path


@pytest.mark.parametrize("kind", ["json", "ndjson", "json.gz", "zip", "ndjson.zip"])
def test_every_file_kind_reads_the_same(tmp_path: Path, kind: str) -> None:
    assets = _assets()
    export = ango_torch.load_export(_write(tmp_path / f"e.{kind}", kind, assets))
    expected = ango_torch.load_export(assets)
    assert len(export) == len(assets) == 4
    assert [a.external_id for a in export] == [a.external_id for a in expected]
    assert export[0].external_id == 'we"ird]}{.png'
    assert (
        export[0].task.answer.classifications[0].answer
        == assets[0]["task"]["classifications"][0]["answer"]
    )
    assert export[1].task.answer.tools[0].geometry == expected[1].task.answer.tools[0].geometry


def test_small_chunks_split_elements_correctly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Elements, strings and escapes that straddle chunk boundaries."""
    monkeypatch.setattr(read, "CHUNK", 5)
    assets = _assets(6)
    export = ango_torch.load_export(_write(tmp_path / "e.json", "json", assets))
    assert [a.external_id for a in export] == [a["externalId"] for a in assets]


def test_fsspec_memory_url_with_storage_options() -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/exports/e.json", json.dumps(_assets()).encode())
    export = ango_torch.load_export("memory://exports/e.json", storage_options={})
    assert len(export) == 4 and export.source == "memory://exports/e.json"


BROKEN: list[tuple[bytes | None, type[Exception], str]] = [
    (
        b'[{"externalId": "a", "task": {}}, {"externalId": "b", "ta',
        ExportFormatError,
        r"truncated.*after 1 complete assets",
    ),
    (b'{"not": "an export"}', ExportFormatError, r"neither assetId nor externalId"),
    (b"hello world", ExportFormatError, r"not an Ango export"),
    (b"", ExportFormatError, r"empty"),
    (b"[1, 2]", ExportFormatError, r"every asset must be a JSON object"),
    (
        b'{"externalId": "a", "task": {}}\n{"externalId": "b", "task": {\n',
        ExportFormatError,
        r"line 2: invalid JSON",
    ),
    (b'[{"externalId": "a", "task": {}}] trailing', ExportFormatError, r"after the array"),
    (b'[{"externalId": "a", "task": {"tools": [1,]}}]', ExportFormatError, r"#0.*invalid JSON"),
]


@pytest.mark.parametrize(
    ("data", "exc", "match"),
    BROKEN,
    ids=[
        "truncated",
        "object-not-export",
        "not-json",
        "empty-file",
        "array-of-numbers",
        "ndjson-broken-line",
        "trailing-garbage",
        "bad-json-inside",
    ],
)
def test_broken_files(tmp_path: Path, data: bytes, exc: type[Exception], match: str) -> None:
    path = tmp_path / "e.json"
    path.write_bytes(data)
    with pytest.raises(exc, match=match):
        ango_torch.load_export(path)


def test_zip_problems(tmp_path: Path) -> None:
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("readme.txt", "hi")
    with pytest.raises(ExportFormatError, match=r"holds no \.json.*readme\.txt"):
        ango_torch.load_export(empty)
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as z:
        z.writestr("a.json", "[]")
        z.writestr("b.json", "[]")
    with pytest.raises(ExportFormatError, match=r"2 export files"):
        ango_torch.load_export(two)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ExportFormatError, match="corrupt ZIP"):
        ango_torch.load_export(bad)


def test_missing_file_is_a_fetch_error(tmp_path: Path) -> None:
    with pytest.raises(AssetFetchError, match="not found"):
        ango_torch.load_export(tmp_path / "nope.json")


def test_not_a_source_type() -> None:
    with pytest.raises(ExportFormatError, match="expects a path"):
        ango_torch.load_export(42)  # type: ignore[arg-type]


def test_skip_keeps_reading_after_bad_json(tmp_path: Path) -> None:
    good = json.dumps(make_asset([]))
    path = tmp_path / "e.ndjson"
    path.write_text(f"{good}\n{{broken\n{good}\n")
    export = ango_torch.load_export(path, on_error="skip")
    assert len(export) == 2 and len(export.skipped) == 1
    assert "line 2" in export.skipped[0].reason


def test_streaming_reads_one_asset_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The array splitter never holds more than a chunk plus one element."""
    monkeypatch.setattr(read, "CHUNK", 64)
    assets = _assets(50)
    data = json.dumps(assets).encode()
    sizes = [len(r.data) for r in read.iter_raw_assets(io.BufferedReader(io.BytesIO(data)), "m")]
    assert len(sizes) == 50 and max(sizes) < 2000 < len(data)
