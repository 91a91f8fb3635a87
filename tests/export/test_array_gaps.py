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
from ango_torch.errors import ExportFormatError, LimitError
from ango_torch.export import _scan, _typed
from ango_torch.limits import override

A = b'{"externalId": "a", "task": {"tools": []}}'
B = b'{"externalId": "b", "task": {"tools": []}}'

BOM = b"\xef\xbb\xbf"
VALID = [
    b"[]",
    b"[ \t\r\n]",
    b"[" + A + b"]",
    b"[ " + A + b" , " + B + b" ]",
    b"[\n\t" + A + b",\r\n  " + B + b"\n]\n  \n",
    BOM + b"[" + A + b"]",
    b" " * 40 + b"[" + A + b"]",  # blanks longer than a read
]
INVALID = {
    "data after an element": b"[" + A + b" x]",
    "form feed after an element": b"[" + A + b"\x0c]",
    "form feed before an element": b"[" + A + b",\x0c" + B + b"]",
    "data before the first element": b"[x " + A + b"]",
    "data after an element, before a comma": b"[" + A + b" x, " + B + b"]",
    "data and no comma between two elements": b"[" + A + b" x " + B + b"]",
    "no comma": b"[" + A + b" " + B + b"]",
    "a number between two elements": b"[" + A + b", -1.5 " + B + b"]",
    "a string after an element": b"[" + A + b' "s"]',
    "only a form feed": b"[\x0c]",
    "a brace closing the array": b"[" + A + b"}",
    "a brace closing an empty array": b"[}",
    "data after the array": b"[" + A + b"] x",
    "data after blanks after the array": b"[" + A + b"]   \n\n   x",
    "vertical tab after the array": b"[" + A + b"] \x0b",
    "a byte before the array": b"\xbb[" + A + b"]",
    "a BOM after blanks": b" " + BOM + b"[" + A + b"]",
    "two BOMs": BOM + BOM + b"[" + A + b"]",
}
CHUNKS = [3, 5, 7, 16, 1 << 20]


def _load(path: Path, typed: bool, monkeypatch: pytest.MonkeyPatch) -> int:
    with monkeypatch.context() as m:
        m.setattr(_typed, "AVAILABLE", typed)
        return len(ango_torch.load_export(path, progress_bar=False, workers=1))


def test_only_blanks_and_commas_between_elements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every read size (the gaps cut across reads) and both paths: the valid files load
    as ``json.loads`` reads them; each invalid one raises the same message (naming bytes
    of the file, not of a read) every time."""
    path = tmp_path / "e.json"
    messages: dict[str, set[str]] = {case: set() for case in INVALID}
    for chunk in CHUNKS:
        monkeypatch.setattr(_scan, "CHUNK", chunk)
        for typed in (True, False):
            for text in VALID:
                path.write_bytes(text)
                assert _load(path, typed, monkeypatch) == len(json.loads(text)), (chunk, text)
            for case, text in INVALID.items():
                with pytest.raises(ValueError):  # (JSONDecodeError, UnicodeDecodeError)
                    json.loads(text)
                path.write_bytes(text)
                with pytest.raises(ExportFormatError) as got:
                    _load(path, typed, monkeypatch)
                assert "asset (#" not in str(got.value), (case, str(got.value))  # the array's
                messages[case].add(str(got.value))
    for case, seen in messages.items():
        assert len(seen) == 1, (case, seen)


def test_ndjson_blank_lines_are_json_blanks(tmp_path: Path) -> None:
    """Reference: ``json.loads`` of each line that is not JSON whitespace only
    (``\x0b``/``\x0c`` are not: such a line used to be skipped as blank)."""
    path = tmp_path / "e.ndjson"
    path.write_bytes(A + b"\n \t\r\n\n" + B + b"\n")
    assert len(ango_torch.load_export(path, progress_bar=False)) == 2
    # One BOM may start the file (json.loads reads it so; orjson refuses it).
    for text in (BOM + A + b"\n" + B, BOM + b"\n" + A + b"\n" + B + b"\n"):
        path.write_bytes(text)
        export = ango_torch.load_export(path, progress_bar=False, on_error="skip")
        assert [a.external_id for a in export] == ["a", "b"] and not export.skipped_count
    path.write_bytes(A + b"\n" + BOM + B + b"\n")  # (only at the start)
    with pytest.raises(ExportFormatError, match=r"asset \(#1\).*invalid JSON"):
        ango_torch.load_export(path, progress_bar=False)
    for blank in (b"\x0b", b" \x0c "):
        text = A + b"\n" + blank + b"\r\n" + B + b"\n"
        with pytest.raises(ValueError):
            json.loads(blank)
        path.write_bytes(text)
        with pytest.raises(ExportFormatError, match=r"asset \(#1\).*invalid JSON"):
            ango_torch.load_export(path, progress_bar=False)
        export = ango_torch.load_export(path, progress_bar=False, on_error="skip")
        assert len(export) == 2 and [s.index for s in export.skipped] == [1]


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


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"  \n"])
def test_a_bom_and_a_line_end_are_not_counted_in_max_asset_bytes(
    end: bytes, tmp_path: Path
) -> None:
    """Reference: the limit is on the asset's JSON text (``len(A)``), as for a line read
    whole.  With the BOM, the line is read in pieces (its first read stops before its
    end), and its end was counted (found by fuzzing, issue 14).  (Without a BOM, blanks
    before the newline that the first read takes are still counted: README, Known gaps.)"""
    path = tmp_path / "e.ndjson"
    with override(max_asset_bytes=len(A)):
        for text in (A + b"\n", BOM + A + end):
            path.write_bytes(text)
            assert len(ango_torch.load_export(path, progress_bar=False)) == 1, text
        path.write_bytes(BOM + A[:-1] + b' , "p": 1}' + end)
        with pytest.raises(LimitError, match="larger than max_asset_bytes"):
            ango_torch.load_export(path, progress_bar=False)
