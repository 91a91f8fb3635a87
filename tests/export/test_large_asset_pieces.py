"""A large asset (a long video) is read in pieces along its ``task.tools`` (``_split``).

Reference: the same asset decoded whole with ``json.loads`` and indexed through the
list-of-dicts path (``load_export([dict])``: the parser on the unsplit asset); every
index column must be equal.  The split thresholds are lowered (monkeypatched) so that a
few-KiB asset is cut at every entry, including entries whose strings hold brackets,
commas, escaped quotes and backslashes, and nested classifications.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ango_torch
from ango_torch.errors import ExportFormatError, LimitError
from ango_torch.export import _read, _scan, _split
from ango_torch.export._indexing import index_raw
from ango_torch.export._read import iter_raw_assets
from ango_torch.limits import override
from ango_torch.targets.tracks import asset_tracks

NASTY = 'a "quoted" ],{[} \\ back\\slash, "tools": [1, 2]'


def _entry(frame: int, track: int) -> dict[str, Any]:
    nested = {"schemaId": "c", "title": "colour", "answer": f"red {NASTY}", "classifications": []}
    geometry: dict[str, Any]
    if track == 1:
        geometry = {"polygon": [[1 + frame, 1], [9, 1], [5, 8 + frame / 3]]}
    elif track == 2:
        geometry = {"point": [2.5 + frame, 3]}
    else:
        geometry = {"bounding-box": {"x": frame, "y": 2, "width": 4, "height": 3}}
    return {
        **geometry,
        "objectId": f"t{track} {NASTY}" if track else "t0",
        "schemaId": "s",
        "title": f"car [{track}]",
        "page": frame,
        "classifications": [{"objectId": f"c{frame}", **nested, "classifications": [nested]}],
    }


def _question() -> dict[str, Any]:
    return {"objectId": "q", "schemaId": "q", "title": "weather", "answer": NASTY, "page": 0}


def video(
    frames: int = 30, tracks: int = 3, external_id: str = "v.mp4", task_first: bool = True
) -> dict[str, Any]:
    """A video asset with its keys in awkward places: ``task`` first (the asset's own
    fields after it: pieces are made once the asset ends), ``stageHistory`` and
    ``classifications`` before ``tools``; or (``task_first=False``) ``task`` last and
    ``stageHistory`` after ``tools`` (pieces are made as the entries arrive)."""
    tools = [_entry(f, t) for f in range(frames) for t in range(tracks)]
    stage = {"stage": "Review", "stageId": "s1", "tools": tools[:4], "classifications": []}
    task = {
        "stageHistory": [stage],
        "classifications": [_question()],
        "taskId": "t",
        "stage": "Complete",
        "tools": tools,
        "relations": [],
        "stageId": "Complete",
    }
    fields = {
        "externalId": external_id,
        "assetId": f"id-{external_id}",
        "asset": f"https://b/{external_id}",
        "metadata": {"width": 64, "height": 48, "frameTotal": frames, "frameRate": 30},
    }
    if task_first:
        return {"task": task, **fields}
    task["stageHistory"] = task.pop("stageHistory")  # after tools
    return {**fields, "task": task}


def _small(n: int) -> dict[str, Any]:
    return {
        "externalId": f"img{n}.png",
        "metadata": {"width": 8, "height": 8},
        "task": {"tools": [_entry(0, 0)]},
    }


def _file(assets: list[dict[str, Any]], kind: str, indent: int | None = 1) -> bytes:
    if kind == "ndjson":
        return b"".join(json.dumps(a).encode() + b"\n" for a in assets)
    data = json.dumps(assets, indent=indent).encode()
    return gzip.compress(data) if kind == "gzip" else data


@pytest.fixture
def tiny_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split every asset above 2 KiB, one or two entries per piece."""
    monkeypatch.setattr(_split, "SPLIT_BYTES", 2048)
    monkeypatch.setattr(_split, "PIECE_BYTES", 700)


def _assert_same_index(a: ango_torch.AngoExport, b: ango_torch.AngoExport) -> None:
    A, B = a.index.arrays, b.index.arrays
    assert A.keys() == B.keys()
    for k in A:
        if k != "meta":
            assert np.array_equal(A[k], B[k], equal_nan=A[k].dtype.kind == "f"), k


def _pieces(data: bytes) -> list[Any]:
    return list(iter_raw_assets(io.BufferedReader(io.BytesIO(data)), "e"))


@pytest.fixture(params=["typed", "parser"])
def decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Pieces decoded by the typed path (where installed) or by the parser."""
    if request.param == "parser":
        try:
            from ango_torch.export import _typed
        except ImportError:
            return "parser"
        monkeypatch.setattr(_typed, "AVAILABLE", False)
    return str(request.param)


@pytest.mark.parametrize("task_first", [True, False], ids=["task-first", "task-last"])
@pytest.mark.parametrize("chunk", [1000, 8 << 20], ids=["1k-reads", "8M-reads"])
@pytest.mark.parametrize("kind", ["array", "ndjson", "gzip"])
def test_split_asset_indexes_like_the_whole_asset(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_pieces: None,
    decoder: str,
    kind: str,
    chunk: int,
    task_first: bool,
) -> None:
    monkeypatch.setattr(_scan, "CHUNK", chunk)  # the reads of the array (NDJSON: lines)
    monkeypatch.setattr(_read, "CHUNK", chunk)
    assets = [_small(0), video(task_first=task_first), _small(1)]
    data = _file(assets, kind)
    raws = _pieces(gzip.decompress(data) if kind == "gzip" else data)
    parts = [r.part for r in raws if r.index == 1]
    assert len(parts) > 20 and parts == list(range(len(parts)))  # cut at ~every entry
    assert [r.last for r in raws if r.index == 1] == [False] * (len(parts) - 1) + [True]
    path = tmp_path / f"e.{kind}"
    path.write_bytes(data)
    got = ango_torch.load_export(path)
    ref = ango_torch.load_export(json.loads(json.dumps(assets)))  # decoded whole
    _assert_same_index(got, ref)
    assert len(got) == 3 and len(got[1].task.answer.tools) == 90
    assert len(got[1].task.history[0].tools) == 4


def test_parallel_indexing_keeps_the_pieces_of_an_asset_together(tiny_pieces: None) -> None:
    data = _file([_small(0), video(20), _small(1), video(10, external_id="w.mp4")], "array")
    ref = ango_torch.load_export(json.loads(data))
    raws = _pieces(data)
    index, _ = index_raw(raws, "e", on_error="raise", workers=2, batch_bytes=1000)
    got = ango_torch.AngoExport(index)
    # Partial indexes are concatenated (string ids differ): compare what they hold.
    for k in ("obj_kind", "obj_page", "obj_bbox", "verts", "ring_vert", "snap_obj_start"):
        assert np.array_equal(index.arrays[k], ref.index.arrays[k], equal_nan=k == "obj_bbox")
    assert len(got) == 4
    for i in range(4):
        assert got.index.object_extras(i) == ref.index.object_extras(i)
        assert repr(got[i]) == repr(ref[i])
    # A bad entry in a late piece: the whole asset is skipped, in parallel too.
    bad = video(20)
    bad["task"]["tools"][50]["page"] = -3
    raws = _pieces(_file([_small(0), bad, _small(1)], "array"))
    with pytest.raises(ExportFormatError, match=r"v\.mp4.*#1.*page"):
        index_raw(iter(raws), "e", on_error="raise", workers=2, batch_bytes=1000)
    index, skipped = index_raw(raws, "e", on_error="skip", workers=2, batch_bytes=1000)
    assert skipped.count == 1 and next(iter(skipped)).index == 1
    assert [a.external_id for a in ango_torch.AngoExport(index)] == ["img0.png", "img1.png"]


def test_one_hour_sized_asset_passes_max_asset_bytes(tmp_path: Path) -> None:
    # 16 KiB stands in for the 256 MiB default; the asset is 10x that.
    path = tmp_path / "long.json"
    path.write_bytes(_file([video(130)], "array", indent=None))
    assert path.stat().st_size > 10 * 16384
    with override(max_asset_bytes=16384):
        got = ango_torch.load_export(path)
    assert got.index.obj_kind.shape == (390 + 4,)  # 130 frames x 3 tracks + the stage's 4
    # ... but a piece still may not exceed it, nor the whole asset the streamed limit.
    limits = override(max_asset_bytes=16384, max_streamed_asset_bytes=100_000)
    with limits, pytest.raises(LimitError, match=r"#0.*max_streamed_asset_bytes"):
        ango_torch.load_export(path)


def test_bytes_outside_the_tools_still_bounded(tmp_path: Path) -> None:
    padded = video(60)
    padded["metadata"]["padding"] = "A" * 40_000
    big_entry = video(60)
    big_entry["task"]["tools"][7]["metadata"] = {"note": "B" * 40_000}
    for asset, what in ((padded, "apart from its task.tools"), (big_entry, "one task.tools")):
        path = tmp_path / "big.json"
        path.write_bytes(_file([_small(0), asset], "array"))
        with override(max_asset_bytes=16384), pytest.raises(LimitError) as info:
            ango_torch.load_export(path)
        assert "#1" in str(info.value) and what in str(info.value)
        assert "max_asset_bytes=16384" in str(info.value)


def test_malformed_entry_in_a_late_piece_names_the_asset(tmp_path: Path, tiny_pieces: None) -> None:
    bad = video()
    bad["task"]["tools"][80]["bounding-box"] = {"x": "left", "y": 0, "width": 1, "height": 1}
    path = tmp_path / "bad.json"
    path.write_bytes(_file([_small(0), bad, _small(1)], "array"))
    with pytest.raises(ExportFormatError, match=r"v\.mp4.*#1") as info:
        ango_torch.load_export(path)
    assert "entry" in str(info.value) and "piece" in str(info.value)
    skipped = ango_torch.load_export(path, on_error="skip")
    # The whole asset is left out (not its first pieces), the assets around it kept.
    assert [a.external_id for a in skipped] == ["img0.png", "img1.png"]
    assert skipped.skipped_count == 1 and skipped.skipped[0].index == 1
    _assert_same_index(skipped, ango_torch.load_export([_small(0), _small(1)]))


@pytest.mark.parametrize("cut", ["truncated", "invalid-token"])
def test_broken_huge_asset_raises_naming_it(tmp_path: Path, tiny_pieces: None, cut: str) -> None:
    data = _file([_small(0), video()], "array")
    if cut == "truncated":
        data = data[: len(data) * 2 // 3]
        match = r"truncated.*after 1 complete asset"
    else:
        at = data.rindex(b'"page": 25')
        data = data[:at] + b'"page": tru' + data[at + len(b'"page": 25') :]
        match = r"#1.*invalid JSON"
    path = tmp_path / "broken.json"
    path.write_bytes(data)
    with pytest.raises(ExportFormatError, match=match):
        ango_torch.load_export(path)


def test_duplicate_entries_across_pieces_are_seen(tmp_path: Path, tiny_pieces: None) -> None:
    asset = video()
    first = asset["task"]["tools"][0]  # track t0 on frame 0 ...
    asset["task"]["tools"].append(dict(first))  # ... again, as the last entry
    path = tmp_path / "dup.json"
    path.write_bytes(_file([asset], "array"))
    assert len(_pieces(path.read_bytes())) > 20
    idx = ango_torch.load_export(path).index
    rows = np.arange(int(idx.snap_obj_start[0]), int(idx.snap_obj_end[0]))
    # Hand count: object row 0 and row 90 are both (t0, frame 0); the later one wins.
    assert asset_tracks(idx, 0, rows).duplicates.tolist() == [0]


def test_raw_asset_json_joins_the_pieces(tmp_path: Path, tiny_pieces: None) -> None:
    from ango_torch.export.raw import iter_asset_json

    assets = [_small(0), video(), _small(1)]
    path = tmp_path / "e.json"
    path.write_bytes(_file(assets, "array"))
    assert len(_pieces(path.read_bytes())) > 20
    assert list(iter_asset_json(path)) == json.loads(json.dumps(assets))  # as decoded whole


def test_second_tools_list_after_pieces_were_made_raises(tmp_path: Path, tiny_pieces: None) -> None:
    # A decoder keeps the last of two "tools" keys; the pieces already made hold the
    # first, so the reader refuses the asset rather than index the wrong list.
    data = _file([_small(0), video(task_first=False)], "array", indent=None)
    data = data.replace(b'"stageHistory":', b'"tools": [], "stageHistory":')
    path = tmp_path / "twice.json"
    path.write_bytes(data)
    with pytest.raises(ExportFormatError, match=r"#1.*two tools lists"):
        ango_torch.load_export(path)


@pytest.mark.parametrize("piece_bytes", [1, 700])
@pytest.mark.parametrize(
    "edit",
    [
        ('}, {"polygon"', '},, {"polygon"'),  # two commas between entries
        ('"tools": [{', '"tools": [,{'),  # a comma before the first entry
        ('}], "relations"', '},], "relations"'),  # a comma after the last entry
    ],
    ids=["double", "leading", "trailing"],
)
def test_stray_commas_in_a_split_tools_list_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, piece_bytes: int, edit: tuple[str, str]
) -> None:
    # Reference: json.loads refuses each of these texts; pieces cut at the commas must
    # not turn the empty "entry" into a valid empty piece.
    monkeypatch.setattr(_split, "SPLIT_BYTES", 2048)
    monkeypatch.setattr(_split, "PIECE_BYTES", piece_bytes)
    text = json.dumps([video(frames=10, task_first=False)])
    assert edit[0] in text
    text = text.replace(edit[0], edit[1], 1)
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    path = tmp_path / "commas.json"
    path.write_text(text)
    with pytest.raises(ExportFormatError, match=r"invalid JSON"):
        ango_torch.load_export(path)


@pytest.mark.parametrize("task_first", [True, False], ids=["task-first", "task-last"])
def test_escaped_duplicate_keys_are_read_as_the_decoder_reads_them(
    tmp_path: Path, tiny_pieces: None, task_first: bool
) -> None:
    # "st\u0061geHistory" is "stageHistory" to json.loads, which keeps the later value:
    # one stage with one tool (reference: json.loads of the whole text). Read literally,
    # the splitter kept both lists and indexed 60 stage objects instead of 1. Where
    # pieces were made before the second list (task last), the asset is refused instead.
    asset = video(frames=10, task_first=task_first)
    asset["task"]["MARK"] = 0  # the task's last key, replaced below
    box = '{"bounding-box": {"x": 1, "y": 2, "width": 3, "height": 4}, "objectId": "B"}'
    key = '"st\\u0061geHistory": [{"stage": "Y", "tools": [' + box + "]}]"
    text = json.dumps([asset]).replace('"MARK": 0', key)
    want = json.loads(text)[0]["task"]["stageHistory"]
    assert [(s["stage"], len(s["tools"])) for s in want] == [("Y", 1)]
    path = tmp_path / "escaped.json"
    path.write_text(text)
    if task_first:
        _assert_same_index(ango_torch.load_export(path), ango_torch.load_export(json.loads(text)))
    else:
        with pytest.raises(ExportFormatError, match=r"another task list twice"):
            ango_torch.load_export(path)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("task_first", [True, False], ids=["task-first", "task-last"])
def test_entries_without_object_id_are_numbered_in_the_whole_asset(
    tiny_pieces: None, decoder: str, task_first: bool, workers: int
) -> None:
    # Reference: the unsplit asset through the parser (load_export of the decoded dict),
    # whose "#k" is the entry's place in the whole task.tools list. Numbered within
    # each piece instead, different entries shared "#0", i.e. one track.
    asset = video(frames=10, task_first=task_first)
    for k, tool in enumerate(asset["task"]["tools"]):
        if k % 2:
            tool.pop("objectId")
        elif k % 3 == 0:
            tool["objectId"] = ""
    data = _file([_small(0), asset], "array")
    raws = _pieces(data)
    assert len(raws) > 10
    ref = ango_torch.load_export(json.loads(data))
    index, _ = index_raw(raws, "e", on_error="raise", workers=workers, batch_bytes=1000)
    got = ango_torch.AngoExport(index)
    ids = [t.object_id for t in got[1].task.answer.tools]
    assert ids == [t.object_id for t in ref[1].task.answer.tools]
    assert ids[:2] == ["#0", "#1"] and ids[-1] == f"#{len(ids) - 1}"
    assert got.index.object_extras(1) == ref.index.object_extras(1)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(
    "broken",
    [{"bounding-box": {"x": "left", "y": 0, "width": 1, "height": 1}}, "not a tool"],
    ids=["bad-field", "not-an-object"],
)
def test_an_error_in_a_late_piece_names_the_entry_as_in_the_whole_asset(
    tiny_pieces: None, decoder: str, workers: int, broken: Any
) -> None:
    # Reference: the unsplit asset's message (its dict through load_export), which
    # names an entry without an objectId "#k" and its field tools[k] by its place in
    # the whole task.tools list. A piece named them by their place in the piece ("#0",
    # tools[0]): an object the index never has (found by fuzzing, issue 14).
    asset = video(frames=10)
    tools = asset["task"]["tools"]
    k = len(tools) - 3
    if isinstance(broken, dict):
        tools[k] = {**{key: v for key, v in tools[k].items() if key != "bounding-box"}, **broken}
        tools[k].pop("objectId")
    else:
        tools[k] = broken
    data = _file([_small(0), asset], "array")
    raws = _pieces(data)
    assert len(raws) > 10 and raws[-1].first > 0  # the entry is in a late piece
    with pytest.raises(ExportFormatError) as whole:
        ango_torch.load_export(json.loads(data))
    with pytest.raises(ExportFormatError) as split:
        index_raw(raws, "e", on_error="raise", workers=workers, batch_bytes=1000)
    expected = str(whole.value)
    assert (f"object '#{k}'" if isinstance(broken, dict) else f"tools[{k}]") in expected
    assert str(split.value).startswith(expected + " (piece "), (str(split.value), expected)


@pytest.mark.parametrize("kind", ["array", "ndjson"])
def test_one_entry_larger_than_a_piece_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_pieces: None, decoder: str, kind: str
) -> None:
    """An asset named before its task (pieces are made as its entries arrive), whose
    ``tools`` opens in a later read than the asset and holds one entry larger than
    ``SPLIT_BYTES``: no piece can be made, so the asset is read whole.  The bytes before
    ``tools`` were let go all the same, and reading it whole failed with an IndexError
    (found by review, issue 14).  Reference: ``json.loads`` of the file, indexed whole."""
    monkeypatch.setattr(_scan, "CHUNK", 1000)
    monkeypatch.setattr(_read, "CHUNK", 1000)
    big = _entry(0, 1)
    big["metadata"] = {"note": "x" * 5000}  # > SPLIT_BYTES (2 KiB)
    asset = {"externalId": "v.mp4", "pad": "z" * 1500, "task": {"tools": [big]}}
    assets = [_small(0), asset, _small(1)]
    data = _file(assets, kind, indent=None)
    raws = _pieces(data)
    assert [(r.index, r.part, r.last) for r in raws] == [(0, 0, True), (1, 0, True), (2, 0, True)]
    path = tmp_path / f"e.{kind}"
    path.write_bytes(data)
    got = ango_torch.load_export(path)
    _assert_same_index(got, ango_torch.load_export(json.loads(json.dumps(assets))))
    assert got[1].task.answer.tools[0].object_id == big["objectId"]


@pytest.mark.parametrize("how", ["cut short", "a second object"])
def test_an_ndjson_line_cut_short_is_an_invalid_asset(
    tmp_path: Path, tiny_pieces: None, decoder: str, how: str
) -> None:
    """A large line (read in pieces as its entries arrive) that ends before its JSON
    closes, or goes on after it with a second object: ``json.loads`` refuses the line
    (the reference), so the asset is invalid JSON, named, and left out whole under
    ``on_error="skip"``; it used to be refused as "two tasks or two tools lists", fatal
    even under skip (found by fuzzing, issue 14)."""
    line = json.dumps(video(task_first=False)).encode()
    if how == "cut short":
        cut = line[: line.index(b'"page": 25')]
    else:
        cut = line + b' {"task": {"tools": []}}'
    with pytest.raises(ValueError):
        json.loads(cut)
    path = tmp_path / "cut.ndjson"
    path.write_bytes(
        b"\n".join([json.dumps(_small(0)).encode(), cut, json.dumps(_small(1)).encode()])
    )
    raws = _pieces(path.read_bytes())
    assert max(r.part for r in raws if r.index == 1) > 5  # pieces were made before the cut
    with pytest.raises(ExportFormatError, match=r"asset \(#1\), line 2: invalid JSON.*piece"):
        ango_torch.load_export(path)
    skipped = ango_torch.load_export(path, on_error="skip")
    assert [a.external_id for a in skipped] == ["img0.png", "img1.png"]
    assert [s.index for s in skipped.skipped] == [1]
    _assert_same_index(skipped, ango_torch.load_export([_small(0), _small(1)]))


@pytest.mark.parametrize("length", [2047, 2048, 2049, 2050, 9000])
def test_a_long_first_line_after_a_bom_is_one_asset(
    tmp_path: Path, tiny_pieces: None, length: int
) -> None:
    """Reference: ``json.loads`` of the file (which reads one leading BOM), around
    ``SPLIT_BYTES`` (2048 here).  A BOM taken off a line read to the limit made it look
    whole: its rest was read as another line (found by fuzzing, issue 14)."""
    head = b'{"externalId": "a", "task": {"tools": []}, "p": "'
    line = head + b"x" * (length - len(head) - 2) + b'"}'
    text = b"\xef\xbb\xbf" + line + b"\n" + json.dumps(_small(1)).encode() + b"\n"
    assert len(line) == length and json.loads(text.splitlines()[0].decode("utf-8-sig"))
    path = tmp_path / "bom.ndjson"
    path.write_bytes(text)
    export = ango_torch.load_export(path, progress_bar=False)
    assert [a.external_id for a in export] == ["a", "img1.png"]
