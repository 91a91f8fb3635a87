"""Typed decoding: a chunk of raw assets → index columns, in bulk.

The common shape of an image export (v3 or legacy v2 assets whose tools are boxes,
rotated boxes, polygons, polylines, points and segmentations) is decoded by msgspec
into ``Struct``\\ s that declare only what the index reads; rings, boxes, points,
rotated boxes, metadata and classifications stay ``msgspec.Raw`` (views of the file's
bytes).  The columns of the whole chunk are then made by C-level passes
(``operator.attrgetter`` maps, ``itertools.compress``, ``np.fromiter``), and every
ring's numbers at once: the chunk's rings are joined, their skeleton (the bytes with
the numbers and blanks taken out) must be ``[[,],[,],...]``, and the numbers are read
by one parse (simdjson, else orjson) into a float buffer.

It has no rules of its own.  Anything the typed schema does not declare (an unknown
tool key, a numeric id, a 3D box...) fails validation (an unknown asset, task or
snapshot key is skipped: the parser ignores it), and anything the schema accepts but
the full parser would refuse (a non-finite or beyond-float32 coordinate, a ``null``
geometry, a page out of range, a malformed nested classification, two geometries...)
makes it give up too: it never raises an
:class:`~ango_torch.errors.ExportFormatError` itself.  A chunk it gives up on goes,
asset by asset, through the existing path (:func:`._columns.asset_columns`, whose
errors name the asset), so the index and every error are the same either way;
``tests/export/test_parse_paths.py`` checks this on generated assets.  The free-form
parts that are not plain (snapshot classifications and relations, nested object
classifications) go through the parser's own functions.  A tool's classifications in
:func:`~._tables.class_raw`'s form and its metadata object are not decoded at all: they
stay the file's text (``Raw``, checked by a typed decode and :func:`_valid_json`), and
msgspec's encoder writes them into the object rows as they are (blanks outside strings
dropped).  So the index holds the file's spelling of them (key order, escapes, numbers),
equal as JSON to what the parser stores (``tests/builders.py::assert_same_index``
compares them so).

Without msgspec and orjson (the ``fast`` extra) :data:`AVAILABLE` is false and every
chunk takes the existing path.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from operator import attrgetter, is_not, methodcaller
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from ..errors import ExportFormatError
from ._bytescan import RawAsset, json_list
from ._columns import ChunkColumns
from ._fields import _F32_LIMIT, _Loc, _plain, _time
from ._parse import parse_classifications, parse_relations
from ._parse_geometry import _rotated_box
from ._tables import class_raw, dumps, relation_raw


class _Run(Protocol):
    """What :func:`chunks` groups: a raw asset, or a block of them (:mod:`._blocks`)."""

    @property
    def data(self) -> bytes: ...
    @property
    def part(self) -> int: ...
    @property
    def last(self) -> bool: ...


_R = TypeVar("_R", bound=_Run)

__all__ = [
    "AVAILABLE",
    "CHUNK_BYTES",
    "block_columns",
    "checked_objects",
    "chunk_columns",
    "chunks",
    "decode_block",
]

CHUNK_BYTES = 256 << 10
"""Raw asset bytes decoded together (the fallback, when needed, is per chunk).  Larger
chunks are no faster (per-chunk costs are a few numpy calls) and hold more temporaries:
at 256 KiB peak memory is that of indexing asset by asset."""

try:
    import msgspec
    import orjson
    from msgspec import UNSET, Raw, Struct, UnsetType, field
except ImportError:  # pragma: no cover - without the [fast] extra
    AVAILABLE = False
else:
    AVAILABLE = True
    _dumps = orjson.dumps  # _tables.dumps without its fallbacks (plain values only)

_simdjson: Any
try:  # the ring numbers' parser where installed (else orjson)
    import simdjson as _simdjson
except ImportError:  # pragma: no cover - without pysimdjson
    _simdjson = None

_BOX, _ROT, _POLY, _LINE, _PT, _SEG = 0, 1, 2, 3, 4, 5
_BRACE = ord("{")


class _GiveUp(Exception):
    """The typed path does not take this chunk; the existing path reads it."""


if AVAILABLE:
    _NULL = Raw(b"null")
    _EMPTY = Raw(b"[]")

    class _Box(Struct, forbid_unknown_fields=True, gc=False):
        x: float
        y: float
        width: float
        height: float

    class _Zone(Struct, forbid_unknown_fields=True, gc=False):
        region: Raw | UnsetType = UNSET
        holes: list[Raw] | None = None

    class _Rotated(Struct, gc=False):
        """A rotated box as :func:`._parse_geometry._rotated_box` reads it (other keys
        it ignores: so does this)."""

        x: float | None = None
        y: float | None = None
        width: float | None = None
        height: float | None = None
        rotation: float | None = None
        corners: Raw = _NULL

    class _Seg(Struct, forbid_unknown_fields=True, gc=False):
        zones: list[_Zone]

    class _Tool(Struct, forbid_unknown_fields=True, gc=False):
        # The envelope (ENVELOPE_KEYS) ...
        objectId: str | None = None
        schemaId: str | None = None
        title: str | None = None
        classifications: Raw = _NULL
        page: int | None = None
        interpolationStopped: Any = False
        metadata: Raw = _NULL
        ocr: Any = None  # read by no one, but checked (_ignored)
        masks: Any = None
        color: Any = None
        tool: Any = None
        featureSchemaId: Any = None
        frame: Any = None
        # ... and the geometries this path reads (a ``Raw`` one is checked when read).
        # A box and a point stay the file's text too, read in bulk (:func:`_boxes`,
        # :func:`_points`): decoding them made a struct and a float per number.
        box: Raw | UnsetType = field(default=UNSET, name="bounding-box")
        polygon: Raw | UnsetType = UNSET
        polyline: Raw | UnsetType = UNSET
        point: Raw | UnsetType = UNSET
        segmentation: _Seg | UnsetType = UNSET
        rotated: Raw | UnsetType = field(default=UNSET, name="rotated-bounding-box")

    # An asset, task or snapshot key that the parser does not read, it ignores: so does
    # this schema (msgspec checks its value's structure as it skips it, and the whole
    # text is checked as the file's decoder reads it, :func:`_valid_json`).  Refusing
    # them made an export with one new key per asset index ~3x slower (a tool's unknown
    # key is another matter: the parser reads it as a geometry).
    class _Snap(Struct, gc=False):
        tools: list[_Tool] | None = None
        classifications: Raw = _NULL
        relations: Raw = _NULL
        stage: str | None = None
        stageId: str | None = None
        brushDataUrl: str | None = None
        medicalBrushDataUrl: str | None = None
        completedAt: Any = None
        completedBy: str | None = None
        # Keys of real exports that the index does not read (checked by _ignored).
        duration: Any = None
        idleDuration: Any = None
        blurDuration: Any = None
        taskHistory: Any = None

    class _Task(_Snap, gc=False):
        taskId: str | None = None
        type: str | None = None
        updatedAt: Any = None
        updatedBy: str | None = None
        stageHistory: list[_Snap] | None = None
        totalDuration: Any = None
        totalIdleDuration: Any = None
        totalBlurDuration: Any = None

    class _V2Task(_Task, gc=False):
        """A legacy (v2) asset's task: its tools are in ``objects`` (else ``tools``)."""

        objects: list[_Tool] | None = None
        stageHistory: Any = None  # (the parser ignores it in a v2 task)

    class _Asset(Struct, gc=False):
        externalId: str | None = None
        assetId: str | None = None
        asset: str | UnsetType | None = UNSET
        data: str | UnsetType | None = UNSET
        metadata: Raw = _NULL
        dataset: list[str] | None = None
        batches: list[str] | None = None
        task: _Task | UnsetType = UNSET
        tasks: list[_V2Task] | UnsetType | None = UNSET  # legacy v2 (read where no task)

    class _Class(Struct, forbid_unknown_fields=True, gc=False):
        """A classification in :func:`class_raw`'s form (these six keys, in any order;
        nested ones alike): what the parser would store unchanged."""

        objectId: str | None
        schemaId: str | None
        tool: str | None
        title: str | None
        answer: Raw
        classifications: list[_Class]

    _CLASS_LIST = msgspec.json.Decoder(list[_Class]).decode
    _CLASS_LISTS = msgspec.json.Decoder(list[list[_Class]]).decode
    _ENCODE = msgspec.json.encode  # writes a Raw as its bytes
    _FORMAT = msgspec.json.format  # indent=-1: blanks outside strings dropped
    _replace = msgspec.structs.replace
    _BOX_DECODE = msgspec.json.Decoder(_Box).decode
    _ROTATED_LIST = msgspec.json.Decoder(list[_Rotated]).decode
    _POINT_DECODE = msgspec.json.Decoder(tuple[float, float]).decode
    _DECODE = msgspec.json.Decoder(_Asset).decode
    _DECODE_LIST = msgspec.json.Decoder(list[_Asset]).decode
    _FAIL: tuple[type[Exception], ...] = (
        _GiveUp,
        msgspec.DecodeError,
        orjson.JSONDecodeError,
        RuntimeError,  # simdjson: an integer beyond 64 bits
        ExportFormatError,
        ValueError,
        TypeError,
        OverflowError,
    )

_GEOMETRIES = ("box", "polygon", "polyline", "point", "segmentation", "rotated")
_CODES = (_BOX, _POLY, _LINE, _PT, _SEG, _ROT)
_ZONES = attrgetter("zones")
# Number characters and blanks: what is left of a ring of numbers is its skeleton.
_NUMBER_CHARS = b"0123456789.eE+- \t\r\n"
_BRACKETS_OUT = bytes.maketrans(b"[]", b"  ")
_TOOL_IGNORED_FIELDS = ("ocr", "masks", "color", "tool", "featureSchemaId", "frame")
_LOC = _Loc(None, -1)  # never named: the typed path gives up rather than raise


@lru_cache(maxsize=4096)
def _skeleton(n: int) -> bytes:
    """The skeleton of a ring of ``n`` two-number points: ``[[,],[,],...]``."""
    return b"[" + b"[,]," * (n - 1) + b"[,]]"


def chunks(raws: Iterable[_R], size: int | None = None) -> Iterator[list[_R]]:
    """Consecutive runs of whole raw assets (or of blocks, :mod:`._blocks`, never both
    in one run) of about ``size`` bytes (each piece of a large asset alone)."""
    size = CHUNK_BYTES if size is None else size
    batch: list[_R] = []
    total = 0
    assets = iter(raws)
    while True:
        try:
            raw = next(assets)
        except StopIteration:
            break
        except Exception:
            # Reading runs ahead of decoding by a run: where it fails further on (a
            # truncated array, a line nested too deep), the assets read before come
            # first, so that the first error is the file's first, as when each asset is
            # decoded as it is read (found by fuzzing, issue 14).
            if batch:
                yield batch
            raise
        if raw.part or not raw.last:  # a piece of a large asset (._split): on its own
            if batch:
                yield batch
                batch, total = [], 0
            yield [raw]
            continue
        if batch and type(raw) is not type(batch[0]):
            yield batch
            batch, total = [], 0
        batch.append(raw)
        total += len(raw.data)
        if total >= size:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


def decode_block(data: bytes) -> list[Any] | None:
    """A block's assets decoded to the typed schema (``None``: it does not fit it, or is
    not a JSON list)."""
    if not AVAILABLE:
        return None
    try:
        out: list[Any] = _DECODE_LIST(data)
    except (msgspec.DecodeError, RecursionError):
        return None
    return out


def block_columns(
    data: bytes, decoded: list[Any] | None = None, checked: bool = False
) -> ChunkColumns | None:
    """The columns of a block of whole assets (:class:`._blocks.Block`: ``[`` + their
    JSON + ``]``, its bytes already checked for ``max_depth``), decoded in one call, or
    ``None`` where the typed path gives up.  ``decoded``: its assets, where the reader
    decoded them (:func:`decode_block`); ``checked``: :func:`checked_objects` already
    read the text whole (the check :func:`_valid_json` makes)."""
    if not AVAILABLE:
        return None
    try:
        cc = _columns(_DECODE_LIST(data) if decoded is None else decoded, 0)
    except _FAIL:
        return None
    return cc if checked or _valid_json(data) else None


def checked_objects(data: bytes) -> int | None:
    """With simdjson: how many objects the JSON list ``data`` holds, read whole as
    :func:`_valid_json` reads it (``0``: it is not a list of objects); ``None`` where
    simdjson refuses the text or is not installed (then the caller checks it otherwise).

    The reader cutting an array into blocks for worker processes checks each block with
    it: as fast as msgspec skipping the block (0.086 s against 0.088 s for the
    benchmark's 79 MiB mixed export), and the worker then need not read the text whole
    again (:func:`block_columns`'s ``checked``).
    """
    if _simdjson is None:
        return None
    try:
        doc = _parser().parse(data)
    except (ValueError, RuntimeError):
        return None
    try:
        if type(doc) is not _simdjson.Array:
            return 0
        n = len(doc)
        return n if all(type(e) is _simdjson.Object for e in doc) else 0
    finally:
        del doc  # the parser is reused: nothing may still refer to its document


def chunk_columns(raws: list[RawAsset], first: int = 0) -> ChunkColumns | None:
    """The columns of a chunk of raw assets, or ``None`` where the typed path gives up
    (the caller then indexes the chunk asset by asset with the existing path).

    ``first``: for a piece of a large asset (:mod:`._split`, a chunk of its own), the
    position of its first ``task.tools`` entry in the asset, so that an entry without
    an ``objectId`` is ``#k`` by its place in the whole asset, as decoded unsplit.
    """
    if not AVAILABLE:
        return None
    data = [r.data for r in raws]
    try:
        cc = _columns(list(map(_DECODE, data)), first)
    except _FAIL:
        return None
    return cc if all(map(_valid_json, data)) else None


def _valid_json(data: bytes) -> bool:
    """Whether the file's decoder (orjson) reads ``data``.

    msgspec checks the structure of a value it skips or holds as ``Raw``, not its UTF-8
    or its numbers' range; the values read later are checked then.  But of a key given
    twice msgspec keeps the last value, and the first (a ``Raw`` one, or a huge integer
    decoded as ``Any``) may hold invalid UTF-8 or a number beyond a double, which
    orjson refuses (found by fuzzing, issue 14).  So the whole text is parsed too: by
    simdjson (+3% to +8% of indexing the benchmark's mixed export; it also refuses an
    integer beyond 64 bits, which orjson reads as a float: that chunk then goes to the
    existing path, which reads it as orjson does), else by orjson itself.
    """
    try:
        if _simdjson is not None:
            doc = _parser().parse(data)
            del doc  # the parser is reused: nothing may still refer to its document
        else:
            orjson.loads(data)
    except (ValueError, RuntimeError):  # (UnicodeDecodeError is a ValueError)
        return False
    return True


def _ignored(rows: list[tuple[Any, ...]]) -> None:
    """Check the values of keys the index does not read as the file's JSON decoder
    would: msgspec gives an integer beyond a double's range where orjson refuses it
    (conservatively, anything beyond 64 bits gives up)."""
    if not rows or (rows.count(rows[0]) == len(rows) and rows[0].count(None) == len(rows[0])):
        return  # all absent (the common case, checked in C)
    for row in rows:
        for v in row:
            if v is not None and not _plain(v):
                raise _GiveUp


def _dim(value: Any) -> int:
    """``metadata.width``/``height`` as the parser reads them (``-1``: none)."""
    if value is None:
        return -1
    t = type(value)
    if (t is int or (t is float and value.is_integer())) and 0 <= value < 2**31:
        return int(value)
    raise _GiveUp


def _iso(value: Any) -> str | None:
    when = _time(value, _LOC, "time")
    return None if when is None else when.isoformat()


def _snap_row(
    snap: Any, n: int
) -> tuple[str | None, str | None, str | None, str | None, int, bytes | None]:
    """A snapshot row as :func:`._columns._record_snap` makes it (its extra dumped)."""
    extra: dict[str, Any] = {}
    if snap.classifications != _NULL and snap.classifications != _EMPTY:
        classes = parse_classifications(orjson.loads(memoryview(snap.classifications)), _LOC)
        if classes:
            extra["classifications"] = [class_raw(c) for c in classes]
    if snap.relations != _NULL and snap.relations != _EMPTY:
        relations = parse_relations(orjson.loads(memoryview(snap.relations)), _LOC)
        if relations:
            extra["relations"] = [relation_raw(r) for r in relations]
    if snap.completedAt is not None:
        done = _iso(snap.completedAt)
        if done is not None:
            extra["completedAt"] = done
    if snap.completedBy:
        extra["completedBy"] = snap.completedBy
    return (
        snap.stage or None,
        snap.stageId or None,
        snap.brushDataUrl or None,
        snap.medicalBrushDataUrl or None,
        n,
        dumps(extra) if extra else None,
    )


def _text_kept() -> bool:
    """Whether classifications and metadata may be kept as the file's text: only where
    simdjson checked it.  orjson (the check without it) reads an integer beyond 64 bits
    as a float, as the parser stores it, where the text would keep the integer, which
    the standard library's ``json`` (the index's reader without orjson) then reads as
    one, refused by the parser's rules; simdjson refuses such a text, which then goes
    to the existing path (found by fuzzing, issue 14).  Without simdjson they are
    decoded by orjson, as before."""
    return _simdjson is not None


def _classes(raws: Sequence[Any]) -> list[Any]:
    """Each tool's classifications as the index stores them (``None``: none): the
    file's own text (``Raw``) where it is in :func:`class_raw`'s form, else decoded."""
    # Most tools have none: only the others are looked at ("[]" and "null" are found by
    # comparing bytes, in C; ~2x faster on the benchmark's mixed export).
    n = len(raws)
    todo = list(itertools.compress(range(n), map(_EMPTY.__ne__, raws)))
    todo = list(itertools.compress(todo, map(_NULL.__ne__, map(raws.__getitem__, todo))))
    out: list[Any] = [None] * n
    if not todo:
        return out
    chosen = list(map(raws.__getitem__, todo))
    joined = json_list(chosen)
    try:
        # Checked in C, nothing kept: ~3x faster than decoding them (issue 14).
        lists = _CLASS_LISTS(joined)
    except msgspec.DecodeError:  # (a ValidationError is one)
        return _decoded_classes(todo, chosen, out)
    kept = chosen if _text_kept() else orjson.loads(joined)
    for i, value, checked in zip(todo, kept, lists, strict=True):
        if checked:  # (an empty list, "[ ]", is none)
            out[i] = value
    return out


def _decoded_classes(todo: list[int], chosen: list[Any], out: list[Any]) -> list[Any]:
    """:func:`_classes` where some list is not in :func:`class_raw`'s form: each one
    that is stays the file's text, the others are decoded and go through the parser's
    rules."""
    for i, raw in zip(todo, chosen, strict=True):
        try:
            checked = _CLASS_LIST(raw)
        except msgspec.DecodeError:
            value = orjson.loads(memoryview(raw))
        else:
            if checked:
                out[i] = raw if _text_kept() else orjson.loads(memoryview(raw))
            continue
        if not value:
            if value is None or value == []:
                continue
            raise _GiveUp  # {}, "", 0 or false: the parser refuses them
        out[i] = [class_raw(c) for c in parse_classifications(value, _LOC)] or None
    return out


def _metas(raws: Sequence[Any]) -> list[Any]:
    """Each tool's metadata as the index stores it: an object (the file's own text,
    ``Raw``), else ``None``.  Only each value's first byte is looked at: the whole
    text was checked as JSON (:func:`_valid_json`), and decoding them was ~4x slower
    (issue 14)."""
    if all(map(_NULL.__eq__, raws)):
        return [None] * len(raws)
    if not _text_kept():
        values = orjson.loads(json_list(raws))
        return [v if type(v) is dict else None for v in values]
    lengths = np.fromiter(map(len, raws), np.int64, len(raws))
    first = np.frombuffer(b"".join(raws), np.uint8)[np.cumsum(lengths) - lengths]
    objects = first == _BRACE
    if objects.all():
        return list(raws)
    return [
        raw if is_object else None for raw, is_object in zip(raws, objects.tolist(), strict=True)
    ]


def _rings(rings: list[Any]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Every ring's point count and all their vertices (float32 ``[V, 2]``).

    Gives up unless each ring is a non-empty list of ``[x, y]`` number pairs that stay
    finite as float32 (the parser's :func:`._parse_geometry.vertex_array` rule).
    """
    if not rings:
        return np.zeros(0, np.int64), np.zeros((0, 2), np.float32)
    joined = b";".join(rings)
    skeleton = joined.translate(None, _NUMBER_CHARS)
    parts = skeleton.split(b";")
    if len(parts) != len(rings):
        raise _GiveUp
    lens = np.fromiter(map(len, parts), np.int64, len(parts))
    counts = (lens - 1) // 4
    if (counts < 1).any() or skeleton != b";".join(map(_skeleton, counts.tolist())):
        raise _GiveUp
    values = _numbers(rings)
    if values.shape != (2 * int(counts.sum()),):
        raise _GiveUp
    with np.errstate(over="ignore"):
        verts = values.astype(np.float32).reshape(-1, 2)
    if not np.isfinite(verts).all():
        raise _GiveUp
    return counts, verts


_local = threading.local()


def _parser() -> Any:
    """This thread's simdjson parser: a new one per call allocates its buffers anew,
    which took 60% of the ring numbers' time (measured on the benchmark's mixed
    export); it keeps buffers for the largest chunk's rings (a few MB)."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = _simdjson.Parser()
    return parser


def _numbers(rings: list[Any]) -> npt.NDArray[np.float64]:
    """Every number of the rings, in order, as doubles (the full parser's values: orjson
    and simdjson both round correctly); simdjson's flat buffer where installed."""
    if _simdjson is not None:
        doc: Any = _parser().parse(json_list(rings))
        values: npt.NDArray[np.float64] = np.frombuffer(doc.as_buffer(of_type="d"), np.float64)
        values = values.copy()
        del doc  # the parser is reused: nothing may still refer to its document
        return values
    text = b",".join(rings).translate(_BRACKETS_OUT)
    return np.array(orjson.loads(b"[" + text + b"]"), np.float64)


def _coords(values: npt.NDArray[np.float64]) -> None:
    """The parser's coordinate rule: finite, and finite as float32."""
    if not (np.abs(values) < _F32_LIMIT).all():  # NaN compares False
        raise _GiveUp


# A box's keys as they are in its skeleton (the "e" of "height" is a number character).
_BOX_COLUMNS = {b'"x":': 0, b'"y":': 1, b'"width":': 2, b'"hight":': 3}
_BOX_KEYS = (b'"x"', b'"y"', b'"width"', b'"height"')
_BOX_PUNCTUATION = b"{}: \t\r\n"


@lru_cache(maxsize=64)
def _box_order(skeleton: bytes) -> tuple[int, ...] | None:
    """Where ``skeleton`` is a box's (``{"x":,"y":,"width":,"hight":}``, the four keys
    once each in any order, holding numbers): the column of each of its numbers."""
    keys = skeleton[1:-1].split(b",") if skeleton[:1] == b"{" and skeleton[-1:] == b"}" else []
    order = tuple(_BOX_COLUMNS.get(k, -1) for k in keys)
    return order if sorted(order) == [0, 1, 2, 3] else None


def _boxes(raws: list[Any]) -> npt.NDArray[np.float64]:
    """Each box's ``x, y, width, height`` (``[N, 4]``), as :class:`_Box` decodes them.

    Where every box is an object of these four keys holding numbers, in one order (their
    skeleton, the text less numbers and blanks, says so), the keys and punctuation are
    taken out and all the numbers are read at once, as a ring's (:func:`_numbers`);
    boxes in several key orders are read so order by order, and any other box is
    decoded by :class:`_Box`, which refuses what the typed path does not take.  A key
    spelled otherwise that has the skeleton of one of these (``"h1eight"``) gives up.
    Decoding each box to a struct of floats was ~15% of decoding the benchmark's mixed
    export (issue 14).
    """
    n = len(raws)
    joined = b";".join(raws)
    skeleton = joined.translate(None, _NUMBER_CHARS)
    first = skeleton.partition(b";")[0]
    order = _box_order(first)
    if order is not None and skeleton == b";".join(itertools.repeat(first, n)):
        return _box_numbers(joined, order, n)
    out = np.empty((n, 4), np.float64)
    parts = skeleton.split(b";")
    if len(parts) != n:  # (a ";" in a box: no longer one part each)
        parts = [b""] * n
    groups: dict[bytes, list[int]] = {}
    for i, part in enumerate(parts):
        groups.setdefault(part, []).append(i)
    for part, where in groups.items():
        chosen = list(map(raws.__getitem__, where))
        order = _box_order(part)
        if order is None:
            decoded = [msgspec.structs.astuple(_BOX_DECODE(r)) for r in chosen]
            out[where] = np.array(decoded, np.float64).reshape(len(where), 4)
        else:
            out[where] = _box_numbers(b";".join(chosen), order, len(where))
    return out


def _box_numbers(joined: bytes, order: tuple[int, ...], n: int) -> npt.NDArray[np.float64]:
    """The numbers of ``n`` boxes joined by ``;``, all with the keys in ``order``."""
    text = joined
    for key in _BOX_KEYS:
        text = text.replace(key, b"")
    if b'"' in text:  # a key spelled otherwise ("h1eight" has the skeleton of "height")
        raise _GiveUp
    values = _numbers([text.translate(None, _BOX_PUNCTUATION).replace(b";", b",")])
    if values.shape != (4 * n,):
        raise _GiveUp
    out = np.empty((n, 4), np.float64)
    out[:, list(order)] = values.reshape(n, 4)
    return out


def _points(raws: list[Any]) -> npt.NDArray[np.float64]:
    """Each point's ``x, y`` (``[N, 2]``), as ``tuple[float, float]`` decodes them: all
    at once where each is a pair of numbers (its skeleton is ``[,]``), else one by
    one."""
    n = len(raws)
    if b";".join(raws).translate(None, _NUMBER_CHARS) != b";".join(itertools.repeat(b"[,]", n)):
        return np.array(list(map(_POINT_DECODE, raws)), np.float64).reshape(n, 2)
    values = _numbers(raws)
    if values.shape != (2 * n,):
        raise _GiveUp
    return values.reshape(n, 2)


_SNAP_FIELDS = (
    "tools",
    "classifications",
    "relations",
    "stage",
    "stageId",
    "brushDataUrl",
    "medicalBrushDataUrl",
    "completedAt",
    "completedBy",
    "duration",
    "idleDuration",
    "blurDuration",
    "taskHistory",
)
_SNAP_GET = attrgetter(*_SNAP_FIELDS)
_TASK_ONLY = ("taskId", "type", "updatedAt", "updatedBy", "stageHistory")
_TASK_GET = attrgetter(*_TASK_ONLY, "totalDuration", "totalIdleDuration", "totalBlurDuration")
_ASSET_GET = attrgetter(
    "externalId", "assetId", "asset", "data", "metadata", "dataset", "batches", "task", "tasks"
)
_WIDTH, _HEIGHT = methodcaller("get", "width"), methodcaller("get", "height")


def _transposed(rows: Iterable[tuple[Any, ...]], width: int, n: int) -> list[tuple[Any, ...]]:
    """Rows of ``width`` values as ``width`` columns of ``n`` (in C)."""
    return list(zip(*rows, strict=True)) if n else [()] * width


def _or_none(values: tuple[Any, ...]) -> list[Any]:
    """Each value, falsy ones (``""``) as ``None``."""
    return [v or None for v in values]


def _legacy_task(task: Any, tasks: Any) -> Any:
    """An asset's ``task``, or where it has none, its legacy (v2) ``tasks`` as the v3
    task the parser reads them as (:func:`._parse.parse_asset`): the first one's fields
    and answer, the others its history, each one's tools those in ``objects`` (else
    ``tools``: :func:`._parse.snapshot_tools`); none (``[]`` or ``null``), an empty
    task.  New structs: the decoded ones are left as they were."""
    if task is not UNSET:
        return task
    if tasks is UNSET:
        raise _GiveUp  # neither task nor tasks: the parser names the asset
    if not tasks:
        return _V2Task()
    tasks = [t if t.objects is None else _replace(t, tools=t.objects) for t in tasks]
    # (a v2 task's own stageHistory the parser ignores)
    return _replace(tasks[0], stageHistory=tasks[1:])


def _columns(assets: list[Any], first: int) -> ChunkColumns:
    """The columns of decoded assets.

    Field by field over all assets (then all snapshots, then all tools), in C where it
    can be: the per-asset loop this replaces was ~8% of indexing the benchmark's mixed
    export.
    """
    n = len(assets)
    eids, aids, urls, datas, metas, datasets, batches, tasks, legacy = _transposed(
        map(_ASSET_GET, assets), 9, n
    )
    generation = [3] * n
    if tasks.count(UNSET):
        generation = [3 if t is not UNSET else 2 for t in tasks]
        tasks = tuple(map(_legacy_task, tasks, legacy))
    cc = ChunkColumns()
    cc.external_id = [e or a for e, a in zip(eids, aids, strict=True)]
    if not all(cc.external_id):
        raise _GiveUp  # neither id: the parser names the asset
    cc.asset_id = [a or e for a, e in zip(aids, eids, strict=True)]
    if urls.count(UNSET):
        urls = tuple(
            d if u is UNSET and d is not UNSET else u for u, d in zip(urls, datas, strict=True)
        )
        urls = tuple(None if u is UNSET else u for u in urls)
    cc.url = _or_none(urls)
    asset_meta = orjson.loads(json_list(metas))
    if asset_meta.count(None):
        asset_meta = [{} if m is None else m for m in asset_meta]
    if n and set(map(type, asset_meta)) != {dict}:
        raise _GiveUp
    cc.width = list(map(_dim, map(_WIDTH, asset_meta)))
    cc.height = list(map(_dim, map(_HEIGHT, asset_meta)))
    cc.pages = [d or [] for d in datasets]
    if any("" in p for p in cc.pages if p):
        raise _GiveUp
    task_id, task_type, updated_at, updated_by, histories, *task_ignored = _transposed(
        map(_TASK_GET, tasks), 8, n
    )
    _ignored(list(zip(*task_ignored, strict=True)))
    if any(histories):
        snaps: list[Any] = []
        for task, history in zip(tasks, histories, strict=True):
            snaps.append(task)
            snaps += history or ()
        cc.asset_snaps = [1 + len(h or ()) for h in histories]
    else:
        snaps, cc.asset_snaps = list(tasks), [1] * n
    snap_cols = _transposed(map(_SNAP_GET, snaps), len(_SNAP_FIELDS), len(snaps))
    tool_lists, classes, relations, stages, stage_ids, brushes, medical, done_at, done_by = (
        snap_cols[:9]
    )
    _ignored(list(zip(*snap_cols[9:], strict=True)))
    snap_sizes = [len(t) if t else 0 for t in tool_lists]
    tools = list(itertools.chain.from_iterable(t for t in tool_lists if t))
    plain = (
        classes.count(_NULL) + classes.count(_EMPTY) == len(snaps)
        and relations.count(_NULL) + relations.count(_EMPTY) == len(snaps)
        and done_at.count(None) == len(snaps)
        and not any(done_by)
    )
    if plain:  # no snapshot extra (the common case)
        cc.snap_rows = list(
            zip(
                _or_none(stages),
                _or_none(stage_ids),
                _or_none(brushes),
                _or_none(medical),
                snap_sizes,
                itertools.repeat(None),
            )
        )
    else:
        cc.snap_rows = [_snap_row(snap, k) for snap, k in zip(snaps, snap_sizes, strict=True)]
    if cc.asset_snaps.count(1) == n:
        asset_objs = snap_sizes
    else:
        ends = np.cumsum(cc.asset_snaps)
        per_snap = np.concatenate([[0], np.cumsum(snap_sizes)])
        asset_objs = (per_snap[ends] - per_snap[ends - np.asarray(cc.asset_snaps)]).tolist()
    updated = (
        updated_at
        if updated_at.count(None) == n
        else [None if u is None else _iso(u) for u in updated_at]
    )
    cc.extra = [
        _dumps({"m": m, "b": b or [], "g": g, "t": [t, ty, up, ub]})
        for m, b, g, t, ty, up, ub in zip(
            asset_meta, batches, generation, task_id, task_type, updated, updated_by, strict=True
        )
    ]
    _objects(cc, tools, snap_sizes, asset_objs, first)
    return cc


_TOOL_FIELDS: tuple[str, ...] = _Tool.__struct_fields__ if AVAILABLE else ()


def _fields(tools: list[Any]) -> dict[str, tuple[Any, ...]]:
    """The tools' fields as columns: one ``astuple`` per tool and one transpose, in C
    (~25% faster than a pass of ``attrgetter`` per field, measured on the benchmark's
    mixed export)."""
    if not tools:
        return dict.fromkeys(_TOOL_FIELDS, ())
    columns = zip(*map(msgspec.structs.astuple, tools), strict=True)
    return dict(zip(_TOOL_FIELDS, columns, strict=True))


def _kinds(cols: dict[str, tuple[Any, ...]], n: int) -> npt.NDArray[np.uint8]:
    """Each tool's kind, checked to have exactly one geometry (else the parser names
    it: two geometries, or none, its OTHER); the keys the index does not read checked as
    the file's decoder would (:func:`_ignored`).

    Column by column, in C (``map(is_not, ...)``): a ``__post_init__`` per tool doing the
    same was ~15% of typed decoding on a polygon export (cProfile, issue 14).
    """
    kinds = np.zeros(n, np.uint8)
    count = np.zeros(n, np.uint8)
    for code, name in zip(_CODES, _GEOMETRIES, strict=True):
        column = cols[name]
        if column.count(UNSET) == n:  # (identity first: in C, fast)
            continue
        has = np.fromiter(map(is_not, column, itertools.repeat(UNSET, n)), bool, n)
        count += has
        kinds[has] = code
    if n and (count != 1).any():
        raise _GiveUp
    for name in _TOOL_IGNORED_FIELDS:
        column = cols[name]
        if column.count(None) != n:
            _ignored([column])
    return kinds


def _objects(
    cc: ChunkColumns,
    tools: list[Any],
    snap_sizes: list[int],
    asset_objs: list[int],
    first: int = 0,
) -> None:
    """The object, ring and vertex columns of the chunk's tools (in file order)."""
    n = len(tools)
    cols = _fields(tools)
    kinds = _kinds(cols, n)
    present = {g: kinds == kind for g, kind in zip(_GEOMETRIES, _CODES, strict=True)}
    bbox = np.full((n, 4), np.nan, np.float64)
    # Boxes: the parser's _bounding_box (negative sizes flip the corner), vectorized.
    where = np.flatnonzero(present["box"])
    if len(where):
        v = _boxes(list(itertools.compress(cols["box"], present["box"])))
        _coords(v)
        x, y, w, h = v.T
        x = np.where(w < 0, x + w, x)
        w = np.where(w < 0, -w, w)
        y = np.where(h < 0, y + h, y)
        h = np.where(h < 0, -h, h)
        x2, y2 = x + w, y + h
        _coords(x2)
        _coords(y2)
        bbox[where] = np.stack([x, y, x2, y2], axis=1)
    where = np.flatnonzero(present["point"])
    if len(where):
        p = _points(list(itertools.compress(cols["point"], present["point"])))
        _coords(p)
        bbox[where] = np.concatenate([p, p], axis=1)
    rotated, geometry = _rotated(cols, present, n)
    _ring_columns(cc, cols, n, present, bbox, rotated)
    cc.kinds = kinds
    cc.bbox = bbox.astype(np.float32)
    _envelopes(cc, cols, n, snap_sizes, asset_objs, first, geometry)


_Rings = tuple[npt.NDArray[np.int64], list[Any], npt.NDArray[np.int64], npt.NDArray[np.bool_]]


_CORNERS_SKELETON = b"[[,],[,],[,],[,]]"
_ROTATED_FIELDS = attrgetter("x", "y", "width", "height", "rotation")


def _rotated(
    cols: dict[str, tuple[Any, ...]], present: dict[str, Any], n: int
) -> tuple[_Rings, list[Any] | None]:
    """The rotated boxes' rings (their corners) and each tool's geometry extra
    (``[x, y, width, height, rotation]`` for a rotated box, else ``None``; ``None`` for
    all where there is none), as the parser's :func:`._parse_geometry._rotated_box`
    makes them.

    All are decoded at once (:class:`_Rotated`); a box whose ``corners`` are four
    ``[x, y]`` pairs (their skeleton says so) has them as its ring, read in bulk with
    the others (:func:`_rings`: the parser's vertex rule).  Any other (corners to be
    computed about the centre, or given as ``{x, y}`` objects) goes through
    ``_rotated_box`` itself, whose corners are written out for :func:`_rings`; one it
    refuses raises, and the chunk goes to the slower path to name it.  2,000 assets of
    rotated boxes with corners (40,000): 0.75-0.99 s with one call per box, 0.35-0.40 s
    so (issue 14).
    """
    where = np.flatnonzero(present["rotated"])
    empty = np.zeros(len(where), np.int64)
    if not len(where):
        return (where, [], empty, empty.astype(bool)), None
    raws = list(itertools.compress(cols["rotated"], present["rotated"]))
    boxes = _ROTATED_LIST(json_list(raws))
    extras = list(map(list, map(_ROTATED_FIELDS, boxes)))
    values = [v for e in extras for v in e if v is not None]
    if not all(map(math.isfinite, values)):
        raise _GiveUp  # (the parser's _num: finite numbers only)
    corners: list[Any] = list(map(attrgetter("corners"), boxes))
    skeleton = b";".join(corners).translate(None, _NUMBER_CHARS)
    if skeleton != b";".join(itertools.repeat(_CORNERS_SKELETON, len(corners))):
        parts = skeleton.split(b";")  # (one per box, unless a ";" is in one)
        pairs = [p == _CORNERS_SKELETON for p in parts] if len(parts) == len(corners) else []
        for k, raw in enumerate(raws):
            if not (pairs and pairs[k]):  # through the parser's own rule
                box = _rotated_box(orjson.loads(memoryview(raw)), _LOC)
                corners[k] = _dumps(box.corners.tolist())
    geometry: list[Any] = [None] * n
    for i, extra in zip(where.tolist(), extras, strict=True):
        geometry[i] = extra
    return (where, corners, empty, empty.astype(bool)), geometry


def _outline(cols: dict[str, tuple[Any, ...]], present: dict[str, Any], key: str) -> _Rings:
    """The one ring of each polygon (or polyline): owners, rings, zones, hole flags."""
    where = np.flatnonzero(present[key])
    rings = list(itertools.compress(cols[key], present[key]))
    return where, rings, np.zeros(len(where), np.int64), np.zeros(len(where), bool)


def _zone_rings(zone: Any) -> tuple[Any, ...]:
    if zone.region is UNSET:
        raise _GiveUp  # a zone without a region: the parser's empty zone
    return (zone.region, *zone.holes) if zone.holes else (zone.region,)


def _zones(cols: dict[str, tuple[Any, ...]], present: dict[str, Any]) -> _Rings:
    """The rings of each segmentation: each zone's region, then its holes."""
    where = np.flatnonzero(present["segmentation"])
    segs = itertools.compress(cols["segmentation"], present["segmentation"])
    zones = list(map(_ZONES, segs))
    per_seg = np.fromiter(map(len, zones), np.int64, len(zones))
    if len(zones) and per_seg.min() == 0:
        raise _GiveUp  # no zones: the parser's empty segmentation
    flat = list(itertools.chain.from_iterable(zones))
    per_zone = list(map(_zone_rings, flat))
    n = np.fromiter(map(len, per_zone), np.int64, len(per_zone))  # rings per zone
    first_zone = np.cumsum(per_seg) - per_seg
    z = np.arange(len(flat)) - np.repeat(first_zone, per_seg)  # zone number in its seg
    hole = np.ones(int(n.sum()), bool)
    hole[np.cumsum(n) - n] = False  # each zone's first ring is its region
    owner = np.repeat(np.repeat(where, per_seg), n)
    return owner, list(itertools.chain.from_iterable(per_zone)), np.repeat(z, n), hole


def _ring_columns(
    cc: ChunkColumns,
    cols: dict[str, tuple[Any, ...]],
    n: int,
    present: dict[str, Any],
    bbox: npt.NDArray[np.float64],
    rotated: _Rings,
) -> None:
    i64 = np.int64
    parts = [_outline(cols, present, g) for g in ("polygon", "polyline")]
    parts += [_zones(cols, present), rotated]
    owner = np.concatenate([p[0] for p in parts])
    zone = np.concatenate([p[2] for p in parts]).astype(np.int32)
    hole = np.concatenate([p[3] for p in parts])
    rings = [r for p in parts for r in p[1]]
    order = np.argsort(owner, kind="stable")  # in object order (each object's in its own)
    ordered = list(map(rings.__getitem__, order.tolist()))
    own, holes, zone = owner[order].astype(i64), hole[order], zone[order]
    counts, verts = _rings(ordered)
    cc.ring_len = counts
    cc.ring_zone = zone
    cc.ring_hole = holes.astype(np.int8)
    cc.verts = verts
    cc.obj_rings = np.bincount(own, minlength=n).astype(np.int32)
    if not len(counts):
        return
    # The box of a shape is the box of its outer rings (as _columns._finish).
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    lo = np.minimum.reduceat(verts, starts, axis=0)
    hi = np.maximum.reduceat(verts, starts, axis=0)
    lo[holes], hi[holes] = np.inf, -np.inf
    objs, first = np.unique(own, return_index=True)
    bbox[objs, :2] = np.minimum.reduceat(lo, first, axis=0)
    bbox[objs, 2:] = np.maximum.reduceat(hi, first, axis=0)


def _envelopes(
    cc: ChunkColumns,
    cols: dict[str, tuple[Any, ...]],
    n: int,
    snap_sizes: list[int],
    asset_objs: list[int],
    first: int = 0,
    geometry: list[Any] | None = None,
) -> None:
    oids, sids, titles, pages, interp = (
        cols[k] for k in ("objectId", "schemaId", "title", "page", "interpolationStopped")
    )
    metas, classes = cols["metadata"], cols["classifications"]
    if not all(oids):  # None or "": "#k", the tool's position in its snapshot's list
        sizes = np.asarray(snap_sizes, np.int64)
        at = np.arange(len(oids)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        if first and len(sizes):  # a piece of a large asset: its task's tools start there
            at[: sizes[0]] += first
        k = at.tolist()
        oids = tuple(o or f"#{j}" for o, j in zip(oids, k, strict=True))
    cc.titles = list(titles) if all(titles) else [t or "" for t in titles]
    all_false = interp.count(False) == n  # (0 and 0.0 too: plain, and false)
    if not all_false and not set(map(type, interp)) <= {bool}:
        _ignored([interp])
    if pages.count(None) != n:
        p = np.array([-1 if q is None else q for q in pages], np.int64)
        if ((p < -1) | (p >= 2**31)).any() or (p == -1).sum() != pages.count(None):
            raise _GiveUp
        cc.opages = p.astype(np.int32)
    else:
        cc.opages = np.full(n, -1, np.int32)
    rows = list(
        zip(
            oids,
            sids,
            _classes(classes),
            _metas(metas),
            itertools.repeat(None) if geometry is None else geometry,
            itertools.repeat(False) if all_false else map(bool, interp),
            strict=False,  # (the repeats are endless; the others are n long)
        )
    )
    # The file's blanks in what is kept as its text: written out compact (in C), so
    # that a pretty-printed export's index is no larger than a compact one's.
    loose = _loose(b"".join(classes)) or _loose(b"".join(metas))
    end = 0
    for n in asset_objs:
        if n:
            text = _ENCODE(rows[end : end + n])
            cc.objects.append(_FORMAT(text, indent=-1) if loose else text)
        else:
            cc.objects.append(None)
        end += n


def _loose(text: bytes) -> bool:
    """Whether ``text`` has a JSON blank (maybe inside a string: then needlessly)."""
    return b" " in text or b"\n" in text or b"\t" in text or b"\r" in text
