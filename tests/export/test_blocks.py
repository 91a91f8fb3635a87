"""Cutting a JSON array export into blocks of whole assets (``export/_blocks.py``).

References, never the blocks' own output:

* the assets of a well-formed file: ``json.loads`` of the whole file (element ``k`` is
  asset ``k``);
* errors, and the raw assets of a file the scan accepts: the numpy scan
  ``_scan.iter_array`` on the same bytes (the reader without blocks);
* an index: the loader without typed decoding (``_typed.AVAILABLE`` off, hence without
  blocks either), as in ``test_typed.py``.
"""

from __future__ import annotations

import functools
import io
import json
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from builders import (
    TYPED_SQUARE,
    assert_same_index,
    json_depth,
    make_asset,
    make_box,
    make_polygon,
    make_segmentation,
    typed_assets,
)

import ango_torch
from ango_torch.errors import AngoTorchError, ArchiveError, ExportFormatError, LimitError
from ango_torch.export import _archive, _blocks, _read, _scan, _typed
from ango_torch.export import load as _load_module
from ango_torch.export._blocks import Block
from ango_torch.export._bytescan import RawAsset, json_list
from ango_torch.export._indexing import index_raw
from ango_torch.limits import Limits

pytestmark = pytest.mark.skipif(not _typed.AVAILABLE, reason="needs msgspec and orjson")

NAME = "e.json"
DEFAULT = _blocks.BLOCK_BYTES
SQUARE = TYPED_SQUARE  # (shared with builders.typed_assets)

# Strings full of what the separator and the scan look for; none can hold a real
# separator (a '"' inside a string is escaped), but all hold its other characters.
TRICKY = [
    '}, {"asset": 1',
    '},{"asset":',
    '}\r\n,\t{"asset"',
    "}, {",
    "[{]}",
    'a\\"b}',
    "\\",
    "a\\\\",
    '"',
    "]}",
    "ünï ✓ }",
    "",
]


# --- generated exports ----------------------------------------------------------------


def _text(rng: random.Random) -> str:
    return rng.choice(TRICKY) + "".join(rng.choice('"\\[]{},: a') for _ in range(rng.randrange(6)))


def _asset(rng: random.Random, i: int, *, other_first_key: bool = False) -> dict[str, Any]:
    """A v3 asset (``make_asset``: its first key is ``"asset"``) with tricky strings and,
    often, objects nested in it whose first key is ``"asset"`` too (separator look-alikes
    between two objects inside an asset)."""
    tools: list[dict[str, Any]] = []
    for _ in range(rng.randrange(4)):
        kind = rng.randrange(3)
        if kind == 0:
            tools.append(make_box(i, 2.5, 10, 4, metadata={"note": _text(rng)}))
        elif kind == 1:
            tools.append(make_polygon([[x + i, y] for x, y in SQUARE]))
        else:
            tools.append(make_segmentation([{"region": SQUARE, "holes": []}]))
    asset: dict[str, Any] = make_asset(tools, external_id=f"img_{i}{_text(rng)}.png")
    asset["metadata"]["note"] = _text(rng)
    if rng.random() < 0.2:  # separator look-alikes nested in the asset (at most 2: 3 in
        # one read send the rest of the file to the scan, tested on its own below)
        asset["metadata"]["links"] = [
            {"asset": k, "s": _text(rng)} for k in range(rng.randrange(3))
        ]
    if rng.random() < 0.1:
        asset["task"]["links"] = [{"asset": [{"asset": {}}]}, {"asset": _text(rng)}]
    if other_first_key or rng.random() < 0.1:  # separators before it do not match
        asset = {"externalId": asset.pop("externalId"), **asset}
    return asset


def _assets(seed: int, n: int, *, first_other: bool = False) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [_asset(rng, i, other_first_key=first_other and i == 0) for i in range(n)]


def _ws(rng: random.Random) -> str:
    return "".join(rng.choice(" \t\r\n") for _ in range(rng.randrange(4)))


def _encode(assets: list[dict[str, Any]], fmt: str, seed: int = 0) -> bytes:
    """The export's bytes in one of the layouts exporters (and editors) write."""
    if fmt == "compact":
        return json.dumps(assets, separators=(",", ":"), ensure_ascii=False).encode()
    if fmt == "default":
        return json.dumps(assets).encode()
    if fmt == "indent2":
        return json.dumps(assets, indent=2, ensure_ascii=False).encode()
    if fmt == "crlf-tabs":
        rng = random.Random(seed)
        body = "".join(
            (f"{_ws(rng)},{_ws(rng)}" if k else "") + json.dumps(a, separators=(",", ":"))
            for k, a in enumerate(assets)
        )
        return f" \r\n[\r\n\t{body}\r\n]\r\n".encode()
    if fmt == "bom":
        return b"\xef\xbb\xbf" + json.dumps(assets).encode()
    assert fmt == "trailing-newline"
    return json.dumps(assets, indent=1).encode() + b"\n"


FORMATS = ["compact", "default", "indent2", "crlf-tabs", "bom", "trailing-newline"]


@functools.cache
def _file(seed: int, fmt: str, n: int = 150, first_other: bool = False) -> bytes:
    return _encode(_assets(seed, n, first_other=first_other), fmt, seed)


# --- reading --------------------------------------------------------------------------


def _items(text: bytes, lim: Limits, decode: bool) -> list[Block | RawAsset]:
    return list(_blocks.iter_blocks(io.BytesIO(text), NAME, lim, decode=decode))


def _decoded(items: Iterable[Block | RawAsset], text: bytes) -> list[tuple[int, Any]]:
    """(index, decoded asset) of every asset: a block's by ``json.loads`` of its data, each
    numbered from the block's index; also checks a block holds bytes of the file."""
    out: list[tuple[int, Any]] = []
    for item in items:
        if isinstance(item, Block):
            assert item.data.startswith(b"[") and item.data[1:-1] in text
            elements = json.loads(item.data)
            assert elements and all(isinstance(e, dict) for e in elements)
            out += [(item.index + k, e) for k, e in enumerate(elements)]
        else:
            assert not item.part and item.last
            out.append((item.index, json.loads(item.data)))
    return out


Outcome = tuple[str, Any]


def _outcome(run: Callable[[], list[RawAsset]]) -> Outcome:
    try:
        raws = run()
    except AngoTorchError as exc:
        return type(exc).__name__, str(exc)
    return "ok", [(r.index, r.data, r.part, r.last, r.first) for r in raws]


def _via_blocks(text: bytes, lim: Limits, decode: bool = False) -> Outcome:
    """The raw assets (each block split by ``Block.assets``), or the error."""

    def run() -> list[RawAsset]:
        out: list[RawAsset] = []
        for item in _items(text, lim, decode):
            out += item.assets() if isinstance(item, Block) else [item]
        return out

    return _outcome(run)


def _via_scan(text: bytes, lim: Limits) -> Outcome:
    """Reference: the numpy scan on the same bytes."""
    return _outcome(lambda: list(_scan.iter_array(io.BytesIO(text), NAME, lim)))


def _load(path: Path, monkeypatch: pytest.MonkeyPatch, *, typed: bool, **kw: Any) -> Any:
    with monkeypatch.context() as m:
        m.setattr(_typed, "AVAILABLE", typed)
        kw.setdefault("workers", 1)
        return ango_torch.load_export(path, progress_bar=False, **kw)


def _same(a: Any, b: Any) -> None:
    assert_same_index(a.index, b.index)


# --- 1. boundaries ----------------------------------------------------------------------


@pytest.mark.parametrize("decode", [False, True], ids=["checked", "decoded"])
@pytest.mark.parametrize("block_bytes", [300, 2_000, 20_000, DEFAULT])
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("seed", [0, 1])
def test_blocks_hold_exactly_the_assets_of_json_loads(
    seed: int, fmt: str, block_bytes: int, decode: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reference: ``json.loads`` of the whole file, element k being asset k."""
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", block_bytes)
    text = _file(seed, fmt)
    items = _items(text, Limits(), decode)
    assert _decoded(items, text) == list(enumerate(json.loads(text)))
    assert isinstance(items[0], Block)  # (not only the scan)


@pytest.mark.parametrize("block_bytes", [300, 2_000, DEFAULT])
@pytest.mark.parametrize("case", ["single", "two", "first-key-differs", "no-separator-matches"])
def test_edge_layouts_hold_exactly_the_assets_of_json_loads(
    case: str, block_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reference: ``json.loads`` of the whole file."""
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", block_bytes)
    if case == "single":
        assets = _assets(3, 1)
    elif case == "two":
        assets = _assets(4, 2)
    elif case == "first-key-differs":  # the separator is keyed by the first asset's key
        assets = _assets(5, 60, first_other=True)
    else:  # every asset starts with a key the first one's separator does not name
        assets = [{"id": k, **a} for k, a in enumerate(_assets(6, 60))]
        assets[0] = {"first": 0, **assets[0]}
    for fmt in ("compact", "default", "indent2"):
        text = _encode(assets, fmt)
        for decode in (False, True):
            got = _decoded(_items(text, Limits(), decode), text)
            assert got == list(enumerate(json.loads(text))), (fmt, decode)


def test_nested_separators_before_every_cut_still_cut_at_assets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Assets ending in lists of objects keyed like an asset (``[{"asset": 1}, …]``), so
    the last candidates of most reads are nested ones.  Reference: ``json.loads``."""
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", 700)
    assets = []
    for i, a in enumerate(_assets(7, 80)):
        a["task"]["zz"] = [{"asset": {"asset": k}} for k in range(i % 9)]
        assets.append(a)
    for fmt in ("compact", "default"):
        text = _encode(assets, fmt)
        items = _items(text, Limits(), False)
        assert _decoded(items, text) == list(enumerate(json.loads(text)))
        assert any(isinstance(i, Block) for i in items)


# --- 2. malformed files: the scan's errors --------------------------------------------


def _mutations(text: bytes) -> dict[str, bytes]:
    """Malformed (or odd) variants of ``text`` (a ``json.dumps`` default array), with the
    problem at its first, middle and last separator."""
    sep = b'}, {"asset"'
    seps = [k for k in range(len(text)) if text.startswith(sep, k)]
    out: dict[str, bytes] = {}
    for where, at in (("first", seps[0]), ("mid", seps[len(seps) // 2]), ("last", seps[-1])):
        head, tail = text[:at], text[at + len(sep) :]

        def put(between: bytes, head: bytes = head, tail: bytes = tail) -> bytes:
            return head + between + tail

        out |= {
            f"{where}-truncated-in-asset": text[: at + 40],
            f"{where}-truncated-after-close": text[: at + 1],
            f"{where}-truncated-after-comma": text[: at + 2],
            f"{where}-truncated-after-key": text[: at + len(sep)],
            f"{where}-number": put(b'}, 1, {"asset"'),
            f"{where}-null": put(b'}, null, {"asset"'),
            f"{where}-string": put(b'}, "x", {"asset"'),
            f"{where}-string-like-separator": put(b'}, "}, {\\"asset\\"", {"asset"'),
            f"{where}-array": put(b'}, [], {"asset"'),
            f"{where}-array-of-asset": put(b'}, [{"asset": 1}], {"asset"'),
            f"{where}-double-comma": put(b'},, {"asset"'),
            f"{where}-missing-comma": put(b'} {"asset"'),
            f"{where}-extra-close-brace": put(b'}}, {"asset"'),
            f"{where}-extra-close-bracket": put(b'}], {"asset"'),
            f"{where}-missing-close-brace": put(b', {"asset"'),
            f"{where}-extra-open-bracket": put(b'}, [{"asset"'),
            f"{where}-invalid-json-in-asset": put(b'}, {"asset": tru, "x": 1}, {"asset"'),
        }
    out |= {
        "truncated-before-end": text[:-1],
        "truncated-half": text[: len(text) // 2],
        "trailing-garbage": text + b" x",
        "trailing-bracket": text + b"]",
        "trailing-comma-after": text + b",",
        "trailing-array": text + b"\n[]",
        "trailing-comma-inside": text[:-1] + b",]",
        "leading-comma": b"[," + text[1:],
        "empty": b"[]",
        "empty-blank": b"[ \n]",
        "empty-comma": b"[,]",
        "only-open": b"[",
        "nothing": b"",
        "not-an-array": b"{}",
        "unbalanced-end": text[:-1] + b"}]",
        "last-not-object": text[:-1] + b", null]",
    }
    return out


_MALFORMED = _mutations(json.dumps(_assets(11, 40)).encode())


@pytest.mark.parametrize("chunk", [_archive.CHUNK, 257], ids=["chunk-default", "chunk-257"])
@pytest.mark.parametrize("block_bytes", [300, 2_000])
def test_malformed_files_fail_as_the_scan(
    block_bytes: int, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reference: ``_scan.iter_array`` on the same bytes: the same exception type and
    message, or (where it raises nothing) the same raw assets, bytes and indices."""
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(_scan, "CHUNK", chunk)
    mismatched = {}
    for case, text in _MALFORMED.items():
        expected = _via_scan(text, Limits())
        for decode in (False, True):
            got = _via_blocks(text, Limits(), decode)
            if got != expected:
                mismatched[f"{case} decode={decode}"] = (got, expected)
    assert not mismatched, "\n".join(f"{k}: got {g!r:.300}\n   scan {e!r:.300}"
                                     for k, (g, e) in mismatched.items())  # fmt: skip


# --- 3. depth ---------------------------------------------------------------------------


def _nest(levels: int) -> Any:
    """A value ``levels`` deep (lists and objects in turn)."""
    value: Any = "leaf"
    for k in range(levels):
        value = [value] if k % 2 == 0 else {"k": value}
    return value


def _classification(answer: Any, chain: int = 0) -> dict[str, Any]:
    """A classification answer with ``chain`` nested ones under it (two levels each)."""
    inner = [_classification(answer, chain - 1)] if chain else []
    return {
        "objectId": "c1",
        "schemaId": "k",
        "tool": "text",
        "title": "note",
        "answer": answer if not chain else "x",
        "classifications": inner,
    }


def _place(asset: dict[str, Any], where: str, value: Any) -> None:
    tool = asset["task"]["tools"][0]
    if where == "asset-metadata":
        asset["metadata"]["deep"] = value
    elif where == "tool-metadata":
        tool["metadata"] = {"deep": value}
    elif where == "tool-classifications":  # keys in the order the index stores them
        tool["classifications"] = [_classification(value, chain=2)]
    elif where == "tool-classifications-reordered":
        tool["classifications"] = [dict(reversed(_classification(value, chain=2).items()))]
    elif where == "task-classifications":
        asset["task"]["classifications"] = [_classification(value, chain=1)]
    elif where == "relations":
        asset["task"]["relations"] = [{"deep": value}]
    else:
        assert where == "stage-history-tool"
        history_tool = dict(tool, metadata={"deep": value})
        asset["task"]["stageHistory"] = [
            {"stage": "Label", "completedAt": "2023-09-01T08:05:21.104Z", "tools": [history_tool]}
        ]


def _deep_export(where: str, depth: int, n: int = 30, bad: int = 17) -> list[dict[str, Any]]:
    """Boxes and polygons; asset ``bad`` holds a value at ``where`` making the asset
    exactly ``depth`` levels deep (counted by :func:`_depth`, the reference)."""
    assets = [
        make_asset([make_box(i, 2, 10, 4), make_polygon(SQUARE)], external_id=f"img_{i}.png")
        for i in range(n)
    ]
    asset = assets[bad]
    _place(asset, where, _nest(depth))
    levels = depth - (json_depth(asset) - depth)
    _place(asset, where, _nest(levels))
    assert json_depth(asset) == depth
    return assets


PLACES = [
    "asset-metadata",
    "tool-metadata",
    "tool-classifications",
    "tool-classifications-reordered",
    "task-classifications",
    "relations",
    "stage-history-tool",
]


@pytest.mark.parametrize("max_depth", [16, 20, 64])
@pytest.mark.parametrize("where", PLACES)
def test_depth_at_the_limit_is_indexed_and_beyond_fails_as_the_scan(
    where: str, max_depth: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At ``max_depth``: the index of the loader without typed decoding.  One level
    deeper: the scan's ``LimitError`` (``_scan.iter_array`` on the same file, and the
    loader without typed decoding), raised by the loader and by ``Block.assets``."""
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", 2_000)
    lim = Limits(max_depth=max_depth)
    path = tmp_path / NAME
    path.write_text(json.dumps(_deep_export(where, max_depth)))
    reference = _load(path, monkeypatch, typed=False, limits=lim)
    _same(_load(path, monkeypatch, typed=True, limits=lim), reference)
    assert len(reference) == 30

    path.write_text(json.dumps(_deep_export(where, max_depth + 1)))
    text = path.read_bytes()
    kind, message = _outcome(lambda: list(_scan.iter_array(io.BytesIO(text), str(path), lim)))
    assert kind == "LimitError" and "#17" in message and "max_depth" in message
    with pytest.raises(LimitError) as without:
        _load(path, monkeypatch, typed=False, limits=lim)
    with pytest.raises(LimitError) as typed:
        _load(path, monkeypatch, typed=True, limits=lim)
    assert str(typed.value) == str(without.value) == message
    for decode in (False, True):
        assert _via_blocks(text, lim, decode) == _via_scan(text, lim)


@pytest.mark.parametrize("max_depth", [20, 64])
def test_a_deep_asset_in_every_position_fails_as_the_scan(
    max_depth: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A too-deep asset first, in the middle, last, and two of them: reference
    ``_scan.iter_array`` on the same bytes (the first one's error)."""
    lim = Limits(max_depth=max_depth)
    for block_bytes in (300, 2_000, DEFAULT):
        monkeypatch.setattr(_blocks, "BLOCK_BYTES", block_bytes)
        for bad in (0, 12, 29):
            assets = _deep_export("tool-metadata", max_depth + 1, bad=bad)
            for fmt in ("compact", "indent2"):
                text = _encode(assets, fmt)
                assert _via_blocks(text, lim) == _via_scan(text, lim), (block_bytes, bad, fmt)
        assets = _deep_export("asset-metadata", max_depth + 5, bad=20)
        assets[8] = _deep_export("relations", max_depth + 1, bad=8)[8]
        text = _encode(assets, "default")
        assert _via_blocks(text, lim) == _via_scan(text, lim), block_bytes


# --- 4. size ----------------------------------------------------------------------------


@pytest.mark.parametrize("block_bytes", [300, 2_000, 20_000, DEFAULT])
@pytest.mark.parametrize("large", ["metadata", "tools", "one-tool"])
def test_an_asset_beyond_max_asset_bytes_is_read_as_the_scan_reads_it(
    large: str, block_bytes: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``max_asset_bytes`` 4000, asset 17 larger: by a metadata string (refused), by many
    ``task.tools`` entries (read in pieces), by one large entry (refused).  Reference:
    ``_scan.iter_array`` on the same bytes (and the loader without typed decoding)."""
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", block_bytes)
    lim = Limits(max_asset_bytes=4_000)
    assets = [make_asset([make_box(i, 2, 10, 4)], external_id=f"img_{i}.png") for i in range(30)]
    if large == "metadata":
        assets[17]["metadata"]["note"] = "x" * 6_000
    elif large == "tools":
        assets[17]["task"]["tools"] = [make_box(k, 1, 2, 3) for k in range(60)]
    else:
        assets[17]["task"]["tools"] = [make_polygon([[k, k + 0.5] for k in range(400)])]
    text = json.dumps(assets).encode()
    assert len(json.dumps(assets[17])) > 4_000
    expected = _via_scan(text, lim)
    assert (expected[0] == "ok") == (large == "tools")
    for decode in (False, True):
        assert _via_blocks(text, lim, decode) == expected
        try:
            items = _items(text, lim, decode)
        except LimitError:
            continue
        for item in items:  # no block holds more than the limit, so no asset above it
            assert not isinstance(item, Block) or len(item.data) <= 4_000

    path = tmp_path / NAME
    path.write_bytes(text)
    if large == "tools":
        reference = _load(path, monkeypatch, typed=False, limits=lim)
        _same(_load(path, monkeypatch, typed=True, limits=lim), reference)
        return
    scan = _outcome(lambda: list(_scan.iter_array(io.BytesIO(text), str(path), lim)))
    with pytest.raises(LimitError) as without:
        _load(path, monkeypatch, typed=False, limits=lim)
    with pytest.raises(LimitError) as typed:
        _load(path, monkeypatch, typed=True, limits=lim)
    assert (type(typed.value).__name__, str(typed.value)) == scan
    assert str(without.value) == scan[1]


# --- 5. workers -------------------------------------------------------------------------


def _recording_blocks(monkeypatch: pytest.MonkeyPatch) -> list[Block]:
    """The blocks the reader hands out from now on, as they are read (for worker
    processes, in the main process)."""
    blocks: list[Block] = []
    real = _blocks.iter_blocks

    def recording(*args: Any, **kw: Any) -> Any:
        for item in real(*args, **kw):
            if isinstance(item, Block):
                blocks.append(item)
            yield item

    monkeypatch.setattr(_read, "iter_blocks", recording)
    return blocks


def test_workers_index_the_blocks_as_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks pickled to worker processes, in several batches.  Reference: the loader
    without typed decoding (and ``workers=1``): the same index arrays in one process,
    the same records with workers (whose string tables are numbered per batch)."""
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", 3_000)
    blocks = _recording_blocks(monkeypatch)
    monkeypatch.setattr(_load_module, "index_raw", functools.partial(index_raw, batch_bytes=20_000))
    assets = typed_assets(60)
    _place(assets[30], "asset-metadata", _nest(40))  # a block taken apart in the worker
    path = tmp_path / NAME
    path.write_text(json.dumps(assets))
    reference = _load(path, monkeypatch, typed=False)
    one = _load(path, monkeypatch, typed=True, workers=1)
    n = len(blocks)
    two = _load(path, monkeypatch, typed=True, workers=2)
    assert len(blocks) - n >= 5  # the workers' run had several blocks
    _same(one, reference)
    assert len(two) == 60
    assert [repr(a) for a in two] == [repr(a) for a in reference]


# --- 6. the benchmarks' happy path -------------------------------------------------------


def test_every_block_of_a_plain_export_is_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every block cut from an export of boxes, polygons and segmentations is taken by
    ``block_columns`` whole.  Reference for the index: the loader without typed decoding."""
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", 5_000)
    path = tmp_path / NAME
    path.write_text(json.dumps(typed_assets(80)))
    reference = _load(path, monkeypatch, typed=False)

    items: list[Block | RawAsset] = []
    taken: list[bool] = []
    real_blocks, real_columns = _blocks.iter_blocks, _typed.block_columns

    def recording(*args: Any, **kw: Any) -> Any:
        for item in real_blocks(*args, **kw):
            items.append(item)
            yield item

    def block_columns(*args: Any, **kw: Any) -> Any:
        out = real_columns(*args, **kw)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(_read, "iter_blocks", recording)
    monkeypatch.setattr(_typed, "block_columns", block_columns)
    typed = _load(path, monkeypatch, typed=True)
    assert len(items) >= 5 and all(isinstance(i, Block) for i in items)
    assert len(taken) == len(items) and all(taken), taken
    _same(typed, reference)


# --- review findings (issue 14): each failed before its fix ------------------------------


def _raw_asset(i: int, task_extra: bytes = b"", asset_extra: bytes = b"") -> bytes:
    return (
        b'{"asset": "u%d.png", "externalId": "e%d", "metadata": {}%s, "task": {"tools": '
        b'[{"objectId": "o", "schemaId": "s", "title": "c", "polygon": [[1, 2], [3, 4], '
        b"[5, 6]]}]%s}}" % (i, i, asset_extra, task_extra)
    )


DEEP = json.dumps(_nest(100)).encode()
HIDDEN = {
    # Values the typed schema never measures (decoded as Any and dropped by _time).
    "deep-updatedAt": (b', "updatedAt": ' + DEEP, b""),
    "deep-completedAt": (b', "completedAt": ' + DEEP, b""),
    # A duplicated key: the decoders keep the last value and drop the first, however deep.
    "duplicate-asset-metadata": (b"", b', "metadata": ' + DEEP + b', "metadata": {}'),
    "duplicate-task-classifications": (
        b', "classifications": ' + DEEP + b', "classifications": []',
        b"",
    ),
    "duplicate-unread-key": (b', "duration": ' + DEEP + b', "duration": 1', b""),
}


@pytest.mark.parametrize("where", list(HIDDEN), ids=list(HIDDEN))
@pytest.mark.parametrize("decode", [False, True], ids=["checked", "decoded"])
def test_depth_hidden_from_the_decoders_is_refused_as_the_scan(
    where: str, decode: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reference: the scan and the loader without typed decoding both refuse asset #1
    (nested 100 + its own levels deep, beyond the default ``max_depth`` of 64)."""
    task_extra, asset_extra = HIDDEN[where]
    assets = [_raw_asset(0), _raw_asset(1, task_extra, asset_extra), _raw_asset(2)]
    text = b"[" + b", ".join(assets) + b"]"
    lim = Limits()
    reference = _via_scan(text, lim)
    assert reference[0] == "LimitError" and "asset (#1)" in reference[1]
    assert _via_blocks(text, lim, decode) == reference
    path = tmp_path / "e.json"
    path.write_bytes(text)
    with pytest.raises(LimitError) as untyped:
        _load(path, monkeypatch, typed=False)
    with pytest.raises(LimitError) as typed:
        _load(path, monkeypatch, typed=True)
    assert str(typed.value) == str(untyped.value)


@pytest.mark.parametrize("text", [b'["[\\"", ' + DEEP + b"]", b'[{"a": "\\\\"}, ' + DEEP + b"]"])
def test_deepest_reads_strings_and_escapes_as_the_scan(text: bytes) -> None:
    """``_blocks.deepest`` (brackets and quotes kept, ``""`` dropped; the scan's own
    function where there are backslashes) against ``json.loads`` + the decoded depth."""
    assert _blocks.deepest(text) == json_depth(json.loads(text))
    plain = b'[{"a": "x]]]", "b": ["[", {"c": ""}], "d": ""}, ' + DEEP + b"]"
    assert _blocks.deepest(plain) == json_depth(json.loads(plain))
    # No bracket inside a string: no quote is left once "" is dropped (the short way).
    for quiet in (b'[{"a": "x", "b": [[{"c": ""}]]}, ' + DEEP + b"]", b'[[[{"k": 1}]]]'):
        assert _blocks.deepest(quiet) == json_depth(json.loads(quiet))


def test_a_decompression_fault_names_an_asset_not_yet_read(tmp_path: Path) -> None:
    """A fault in a gzip stream read as blocks names the asset being read when it
    happened: after every asset already handed out (before the fix, the first asset
    of the last block).  Reference for what was handed out: the blocks themselves."""
    import gzip
    import re as _re
    import struct

    text = b"[" + b",".join(_raw_asset(i) for i in range(30_000)) + b"]"
    packed = gzip.compress(text, mtime=0)
    crc = struct.unpack("<I", packed[-8:-4])[0] ^ 1
    bad = packed[:-8] + struct.pack("<I", crc) + packed[-4:]
    handed = 0
    with pytest.raises(AngoTorchError) as fault:
        for item in _read.iter_raw_assets(io.BytesIO(bad), NAME, blocks=True):
            handed = item.index + (item.count if isinstance(item, Block) else 1)
    named = _re.search(r"asset \(#(\d+)\)", str(fault.value))
    assert named is not None and "CRC" in str(fault.value)
    assert int(named.group(1)) >= handed > 0


def _twice(key: bytes, first: bytes, last: bytes) -> bytes:
    return b'"%s": %s, "%s": %s' % (key, first, key, last)


_SQUARE = b"[[1, 2], [3, 4], [5, 6]]"
# Where a key may be given twice (``{}`` is the first value): msgspec keeps the last
# value and, for a field it holds as msgspec.Raw, never reads the first.
DROPPED = {
    "asset-metadata": lambda v: (
        b'{"externalId": "e1", %s, "task": {}}' % _twice(b"metadata", v, b"{}")
    ),
    "task-classifications": lambda v: (
        b'{"externalId": "e1", "task": {%s}}' % _twice(b"classifications", v, b"[]")
    ),
    "task-relations": lambda v: (
        b'{"externalId": "e1", "task": {%s}}' % _twice(b"relations", v, b"[]")
    ),
    "history-classifications": lambda v: (
        b'{"externalId": "e1", "task": {"stageHistory": '
        b'[{"stage": "Label", %s}]}}' % _twice(b"classifications", v, b"[]")
    ),
    "tool-metadata": lambda v: (
        b'{"externalId": "e1", "task": {"tools": [{"title": "c", '
        b'"polygon": %s, %s}]}}' % (_SQUARE, _twice(b"metadata", v, b"{}"))
    ),
    "tool-classifications": lambda v: (
        b'{"externalId": "e1", "task": {"tools": [{"title": '
        b'"c", "polygon": %s, %s}]}}' % (_SQUARE, _twice(b"classifications", v, b"[]"))
    ),
    "polygon": lambda v: (
        b'{"externalId": "e1", "task": {"tools": [{"title": "c", %s}]}}'
        % _twice(b"polygon", v, _SQUARE)
    ),
    "polyline": lambda v: (
        b'{"externalId": "e1", "task": {"tools": [{"title": "c", %s}]}}'
        % _twice(b"polyline", v, _SQUARE)
    ),
    "zone-region": lambda v: (
        b'{"externalId": "e1", "task": {"tools": [{"title": "c", '
        b'"segmentation": {"zones": [{%s}]}}]}}' % _twice(b"region", v, _SQUARE)
    ),
    "zone-holes": lambda v: (
        b'{"externalId": "e1", "task": {"tools": [{"title": "c", '
        b'"segmentation": {"zones": [{"region": %s, %s}]}}]}}'
        % (_SQUARE, _twice(b"holes", b"[%s]" % v, b"[]"))
    ),
}
FIRST_VALUES = {
    "invalid-utf8": b'"\xc3"',
    "beyond-double": b"[[1e400, 0]]",
    "400-digits": b"[[1" + b"0" * 400 + b", 0]]",
    "valid": b"[[0, 0], [1, 0], [1, 1]]",
}


@pytest.mark.parametrize("value", list(FIRST_VALUES), ids=list(FIRST_VALUES))
@pytest.mark.parametrize("where", list(DROPPED), ids=list(DROPPED))
@pytest.mark.parametrize("fmt", ["array", "ndjson", "array-no-simdjson"])
def test_a_key_given_twice_is_read_as_the_file_decoder_reads_it(
    where: str, value: str, fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reference: the loader without typed decoding (orjson reads each asset whole, so
    the dropped first value is checked): the same index and skipped list, or the same
    error, under both ``on_error`` settings; also where the typed path checks the text
    with orjson (no pysimdjson).  Found by fuzzing (issue 14): invalid UTF-8 or a
    number beyond a double in the first value was indexed by the typed path."""
    if fmt == "array-no-simdjson":
        monkeypatch.setattr(_typed, "_simdjson", None)
    assets = [_raw_asset(0), DROPPED[where](FIRST_VALUES[value]), _raw_asset(2)]
    array = fmt.startswith("array")
    path = tmp_path / ("e.json" if array else "e.ndjson")
    path.write_bytes(b"[" + b", ".join(assets) + b"]" if array else b"\n".join(assets))
    for on_error in ("raise", "skip"):
        outcomes = []
        for typed in (True, False):
            try:
                export = _load(path, monkeypatch, typed=typed, on_error=on_error)
            except AngoTorchError as exc:
                outcomes.append((type(exc).__name__, str(exc)))
            else:
                skipped = [(s.index, s.reason) for s in export.skipped]
                outcomes.append(({k: v.tobytes() for k, v in export.index.arrays.items()}, skipped))
        assert outcomes[0] == outcomes[1], (on_error, outcomes)
        if value != "valid" and on_error == "skip":
            assert [i for i, _ in outcomes[1][1]] == [1]  # (the reference refuses it)


FIRST_OF_TWO_ERRORS = {
    # An invalid asset, then a failure further on that reading finds: the first is
    # reported, as when each asset is decoded as it is read.
    "array-then-truncated": (b'[{"externalId": "a", "x": tru}, {"externalId": "b"}', "json"),
    "ndjson-then-too-deep": (
        b'{"externalId": "a", "x": tru}\n{"externalId": "b", "m": ' + DEEP + b"}\n",
        "ndjson",
    ),
    # The byte scan checks depth, non-object elements and what follows the array over a
    # whole chunk: it hands out the elements before the failure first (these files are
    # read by the scan with typed decoding too: no block can be made of them).
    "array-then-too-deep": (
        b'[{"externalId": "a", "x": tru}, {"externalId": "b", "m": ' + DEEP + b"}]",
        "json",
    ),
    "array-then-not-an-object": (
        b'[{"externalId": "a", "x": tru}, {"externalId": "b"}, 7]',
        "json",
    ),
    "array-then-data-after-it": (b'[{"externalId": "a", "x": tru}, {"externalId": "b"}] x', "json"),
}


@pytest.mark.parametrize("case", list(FIRST_OF_TWO_ERRORS), ids=list(FIRST_OF_TWO_ERRORS))
@pytest.mark.parametrize("typed", [True, False], ids=["typed", "untyped"])
@pytest.mark.parametrize("workers", [1, 2])
def test_the_first_of_two_errors_is_the_one_reported(
    case: str, typed: bool, workers: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reference: the file's order: asset #0's invalid JSON comes first (the asserted
    message; the loader without typed decoding in one process gives it, decoding each
    asset as it is read).  Found by fuzzing (issue 14): reading ran ahead of decoding (a
    run of assets, a block of lines, a batch for the workers, the scan's 8 MiB chunk)
    and raised the later failure first."""
    text, suffix = FIRST_OF_TWO_ERRORS[case]
    path = tmp_path / f"e.{suffix}"
    path.write_bytes(text)
    with pytest.raises(ExportFormatError) as reference:
        _load(path, monkeypatch, typed=False)
    assert "asset (#0)" in str(reference.value) and "invalid JSON" in str(reference.value)
    with pytest.raises(AngoTorchError) as got:
        _load(path, monkeypatch, typed=typed, workers=workers)
    assert (type(got.value), str(got.value)) == (ExportFormatError, str(reference.value))
    # Skipping the invalid asset, both reach the later failure.
    with pytest.raises(AngoTorchError) as later:
        _load(path, monkeypatch, typed=False, on_error="skip")
    with pytest.raises(AngoTorchError) as got:
        _load(path, monkeypatch, typed=typed, workers=workers, on_error="skip")
    assert (type(got.value), str(got.value)) == (type(later.value), str(later.value))


SECOND_ERROR = {
    "array-then-too-deep": "asset (#1): JSON nested more than 64 levels",
    "array-then-not-an-object": "element #2 is not an object",
    "array-then-data-after-it": "unexpected data after the array",
}


@pytest.mark.parametrize("chunk", [7, 40, 1 << 20])
@pytest.mark.parametrize("case", [c for c in FIRST_OF_TWO_ERRORS if c in SECOND_ERROR])
def test_the_scan_hands_out_the_assets_before_a_failure_in_its_chunk(
    case: str, chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reference: the file's order: asset #0's invalid JSON, then with it skipped the
    later failure (as read off the file by hand).  The invalid asset spans chunks
    of 7 and 40 bytes (the scan's element in progress), and shares the failure's chunk
    at 1 MiB."""
    monkeypatch.setattr(_scan, "CHUNK", chunk)
    text = FIRST_OF_TWO_ERRORS[case][0].replace(b"tru}", b'tru, "pad": "' + b"p" * 50 + b'"}')
    path = tmp_path / "e.json"
    path.write_bytes(text)
    with pytest.raises(ExportFormatError) as got:
        _load(path, monkeypatch, typed=False)
    assert "asset (#0)" in str(got.value) and "invalid JSON" in str(got.value)
    with pytest.raises(AngoTorchError) as later:
        _load(path, monkeypatch, typed=False, on_error="skip")
    assert SECOND_ERROR[case] in str(later.value)


# --- NDJSON: runs of lines as blocks ----------------------------------------------------


def _ndjson_items(text: bytes, lim: Limits, decode: bool = False) -> list[Block | RawAsset]:
    blocks: Any = "decoded" if decode else True
    return list(_read.iter_raw_assets(io.BytesIO(text), NAME, lim, blocks=blocks))


def _ndjson_outcome(text: bytes, lim: Limits, blocks: bool, decode: bool = False) -> Outcome:
    """(index, line, decoded asset) of every asset, or the error; with ``blocks`` off,
    the reader as before (the reference)."""
    try:
        if blocks:
            items = _ndjson_items(text, lim, decode)
            raws = [r for it in items for r in (it.assets() if isinstance(it, Block) else [it])]
        else:
            raws = list(_read.iter_raw_assets(io.BytesIO(text), NAME, lim))
    except AngoTorchError as exc:
        return type(exc).__name__, str(exc)
    return "ok", [(r.index, r.line, r.data.strip()) for r in raws]


@pytest.mark.parametrize("decode", [False, True], ids=["checked", "decoded"])
@pytest.mark.parametrize("block_bytes", [300, 5_000, DEFAULT])
def test_ndjson_blocks_hold_each_line_as_json_loads_reads_it(
    block_bytes: int, decode: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reference: ``json.loads`` of each non-blank line, numbered by line; blank lines,
    CRLF and a missing last newline included."""
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", block_bytes)
    assets = _assets(3, 60)
    lines = [json.dumps(a).encode() for a in assets]
    text = (
        b"\n".join(lines[:1])
        + b"\n"
        + b"".join(
            (b"\n\n" if k % 11 == 5 else b"") + line + (b"\r\n" if k % 7 == 3 else b"\n")
            for k, line in enumerate(lines[1:], 1)
        )
    )
    text = text.rstrip(b"\n")  # no newline after the last line
    items = _ndjson_items(text, Limits(), decode)
    assert any(isinstance(it, Block) for it in items)
    got = _ndjson_outcome(text, Limits(), True, decode)
    reference = _ndjson_outcome(text, Limits(), False)
    assert got == reference
    assert [json.loads(a) for _, _, a in got[1]] == [json.loads(line) for line in lines]


NDJSON_BAD = {
    # Two lines that are invalid alone but whose join is a list of two objects.
    "split-asset": b'{"externalId": "s", "metadata": [1\n2], "task": {}}, {"externalId": "t"}\n',
    "two-assets-on-a-line": b'{"externalId": "s", "task": {}} {"externalId": "t", "task": {}}\n',
    "comma-joined-on-a-line": b'{"externalId": "s", "task": {}}, {"externalId": "t"}\n',
    "not-an-object": b"[1, 2]\n",
    "too-deep": b'{"externalId": "d", "metadata": ' + DEEP + b"}\n",
    "truncated": b'{"externalId": "s", "task": {\n',
}


@pytest.mark.parametrize("block_bytes", [2_000, DEFAULT])
@pytest.mark.parametrize("decode", [False, True], ids=["checked", "decoded"])
@pytest.mark.parametrize("bad", list(NDJSON_BAD), ids=list(NDJSON_BAD))
def test_ndjson_lines_that_are_no_block_read_as_before(
    bad: str, decode: bool, block_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reference: the line reader without blocks (same assets, or the same error)."""
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", block_bytes)
    good = [json.dumps(a).encode() + b"\n" for a in _assets(4, 12)]
    text = b"".join(good[:6]) + NDJSON_BAD[bad] + b"".join(good[6:])
    reference = _ndjson_outcome(text, Limits(), False)
    assert _ndjson_outcome(text, Limits(), True, decode) == reference


def test_an_ndjson_export_indexes_as_without_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reference: the loader without typed decoding (and so without blocks), one
    process; and the same records with two worker processes."""
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", 3_000)
    path = tmp_path / "e.ndjson"
    path.write_bytes(b"".join(json.dumps(a).encode() + b"\n" for a in _assets(5, 80)))
    reference = _load(path, monkeypatch, typed=False)
    _same(_load(path, monkeypatch, typed=True), reference)
    monkeypatch.setattr(_load_module, "index_raw", functools.partial(index_raw, batch_bytes=6_000))
    two = _load(path, monkeypatch, typed=True, workers=2)
    assert [repr(a) for a in two] == [repr(a) for a in reference]


class _FaultAfter(io.BytesIO):
    """NDJSON lines, then a decompression fault (as a truncated gzip raises it) when
    line ``n`` + 1 is read."""

    def __init__(self, text: bytes, n: int) -> None:
        super().__init__(text)
        self.left = n

    def readline(self, size: int | None = -1) -> bytes:
        if self.left == 0:
            raise _archive.Fault(ArchiveError, "truncated gzip (test)")
        self.left -= 1
        return super().readline(-1 if size is None else size)


@pytest.mark.parametrize("typed", [True, False], ids=["typed", "untyped"])
def test_ndjson_lines_read_before_an_archive_fault_come_first(
    typed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An archive fault after a line nested too deep: the reader without blocks (the
    reference) reaches that line first and refuses it; lines held for a block must not
    hide it behind the fault, nor the fault name an asset before the one being read
    (found by review)."""
    monkeypatch.setattr(_typed, "AVAILABLE", typed)
    lines = [_raw_asset(i) + b"\n" for i in range(300)]
    deep = lines.copy()
    deep[200] = b'{"externalId": "deep", "metadata": ' + DEEP + b"}\n"

    def outcome(text: bytes, blocks: bool) -> tuple[str, str]:
        stream = _FaultAfter(text, 250)
        try:
            for _ in _read._located(_read._iter_ndjson(stream, NAME, Limits(), blocks), NAME):
                pass
        except AngoTorchError as exc:
            return type(exc).__name__, str(exc)
        raise AssertionError("no error")

    for text in (b"".join(deep), b"".join(lines)):
        reference = outcome(text, False)
        assert outcome(text, True) == reference
    assert outcome(b"".join(deep), False)[0] == "LimitError"
    assert "asset (#250)" in outcome(b"".join(lines), True)[1]


# --- blocks checked whole by the reader for worker processes (issue 14) -------------------


@pytest.mark.skipif(_typed._simdjson is None, reason="the reader checks blocks with simdjson")
@pytest.mark.parametrize(
    "text",
    [
        b'[{"a": 1}, {"b": [1, {"c": "\\u00e9"}]}]',
        b"[]",
        b'[{"a": 1}, 2]',
        b'{"a": 1}',
        b'[{"a": 1e400}]',  # beyond a double: orjson and simdjson refuse it
        b'[{"a": 123456789012345678901234567890}]',  # beyond 64 bits: simdjson refuses
        b'[{"a": "\xed\xa0\x80"}]',  # a surrogate in UTF-8: invalid
        b'[{"a": 1, "a": 2}]',
        b'[{"a": 1}] x',
    ],
)
def test_checked_objects_reads_a_block_as_the_whole_text_check(text: bytes) -> None:
    """References: the standard library's ``json`` for the count (a list of objects, else
    0), and ``_typed._valid_json`` (the typed path's whole-text check) for whether the
    reader's check may stand for it (``None``: it may not)."""
    n = _typed.checked_objects(text)
    if not _typed._valid_json(text):
        assert n is None
        return
    value = json.loads(text)
    objects = isinstance(value, list) and all(isinstance(v, dict) for v in value)
    assert n == (len(value) if objects else 0)


def test_workers_index_blocks_the_reader_checked_whole_as_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks cut for worker processes are checked whole by the reader (simdjson), and
    the workers then skip that check; blocks whose text it refuses (a duplicated key
    whose dropped value is beyond a double, or beyond 64 bits) are not marked and go
    through the check and, failing it, the existing path.  Reference: the same export
    in one process (records, and the skipped assets under ``on_error="skip"``), and the
    loader without typed decoding."""
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", 1_000)
    blocks = _recording_blocks(monkeypatch)
    monkeypatch.setattr(_load_module, "index_raw", functools.partial(index_raw, batch_bytes=8_000))
    raws = [_raw_asset(i) for i in range(60)]
    raws[20] = _raw_asset(20, asset_extra=b', "metadata": {"w": 1e400}, "metadata": {}')
    raws[40] = _raw_asset(40, b', "duration": 123456789012345678901234567890, "duration": 1')
    path = tmp_path / NAME
    path.write_bytes(b"[" + b", ".join(raws) + b"]")
    reference = _load(path, monkeypatch, typed=False, on_error="skip")
    one = _load(path, monkeypatch, typed=True, on_error="skip")
    blocks.clear()
    two = _load(path, monkeypatch, typed=True, on_error="skip", workers=2)
    assert len(blocks) >= 5
    marked = {b.index: b.checked for b in blocks}
    held = {b.index: range(b.index, b.index + b.count) for b in blocks}
    for first, checked in marked.items():  # unmarked: exactly the blocks with those two
        assert checked == (20 not in held[first] and 40 not in held[first]), first
    if _typed._simdjson is None:
        assert not any(marked.values())
    assert [repr(a) for a in two] == [repr(a) for a in one] == [repr(a) for a in reference]
    assert [s.index for s in two.skipped] == [s.index for s in one.skipped]
    assert [s.index for s in one.skipped] == [s.index for s in reference.skipped] == [20]
    assert len(two) == 59


def test_blocks_checked_whole_only_where_msgspec_can_split_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """simdjson's check stands for msgspec's only where msgspec could still split the
    block (Python's recursion limit well above its depth) and for blocks up to
    CHECK_WHOLE_MAX (simdjson keeps buffers for its largest text).  Reference: the
    block's own count, 2 objects."""
    data = b'[{"a": [[1]]}, {"b": 2}]'
    whole = _typed._simdjson is not None
    assert _blocks._checked(data, 4) == (2, whole)
    monkeypatch.setattr(_blocks.sys, "getrecursionlimit", lambda: 400)
    assert _blocks._checked(data, 4) == (2, False)
    monkeypatch.undo()
    monkeypatch.setattr(_blocks, "CHECK_WHOLE_MAX", len(data) - 1)
    assert _blocks._checked(data, 4) == (2, False)


@pytest.mark.parametrize(
    "parts",
    [[], [b"1"], [b'{"a": [1]}', b"[]"], [msgspec.Raw(b"{}"), memoryview(b"[1, 2]"), b"null"]],
)
def test_json_list_is_the_bracketed_comma_join(parts: list[Any]) -> None:
    """``json_list`` (one copy) against the three-copy expression it replaces, and
    against ``json.loads`` of each part (reference: the standard library)."""
    before = list(parts)
    out = json_list(parts)
    assert out == b"[" + b",".join(bytes(memoryview(p)) for p in parts) + b"]"
    assert json.loads(out) == [json.loads(bytes(memoryview(p))) for p in parts]
    assert all(a is b for a, b in zip(parts, before, strict=True))  # the list unchanged
