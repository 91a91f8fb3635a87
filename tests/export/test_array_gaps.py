"""What lies between an array export's elements: JSON whitespace and commas only.

Reference: Python's ``json.loads`` of the whole file (which refuses any other byte
there, ``\\x0b``/``\\x0c`` included, and a missing comma).  The byte scan used to take
the elements and skip whatever lay between them, so ``[{…} x]`` loaded (found by review,
issue 14).  The scan reads in chunks of 3 bytes up to 1 MiB (monkeypatched), so each gap
is also cut across reads; the typed path hands such a file to the scan.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ango_torch
from ango_torch.errors import ExportFormatError
from ango_torch.export import _scan, _typed

A = b'{"externalId": "a", "task": {"tools": []}}'
B = b'{"externalId": "b", "task": {"tools": []}}'

VALID = [
    b"[]",
    b"[ \t\r\n]",
    b"[" + A + b"]",
    b"[ " + A + b" , " + B + b" ]",
    b"[\n\t" + A + b",\r\n  " + B + b"\n]\n  \n",
]
INVALID = {
    "data after an element": b"[" + A + b" x]",
    "form feed after an element": b"[" + A + b"\x0c]",
    "form feed before an element": b"[" + A + b",\x0c" + B + b"]",
    "data before the first element": b"[x " + A + b"]",
    "data after an element, before a comma": b"[" + A + b" x, " + B + b"]",
    "no comma": b"[" + A + b" " + B + b"]",
    "a number between two elements": b"[" + A + b", 7 " + B + b"]",
    "a string after an element": b"[" + A + b' "s"]',
    "only a form feed": b"[\x0c]",
    "data after the array": b"[" + A + b"] x",
    "data after blanks after the array": b"[" + A + b"]   \n\n   x",
    "vertical tab after the array": b"[" + A + b"] \x0b",
}


def _load(path: Path, typed: bool, monkeypatch: pytest.MonkeyPatch) -> int:
    with monkeypatch.context() as m:
        m.setattr(_typed, "AVAILABLE", typed)
        return len(ango_torch.load_export(path, progress_bar=False, workers=1))


@pytest.mark.parametrize("typed", [True, False], ids=["typed", "untyped"])
@pytest.mark.parametrize("chunk", [3, 5, 16, 1 << 20])
def test_only_blanks_and_commas_between_elements(
    chunk: int, typed: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_scan, "CHUNK", chunk)
    path = tmp_path / "e.json"
    for text in VALID:
        path.write_bytes(text)
        assert _load(path, typed, monkeypatch) == len(json.loads(text)), text
    for case, text in INVALID.items():
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
        path.write_bytes(text)
        with pytest.raises(ExportFormatError) as got:
            _load(path, typed, monkeypatch)
        assert "asset (#" not in str(got.value), (case, str(got.value))  # the array's fault


@pytest.mark.parametrize("chunk", [3, 16, 1 << 20])
def test_stray_data_names_where_it_is(
    chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reference: the byte offsets read off the texts by hand (``bytes.index``)."""
    monkeypatch.setattr(_scan, "CHUNK", chunk)
    path = tmp_path / "e.json"
    text = b"[" + A + b", " + B + b" x]"
    path.write_bytes(text)
    at = text.index(b"x]")
    with pytest.raises(ExportFormatError, match=rf"b'x' between .* element #1 \(byte {at}\)"):
        _load(path, False, monkeypatch)
    text = b"[" + A + b"," + B + b"  " + A + b"]"
    path.write_bytes(text)
    at = text.rindex(A)
    with pytest.raises(ExportFormatError, match=rf"no comma .* #1 and #2 \(byte {at}\)"):
        _load(path, False, monkeypatch)


def test_an_invalid_asset_before_stray_data_is_reported_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reference: the file's order (asset #0 comes first)."""
    path = tmp_path / "e.json"
    path.write_bytes(b'[{"externalId": "a", "x": tru}, ' + B + b" x]")
    for typed in (True, False):
        with pytest.raises(ExportFormatError, match=r"asset \(#0\).*invalid JSON"):
            _load(path, typed, monkeypatch)
