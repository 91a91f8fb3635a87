"""Typed decoding (``export/_typed.py``) inside the loader: fallback and formats.

The reference everywhere is the loader without typed decoding (``_typed.AVAILABLE``
off: the fast path and the full parser, compared with each other by
``test_parse_paths.py``): the same index (every column byte for byte; the JSON table's
entries as JSON values, ``builders.assert_same_index``), and the same errors.
"""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builders import assert_same_index, typed_assets

import ango_torch
from ango_torch.errors import ExportFormatError
from ango_torch.export import _blocks, _typed
from ango_torch.export._read import RawAsset

pytestmark = pytest.mark.skipif(not _typed.AVAILABLE, reason="needs msgspec and orjson")
msgspec = pytest.importorskip("msgspec")


def _counting(monkeypatch: pytest.MonkeyPatch, blocks: list[bool] | None = None) -> list[bool]:
    """Record, per chunk of raw assets offered to typed decoding, whether it took it (and
    in ``blocks``, the same per block of an array, ``export/_blocks.py``)."""
    taken: list[bool] = []
    real, real_block = _typed.chunk_columns, _typed.block_columns

    def chunk_columns(group: list[RawAsset], first: int = 0) -> Any:
        out = real(group, first)
        taken.append(out is not None)
        return out

    def block_columns(data: bytes, decoded: Any = None, checked: bool = False) -> Any:
        out = real_block(data, decoded, checked)
        (taken if blocks is None else blocks).append(out is not None)
        return out

    monkeypatch.setattr(_typed, "chunk_columns", chunk_columns)
    monkeypatch.setattr(_typed, "block_columns", block_columns)
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", 20_000)  # several blocks
    return taken


def _load(path: Any, monkeypatch: pytest.MonkeyPatch, *, typed: bool, **kw: Any) -> Any:
    with monkeypatch.context() as m:
        m.setattr(_typed, "AVAILABLE", typed)
        return ango_torch.load_export(path, progress_bar=False, workers=1, **kw)


def _same(a: Any, b: Any) -> None:
    assert_same_index(a.index, b.index)


def _typed_as_reference(path: Path, monkeypatch: pytest.MonkeyPatch, *, simdjson: bool) -> Any:
    """``path`` loaded with typed decoding, which must take its one block, checked
    against the reference: the loader without typed decoding (without simdjson too,
    where ``simdjson`` is false)."""
    if not simdjson:
        monkeypatch.setattr(_typed, "_simdjson", None)
    reference = _load(path, monkeypatch, typed=False)
    taken = _counting(monkeypatch)
    typed = _load(path, monkeypatch, typed=True)
    _same(typed, reference)
    assert taken == [True]
    return typed


def _same_error(path: Path, monkeypatch: pytest.MonkeyPatch, match: str | None = None) -> str:
    """Loading ``path`` fails with typed decoding as without it (the reference), with
    the same message; that message."""
    with pytest.raises(ExportFormatError) as reference:
        _load(path, monkeypatch, typed=False)
    with pytest.raises(ExportFormatError, match=match) as typed:
        _load(path, monkeypatch, typed=True)
    assert str(typed.value) == str(reference.value)
    return str(typed.value)


def _write(folder: Path, assets: list[Any], fmt: str) -> Path:
    text = json.dumps(assets)
    if fmt == "json":
        path = folder / "e.json"
        path.write_text(text)
    elif fmt == "ndjson":
        path = folder / "e.ndjson"
        path.write_text("\n".join(json.dumps(a) for a in assets) + "\n")
    elif fmt == "gzip":
        path = folder / "e.json.gz"
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path = folder / "e.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("export.json", text)
    return path


@pytest.mark.parametrize("fmt", ["json", "ndjson", "gzip", "zip"])
def test_every_format_gives_the_index_of_the_existing_path(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_typed, "CHUNK_BYTES", 20_000)  # several chunks
    path = _write(tmp_path, typed_assets(40), fmt)
    reference = _load(path, monkeypatch, typed=False)
    taken = _counting(monkeypatch)
    typed = _load(path, monkeypatch, typed=True)
    assert len(taken) >= 3 and all(taken), taken  # every chunk typed
    _same(typed, reference)
    # Records rebuilt from the index: the stage history and the hole are there.
    asset = typed[7]
    assert [s.stage for s in asset.task.history] == ["Label"]
    assert len(asset.task.history[0].tools) == 4
    assert len(asset.task.answer.tools[2].geometry.zones[0].holes) == 1


def test_without_msgspec_every_asset_takes_the_existing_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, typed_assets(5), "json")
    taken = _counting(monkeypatch)
    export = _load(path, monkeypatch, typed=False)
    assert taken == [] and len(export) == 5
    # Boxes from the parser's rule (negative height flips the corner): hand-computed.
    np.testing.assert_array_equal(export.index.arrays["obj_bbox"][0], [0, -2, 10.5, 2])


def test_a_bad_asset_sends_only_its_chunk_to_the_existing_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_typed, "CHUNK_BYTES", 5_000)
    assets = typed_assets(40)
    assets[17]["task"]["tools"][1]["polygon"][2] = [True, 4]  # a bool vertex
    path = _write(tmp_path, assets, "json")
    reference = _load(path, monkeypatch, typed=False, on_error="skip")
    blocks: list[bool] = []
    taken = _counting(monkeypatch, blocks)
    typed = _load(path, monkeypatch, typed=True, on_error="skip")
    # Its block goes to chunks of whole assets, and only its chunk to the parser.
    assert blocks.count(False) == 1 and blocks.count(True) >= 2, blocks
    assert taken.count(False) == 1 and taken.count(True) >= 1, taken
    assert [(s.index, s.asset) for s in typed.skipped] == [(17, "img_17.jpg")]
    assert typed.skipped == reference.skipped
    _same(typed, reference)
    with pytest.raises(ExportFormatError, match=r"asset 'img_17.jpg' \(#17\).*polygon\[2\]\[0\]"):
        _load(path, monkeypatch, typed=True)


# Values the typed schema reads (or skips) that the file's JSON decoder or the parser
# refuses: each must fail exactly as without typed decoding.
HOSTILE = {
    "huge-exponent-in-an-unread-key": b'"duration": 1e400',
    "huge-integer-in-an-unread-key": b'"duration": 1' + b"0" * 400,
    "invalid-utf8-in-an-unread-key": b'"duration": "\xff\xfe"',
    "lone-surrogate": b'"duration": "\\ud800"',
    "huge-integer-in-metadata": b'"classifications": [], "tools": [{"polygon": [[1, 2], [3, 4],'
    b' [5, 6]], "metadata": {"n": 1' + b"0" * 400 + b"}}]",
    "beyond-float32-vertex": b'"tools": [{"polygon": [[1, 2], [3e39, 4], [5, 6]]}]',
    "huge-integer-vertex": b'"tools": [{"polygon": [[1, 2], [1' + b"0" * 400 + b", 4], [5, 6]]}]",
    "object-vertex": b'"tools": [{"polygon": [[1, 2], {"x": 3, "y": 4}, [5, 6]]}]',
    "three-coordinates": b'"tools": [{"polygon": [[1, 2, 0], [3, 4, 0], [5, 6, 0]]}]',
    "page-out-of-range": b'"tools": [{"point": [1, 2], "page": 2147483648}]',
    "two-geometries": b'"tools": [{"point": [1, 2], "polygon": [[1, 2], [3, 4], [5, 6]]}]',
    "nested-classification-not-an-object": b'"tools": [{"point": [1, 2], "classifications":'
    b' [{"title": "a", "classifications": ["x"]}]}]',
    "classifications-an-object": b'"tools": [{"point": [1, 2], "classifications": {}}]',
    "bad-updated-at": b'"updatedAt": "1' + b"0" * 30 + b'"',
    # A key the parser does not know it ignores, and typed decoding skips: its value is
    # still read as the file's decoder reads it (the whole-text check).
    "huge-exponent-in-an-unknown-key": b'"reviewScore": 1e400',
    "huge-integer-in-an-unknown-key": b'"reviewScore": [1' + b"0" * 400 + b"]",
    "invalid-utf8-in-an-unknown-key": b'"reviewNote": {"a": "\xff\xfe"}',
    "lone-surrogate-in-an-unknown-key": b'"reviewNote": "\\ud800"',
}


@pytest.mark.parametrize("fragment", HOSTILE.values(), ids=list(HOSTILE))
def test_hostile_values_fail_as_without_typed_decoding(
    fragment: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = json.dumps(typed_assets(2)).encode()[1:-1]
    bad = b'{"externalId": "bad.jpg", "task": {"stage": "Complete", ' + fragment + b"}}"
    path = tmp_path / "e.json"
    path.write_bytes(b"[" + good + b", " + bad + b"]")
    taken = _counting(monkeypatch)
    assert "#2" in _same_error(path, monkeypatch)
    assert taken and not any(taken)  # its block and chunk went to the existing path


# Boxes and points as a file may spell them: each read in bulk (the common key order)
# or one by one (any other), to the same index as without typed decoding.
BOXES = [
    b'{"x": 1, "y": 2, "width": 3, "height": 4}',
    b'{"x":1.5,"y":-2.25,"width":-3e1,"height":4E-1}',
    b'{ "x" : 0 ,\n\t"y" : 1e2 , "width" : 7 , "height" : -0.0 }',
    b'{"height": 4, "width": 3, "y": 2, "x": 1}',
    b'{"x": 1, "y": 2, "width": 3, "height": 4, "x": 9}',
    b'{"\\u0078": 1, "y": 2, "width": 3, "height": 4}',
    b'{"x": 123456789012345678, "y": 2, "width": 3, "height": 4}',
]
POINTS = [b"[3, 4.5]", b"[ -1e1 ,\n 2E0 ]", b"[0,0]", b"[7, 8]"]


# The key order of FORMAT.md's sample (one order for all: read in bulk too).
SAMPLE_ORDER = [
    b'{"x": 301.6, "y": 429.0, "height": 173.7, "width": 118.0}',
    b'{"x":-1,"y":2e1,"height":-4,"width":3}',
]


@pytest.mark.parametrize("simdjson", [True, False], ids=["simdjson", "orjson-only"])
@pytest.mark.parametrize("spelling", ["common-order", "sample-order", "mixed"])
def test_boxes_and_points_read_in_bulk_as_one_by_one(
    simdjson: bool, spelling: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reference: the loader without typed decoding (the parser's own box and point
    rules); and the bulk read against msgspec's decoding of each box and point."""
    # (the first three and the last are in the common key order: read in bulk)
    mixed = spelling == "mixed"
    boxes = {"common-order": [*BOXES[:3], BOXES[-1]], "sample-order": SAMPLE_ORDER}
    boxes = boxes.get(spelling, BOXES + SAMPLE_ORDER)
    tools = [b'{"objectId": "b%d", "bounding-box": %s}' % (k, b) for k, b in enumerate(boxes)]
    tools += [b'{"objectId": "p%d", "point": %s}' % (k, p) for k, p in enumerate(POINTS)]
    asset = b'{"externalId": "a.jpg", "task": {"tools": [' + b", ".join(tools) + b"]}}"
    path = tmp_path / "e.json"
    path.write_bytes(b"[" + b", ".join([asset] * 3) + b"]")
    decoded: list[bytes] = []  # the boxes decoded one by one
    real = _typed._BOX_DECODE
    monkeypatch.setattr(_typed, "_BOX_DECODE", lambda raw: decoded.append(raw) or real(raw))
    _typed_as_reference(path, monkeypatch, simdjson=simdjson)
    # One by one: only the box with a key given twice and the one with an escaped key.
    assert len(decoded) == (3 * 2 if mixed else 0)
    one_by_one = [msgspec.structs.astuple(_typed._BOX_DECODE(b)) for b in boxes]
    np.testing.assert_array_equal(_typed._boxes(list(map(msgspec.Raw, boxes))), one_by_one)
    np.testing.assert_array_equal(
        _typed._points(list(map(msgspec.Raw, POINTS))), list(map(_typed._POINT_DECODE, POINTS))
    )


BAD_BOXES = {
    "bool": b'{"x": true, "y": 2, "width": 3, "height": 4}',
    "string": b'{"x": "1", "y": 2, "width": 3, "height": 4}',
    "missing-key": b'{"x": 1, "y": 2, "width": 3}',
    "unknown-key": b'{"x": 1, "y": 2, "width": 3, "height": 4, "z": 0}',
    "null": b"null",
    "list": b"[1, 2, 3, 4]",
    "huge-exponent": b'{"x": 1e400, "y": 2, "width": 3, "height": 4}',
    "beyond-float32": b'{"x": 1, "y": 2, "width": 3e39, "height": 4}',
    "huge-integer": b'{"x": 1' + b"0" * 30 + b', "y": 2, "width": 3, "height": 4}',
    "3d": b'{"x1": 0, "y1": 0, "z1": 0, "x2": 1, "y2": 1, "z2": 1}',  # the parser's 3D box
    "key-with-the-skeleton-of-height": b'{"x": 1, "y": 2, "width": 3, "h1eight": 4}',
}
BAD_POINTS = {
    "three": b"[1, 2, 3]",
    "one": b"[1]",
    "bool": b"[true, 2]",
    "string": b'["1", 2]',
    "object": b'{"x": 1, "y": 2}',
    "huge-exponent": b"[1e400, 2]",
}
BAD_ROTATED = {
    "three-corners": b'{"corners": [[0, 0], [4, 0], [4, 3]]}',
    "no-corners-no-size": b'{"x": 1, "y": 2}',
    "string-x": b'{"x": "1", "y": 2, "width": 3, "height": 4}',
    "a-list": b"[1, 2, 3, 4]",
    "beyond-float32": b'{"x": 1, "y": 2, "width": 3e39, "height": 4}',
    "corner-beyond-float32": b'{"corners": [[0, 0], [4e39, 0], [4, 3], [0, 3]]}',
    "corner-huge-exponent": b'{"corners": [[0, 0], [1e400, 0], [4, 3], [0, 3]]}',
    "corner-bool": b'{"corners": [[0, 0], [true, 0], [4, 3], [0, 3]]}',
    "bool-rotation": b'{"rotation": true, "corners": [[0, 0], [4, 0], [4, 3], [0, 3]]}',
    "huge-exponent-x": b'{"x": 1e400, "corners": [[0, 0], [4, 0], [4, 3], [0, 3]]}',
}


@pytest.mark.parametrize(
    "tool",
    [b'{"bounding-box": %s}' % v for v in BAD_BOXES.values()]
    + [b'{"point": %s}' % v for v in BAD_POINTS.values()]
    + [b'{"rotated-bounding-box": %s}' % v for v in BAD_ROTATED.values()],
    ids=[f"box-{k}" for k in BAD_BOXES]
    + [f"point-{k}" for k in BAD_POINTS]
    + [f"rotated-{k}" for k in BAD_ROTATED],
)
def test_a_geometry_the_bulk_read_refuses_fails_as_without_typed_decoding(
    tool: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beside good ones read in bulk, one bad box, point or rotated box sends its chunk
    to the existing path, whose error (or index, where it takes the value) is the
    reference."""
    rotated = (
        b'{"x": 1, "y": 2, "width": 3, "height": 4, "corners": [[1, 2], [4, 2], [4, 6], [1, 6]]}'
    )
    good = b'{"bounding-box": %s}, {"point": %s}, {"rotated-bounding-box": %s}' % (
        BOXES[0],
        POINTS[0],
        rotated,
    )
    asset = b'{"externalId": "a.jpg", "task": {"tools": [' + good + b", " + tool + b"]}}"
    path = tmp_path / "e.json"
    path.write_bytes(b"[" + asset + b"]")
    taken = _counting(monkeypatch)
    try:
        reference = _load(path, monkeypatch, typed=False)
    except ExportFormatError:
        message = _same_error(path, monkeypatch)
        if tool.startswith(b'{"rotated-bounding-box"'):
            assert "rotated-bounding-box" in message or "invalid JSON" in message
    else:  # (a 3D box, and 1e30, finite as a float32, the parser takes)
        assert not tool.startswith(b'{"rotated-bounding-box"')  # (the parser refuses all)
        _same(_load(path, monkeypatch, typed=True), reference)
    assert taken and not any(taken)


@pytest.mark.parametrize("simdjson", [True, False], ids=["simdjson", "orjson-only"])
def test_unknown_asset_task_and_snapshot_keys_are_skipped_as_the_parser_ignores_them(
    simdjson: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key the platform may add to an asset, a task or a stage snapshot is not read by
    the parser (``_parse.parse_asset`` ignores it); typed decoding skips it too, rather
    than sending the chunk to the slower path (~3x slower indexing with one such key per
    asset). Reference: the loader without typed decoding."""
    assets = typed_assets(6)
    for k, asset in enumerate(assets):
        asset["reviewStatus"] = "ACCEPTED"
        asset["labelStats"] = {"nested": [k, {"deeper": [1.5, None, True]}], "s": "é"}
        asset["task"]["reviewedBy"] = None
        asset["task"]["stageHistory"][0]["qaScore"] = [0.5, {"by": "x"}]
    path = _write(tmp_path, assets, "json")
    typed = _typed_as_reference(path, monkeypatch, simdjson=simdjson)
    assert len(typed) == 6
    assert typed[0].task.history[0].stage == "Label"


def test_an_unknown_key_nested_too_deep_fails_as_without_typed_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Skipped or not, a value is measured on the bytes before anything decodes it:
    the same error (the scan's) as without typed decoding."""
    good = json.dumps(typed_assets(2)).encode()[1:-1]
    deep = b"[" * 70 + b"]" * 70
    bad = b'{"externalId": "bad.jpg", "reviewNote": ' + deep + b', "task": {"tools": []}}'
    path = tmp_path / "e.json"
    path.write_bytes(b"[" + good + b", " + bad + b"]")
    _same_error(path, monkeypatch, match="nested more than 64 levels")


ROTATED = [
    {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 15},
    {"x": 1.5, "y": 2.5, "width": 3, "height": 4},  # no rotation: 0
    {"corners": [[0, 0], [4, 0], [4, 3], [0, 3]], "x": 0, "y": 0, "rotation": 0},
    {"corners": [[1e-7, 2], [5.25, 2], [5.25, 9], [1e-7, 9]]},  # corners only
    {"corners": [{"x": 1, "y": 2}, {"x": 5, "y": 2}, {"x": 5, "y": 6}, {"x": 1, "y": 6}]},
    {"x": 1, "y": 2, "width": 3, "height": 4, "rotation": 90, "corners": None, "pivot": "c"},
]
# Corners given as four pairs (as the platform writes them): read in bulk, as rings.
ROTATED_CORNERS = [
    {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 15.5, "corners": [[1, 2],
     [3, 4], [5, 6], [7, 8]]},
    {"corners": [[-1e2, 2E1], [3.25, 4], [5, 6], [7, 8]], "label": {"ignored": [1]}},
    {"rotation": -30, "corners": [[0, 0], [1, 0], [1, 1], [0, 1]], "x": 123456789012345678},
]  # fmt: skip


@pytest.mark.parametrize("simdjson", [True, False], ids=["simdjson", "orjson-only"])
@pytest.mark.parametrize("boxes", ["corners-only", "all"])
def test_rotated_boxes_are_typed_as_the_parser_reads_them(
    simdjson: bool, boxes: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rotated boxes among other tools (their corners are rings, in object order):
    the same index as without typed decoding, whose ``_rotated_box`` is the reference
    (corners given, or computed about the centre: hand-checked below).  Corners given
    as four pairs are read in bulk; the others one box at a time, by ``_rotated_box``."""
    chosen = ROTATED_CORNERS if boxes == "corners-only" else ROTATED_CORNERS + ROTATED
    assets = typed_assets(3)
    for asset in assets:
        tools = asset["task"]["tools"]
        for k, box in enumerate(chosen):
            tools.insert(2 * k, {"objectId": f"r{k}", "rotated-bounding-box": box})
    path = _write(tmp_path, assets, "json")
    one_by_one: list[Any] = []
    real = _typed._rotated_box
    monkeypatch.setattr(_typed, "_rotated_box", lambda v, loc: one_by_one.append(v) or real(v, loc))
    typed = _typed_as_reference(path, monkeypatch, simdjson=simdjson)
    # One by one: the 4 of ROTATED without four corner pairs, in each asset's 2 snapshots.
    assert len(one_by_one) == (0 if boxes == "corners-only" else 3 * 2 * 4)
    if boxes == "corners-only":
        return
    # Hand-computed: a 3 x 4 box at (1.5, 2.5), not rotated, has its corners as they are.
    box = typed[0].task.answer.tools[2 * (len(ROTATED_CORNERS) + 1)].geometry
    np.testing.assert_array_equal(box.corners, [[1.5, 2.5], [4.5, 2.5], [4.5, 6.5], [1.5, 6.5]])
    assert (box.x, box.y, box.width, box.height, box.rotation) == (1.5, 2.5, 3, 4, None)


def _legacy(asset: dict[str, Any], tasks: Any) -> dict[str, Any]:
    asset = dict(asset)
    del asset["task"]
    asset["tasks"] = tasks
    return asset


@pytest.mark.parametrize("simdjson", [True, False], ids=["simdjson", "orjson-only"])
def test_legacy_v2_assets_are_typed_as_the_parser_reads_them(
    simdjson: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Legacy assets (``tasks``: the first the answer and the task's fields, the others
    history; tools in ``objects``, else ``tools``; none or ``null``) beside v3 ones.
    Reference: the loader without typed decoding (``_parse.parse_asset``)."""
    v3 = typed_assets(6)
    tools = v3[0]["task"]["tools"]
    first = {"taskId": "t1", "type": "default", "updatedBy": "u@x", "stage": "Review",
             "objects": tools, "tools": tools[:1], "stageHistory": "ignored",
             "classifications": [], "totalDuration": 5}  # fmt: skip
    later = {"taskId": "t2", "tools": tools[1:], "completedAt": "2023-09-01T08:05:21.104Z"}
    assets = [
        v3[0],
        _legacy(v3[1], [first, later]),
        _legacy(v3[2], []),
        _legacy(v3[3], None),
        _legacy(v3[4], [{"objects": None, "tools": tools[2:]}]),
        v3[5],
    ]
    path = _write(tmp_path, assets, "json")
    typed = _typed_as_reference(path, monkeypatch, simdjson=simdjson)
    # As FORMAT.md reads them: the first task is the answer, the others its history.
    legacy = typed[1]
    assert legacy.generation == 2 and typed[0].generation == 3
    assert legacy.task.task_id == "t1" and legacy.task.answer.stage == "Review"
    assert len(legacy.task.answer.tools) == len(tools)
    assert len(legacy.task.history) == 1 and len(legacy.task.history[0].tools) == 3
    assert len(typed[2].task.answer.tools) == 0 and typed[2].task.history == ()
    assert len(typed[4].task.answer.tools) == len(tools) - 2


def test_legacy_assets_are_read_without_changing_their_decoded_structs() -> None:
    """The v2 reading builds new task structs: a block's decoded assets stay as decoded
    (reference: msgspec's own encoding of them before the columns were made)."""
    tools = typed_assets(1)[0]["task"]["tools"]
    tasks = [{"taskId": "t1", "objects": tools, "tools": []}, {"taskId": "t2", "tools": tools}]
    data = json.dumps([_legacy(a, tasks) for a in typed_assets(3)]).encode()
    decoded = _typed.decode_block(data)
    assert decoded is not None
    before = msgspec.json.encode(decoded)
    columns = _typed.block_columns(data, decoded)
    assert columns is not None and columns.asset_snaps == [2, 2, 2]
    assert msgspec.json.encode(decoded) == before


@pytest.mark.parametrize(
    "asset",
    [
        b'{"externalId": "bad.jpg"}',
        b'{"externalId": "bad.jpg", "task": null, "tasks": []}',
        b'{"externalId": "bad.jpg", "tasks": [{"objects": [{"polygon": [[1, 2]], "x": 1}]}]}',
        b'{"externalId": "bad.jpg", "tasks": [3]}',
        b'{"externalId": "bad.jpg", "tasks": {"objects": []}}',
        b'{"externalId": "bad.jpg", "tasks": [{"objects": "x"}]}',
    ],
    ids=["neither", "null-task", "bad-object", "not-an-object", "not-a-list", "bad-objects"],
)
def test_a_legacy_asset_the_parser_refuses_or_reads_otherwise_is_left_to_it(
    asset: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reference: the loader without typed decoding, under ``on_error="skip"`` (its
    skipped assets and their reasons, and the index of the others)."""
    good = json.dumps(typed_assets(2)).encode()[1:-1]
    path = tmp_path / "e.json"
    path.write_bytes(b"[" + good + b", " + asset + b"]")
    reference = _load(path, monkeypatch, typed=False, on_error="skip")
    taken = _counting(monkeypatch)
    typed = _load(path, monkeypatch, typed=True, on_error="skip")
    assert typed.skipped == reference.skipped
    _same(typed, reference)
    assert taken and not any(taken)


def test_each_piece_of_a_large_asset_is_a_chunk_of_its_own() -> None:
    """A piece of a split asset (RawAsset.part/last) is a chunk of its own, never grouped
    with other assets (``_indexing._typed_first`` then adds it as a piece)."""
    a, b = RawAsset(0, b"{}"), RawAsset(1, b"{}")
    pieces = [RawAsset(2, b"{}", part=0, last=False), RawAsset(2, b"{}", part=1, last=True)]
    groups = list(_typed.chunks([a, b, *pieces, RawAsset(3, b"{}")], size=1 << 20))
    assert groups == [[a, b], [pieces[0]], [pieces[1]], [RawAsset(3, b"{}")]]


def test_ring_numbers_without_simdjson_are_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ring numbers are parsed by simdjson where installed, else by orjson: same index
    (the reference: the path without typed decoding)."""
    path = _write(tmp_path, typed_assets(6), "json")
    reference = _load(path, monkeypatch, typed=False)
    monkeypatch.setattr(_typed, "_simdjson", None)
    taken = _counting(monkeypatch)
    _same(_load(path, monkeypatch, typed=True), reference)
    assert taken == [True]


def test_classifications_and_metadata_stay_the_files_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tool's classifications in the stored form (any key order, blanks, nested) and
    its metadata object are stored as the file spells them, not decoded and re-encoded;
    the rest (an unusual classification, metadata that is not an object) as the parser
    makes it. Reference: the loader without typed decoding, and its records."""
    assets = typed_assets(6)
    tools = assets[1]["task"]["tools"]
    reordered = {
        "answer": 1.50,  # spelled "1.5" by json.dumps, as by the parser's encoder
        "classifications": [
            {"title": "depth", "answer": {"k": ["é", True]}, "classifications": [],
             "tool": "text", "schemaId": None, "objectId": "n1"}
        ],
        "title": "occluded", "tool": "radio", "schemaId": "k", "objectId": "c9",
    }  # fmt: skip
    tools[0]["classifications"] = [reordered]
    tools[1]["classifications"] = []
    tools[2]["classifications"] = [{**reordered, "page": 0}]  # a key the form lacks
    tools[3]["classifications"] = None
    tools[0]["metadata"] = {"createdBy": "b", "nested": {"deep": [1, {"x": None}]}}
    tools[1]["metadata"] = 5
    tools[2]["metadata"] = []
    tools[3]["metadata"] = "x"
    path = tmp_path / "e.json"
    path.write_text(json.dumps(assets, indent=2, ensure_ascii=True))  # blanks and \u00e9
    reference = _load(path, monkeypatch, typed=False)
    taken = _counting(monkeypatch)
    typed = _load(path, monkeypatch, typed=True)
    assert taken and all(taken), taken
    assert_same_index(typed.index, reference.index)
    blob = typed.index.arrays["extras_blob"].tobytes()
    # The file's own text (its key order and escapes), its blanks dropped.
    assert b'{"answer":1.5,"classifications":[{"title":"depth"' in blob
    assert b'"answer":{"k":["\\u00e9",true]}' in blob
    assert b'{"createdBy":"b","nested":{"deep":[1,{"x":null}]}}' in blob
    assert b"\n" not in blob and b'": ' not in blob and b", " not in blob
    ref_blob = reference.index.arrays["extras_blob"].tobytes()
    assert b'"answer":{"k":["\xc3\xa9",true]}' in ref_blob  # the parser: compact
    for i in range(len(assets)):
        for ours, theirs in zip(typed[i].task.answer.tools, reference[i].task.answer.tools,
                                strict=True):  # fmt: skip
            assert ours.classifications == theirs.classifications
            assert ours.metadata == theirs.metadata
    got = typed[1].task.answer.tools
    assert got[0].classifications[0].classifications[0].answer == {"k": ["é", True]}
    assert got[1].classifications == got[3].classifications == ()


@pytest.mark.parametrize("simdjson", [True, False], ids=["simdjson", "orjson-only"])
def test_integers_beyond_64_bits_are_stored_as_the_parser_reads_them(
    simdjson: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """orjson reads an integer beyond 64 bits as a float: the parser stores that float.
    Without simdjson (whose check refuses such a text) the typed decoder must not keep
    the file's integer text (found by fuzzing, issue 14). Reference: the loader without
    typed decoding; the values hand-computed (``float(2**64)``)."""
    if not simdjson:
        monkeypatch.setattr(_typed, "_simdjson", None)
    elif _typed._simdjson is None:
        pytest.skip("pysimdjson is not installed")
    assets = typed_assets(4)
    tools = assets[2]["task"]["tools"]
    tools[0]["metadata"] = {"a": 2**64, "b": -(2**63) - 1, "c": 10**23}
    tools[1]["classifications"][0]["answer"] = 2**64
    path = _write(tmp_path, assets, "json")
    reference = _load(path, monkeypatch, typed=False)
    typed = _load(path, monkeypatch, typed=True)
    assert_same_index(typed.index, reference.index)
    got = typed[2].task.answer.tools
    assert got[0].metadata is not None and got[0].metadata.raw == {
        "a": float(2**64),
        "b": float(-(2**63) - 1),
        "c": 1e23,
    }
    assert got[1].classifications[0].answer == float(2**64)


# Values msgspec may skip or hold as ``Raw``, by what the file's decoders make of them.
_REFUSED_BY_MSGSPEC_TOO = [
    b'"x\ny"', b'"x\x01y"', b'"\\q"', b'"\\ud800"', b'"\\ude00\\ud83d"', b'"\\U0041"',
    b"NaN", b"Infinity", b"01", b"1.", b".5", b"+1", b"-", b"1e", b"tru", b"[1,]",
    b'{"a":1,}', b"'x'", b"[1,\x0c2]", b"[1/*x*/]", b'{"a" 1}', b"{1:2}", b"0x10",
]  # fmt: skip
_UNCHECKED_BY_MSGSPEC = [
    b"1e400", b"-1E400", b"1.8e308", b"1" + b"0" * 309,  # beyond a double
    b"18446744073709551616", b"-9300000000000000000",  # beyond 64 bits (simdjson)
    b'"\xff"', b'"\xc0\xaf"', b'"\xed\xa0\x80"', b'"\xf4\x90\x80\x80"',  # not UTF-8
]  # fmt: skip


def _accepts(decode: Any, text: bytes) -> bool:
    try:
        decode(text)
    except Exception:  # each library's own error type
        return False
    return True


@pytest.mark.parametrize("value", _REFUSED_BY_MSGSPEC_TOO + _UNCHECKED_BY_MSGSPEC)
def test_msgspec_checks_a_skipped_value_as_the_files_decoders_but_utf8_and_range(
    value: bytes,
) -> None:
    """Why each decoded block's text is also checked whole (``_typed._valid_json``, the
    README's Benchmarks (f)): msgspec checks the syntax of a value it skips (an unknown
    key's, or a duplicated key's first) or holds as ``Raw`` as orjson and simdjson do,
    but neither its UTF-8 nor its numbers' range.  The references are orjson and
    simdjson themselves: a value refused by one of them is refused by msgspec too, or
    is one of the two kinds left unchecked.  Should msgspec ever check those, this
    fails, and the whole-text check could go."""
    orjson = pytest.importorskip("orjson")

    class Skipping(msgspec.Struct):
        b: int = 0

    class Holding(msgspec.Struct):
        a: msgspec.Raw = msgspec.Raw(b"null")

    file_decoders = [orjson.loads]
    if _typed._simdjson is not None:
        file_decoders.append(lambda t: _typed._simdjson.Parser().parse(b"[" + t + b"]"))
    refused = not all(_accepts(d, value) for d in file_decoders)
    if not refused and _typed._simdjson is None:
        pytest.skip("an integer beyond 64 bits: refused by simdjson only")
    assert refused  # every case here is one the file's decoders refuse
    by_msgspec = [
        _accepts(lambda t: msgspec.json.decode(b'{"z":' + t + b"}", type=Skipping), value),
        _accepts(lambda t: msgspec.json.decode(b'{"a":' + t + b"}", type=Holding), value),
    ]
    assert by_msgspec == ([True, True] if value in _UNCHECKED_BY_MSGSPEC else [False, False])
