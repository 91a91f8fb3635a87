"""One parse path: the fast column path and the full parser agree on every input.

An asset becomes index columns in one of two ways
(:func:`ango_torch.export._columns.asset_columns`):
the fast path (``_columns._fast``) reads the common shapes straight into columns and
raises ``_GiveUp`` on anything unusual; the full parser (``_parse.parse_asset``, whose
records ``_columns.from_record`` turns into columns) handles the rest.  A seeded
generator makes many varied assets (every tool kind, both generations, the format's
quirks, and broken values of every kind) and each one goes through both paths: where
the fast path answers, its columns must equal the full parser's, byte for byte; where
either rejects an asset, both reject it with the same ``ExportFormatError``.  The
expected values are the full parser's, i.e. an independent second implementation; the
hand-written regressions below state their expectations directly.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import fields
from typing import Any

import numpy as np
import pytest
from builders import assert_same_index, make_asset, make_box, make_polygon

import ango_torch
from ango_torch.errors import ExportFormatError
from ango_torch.export import _columns, _indexing, _typed
from ango_torch.export._build import IndexBuilder
from ango_torch.export._columns import AssetColumns, _GiveUp, asset_columns, from_record
from ango_torch.export._parse import parse_asset
from ango_torch.export._read import RawAsset, decode_raw
from ango_torch.export.index import ExportIndex

# -- the generator ------------------------------------------------------------------------

BAD_NUMBERS: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    1e300,  # finite as a double, infinite as float32
    -3.5e38,
    10**400,  # a JSON integer no float can hold
    True,
    "3",
    None,
    [1],
    {},
]
BAD_STRINGS: list[Any] = [5, 2.5, True, {}, [], "", None, ["a"]]
BAD_INTS: list[Any] = [-1, 1.5, True, "2", 2**40, math.nan, {}, -(2**40)]


class Gen:
    """Random export values; ``bad`` is the chance that a field is broken."""

    def __init__(self, seed: int, bad: float) -> None:
        self.r = random.Random(seed)
        self.bad = bad

    def oops(self) -> bool:
        return self.r.random() < self.bad

    def pick(self, options: list[Any]) -> Any:
        return options[self.r.randrange(len(options))]

    def num(self) -> Any:
        if self.oops():
            return self.pick(BAD_NUMBERS)
        r = self.r.random()
        if r < 0.3:
            return self.r.randint(-20, 2000)
        if r < 0.35:
            return self.pick([0, 0.0, -0.0, 3e38, 2**31, 1e-30])
        return round(self.r.uniform(-50, 2000), self.r.randint(0, 6))

    def text(self, prefix: str = "s") -> Any:
        if self.oops():
            return self.pick(BAD_STRINGS)
        return f"{prefix}{self.r.randrange(40)}"

    def opt_int(self) -> Any:
        if self.oops():
            return self.pick(BAD_INTS)
        return self.pick([None, None, 0, 1, 2, 7])

    def time(self) -> Any:
        return self.pick(
            [
                None,
                "2023-09-01T08:05:21.104Z",
                "2023-09-01T08:05:21+02:00",
                "2023-09-01 08:05:21",
                1693555521104,
                1693555521,
                "1693555521104",
                "not a time",
                5.5,
                {},
            ]
        )

    def point(self, style: float | None = None) -> Any:
        if self.oops():
            return self.pick(
                [[self.num()], [self.num(), self.num(), "z"], "xy", 3, None, [True, 1], {"x": 1}]
            )
        r = self.r.random() if style is None else style
        if r < 0.03:
            return {"x": self.num(), "y": self.num()}
        if r < 0.06:
            return [self.num(), self.num(), self.num()]  # refused, by both paths alike
        return [self.num(), self.num()]

    def ring(self, n: int | None = None) -> Any:
        if self.oops():
            return self.pick(["ring", {}, None, 7, [[1, 2], [3, 4, 5]], []])
        k = self.r.randint(1, 7) if n is None else n
        if self.r.random() < 0.05:
            k = 0
        style = self.r.random()  # one point style per ring
        return [self.point(style) for _ in range(k)]

    def geometry(self) -> tuple[str, Any]:
        image_kinds = ["bounding-box", "polygon", "polyline", "point", "rotated-bounding-box"]
        kind = self.pick([*image_kinds, "segmentation", "segmentation"])
        if self.r.random() < 0.05:
            kind = self.pick(["ner", "pdf", "cuboid"])  # text, pdf, unknown tools
        if self.oops():
            return kind, self.pick(["x", 3, None, [], {}, [[1, 2]], {"zones": {}}])
        if kind == "bounding-box" and self.r.random() < 0.1:  # a 3D box (volumes)
            box3 = {k: self.num() for k in ("x1", "y1", "z1", "x2", "y2", "z2")}
            if self.oops():
                del box3[self.pick(list(box3))]
            return kind, box3
        if kind == "bounding-box":
            box = {"x": self.num(), "y": self.num(), "width": self.num(), "height": self.num()}
            if self.r.random() < 0.2:  # dragged leftwards/upwards: negative sizes
                box["width"] = -abs(self.r.uniform(0, 40))
            if self.r.random() < 0.015:
                box = dict.fromkeys(box, math.nan)  # all-NaN box
            if self.oops():
                del box[self.pick(list(box))]
            return kind, box
        if kind in ("polygon", "polyline"):
            return kind, self.ring()
        if kind == "point":
            return kind, self.point()
        if kind == "rotated-bounding-box":
            rb: dict[str, Any] = {}
            for k in ("x", "y", "width", "height", "rotation"):
                if self.r.random() < (0.5 if self.oops() else 0.95):
                    rb[k] = self.num()
            if self.r.random() < 0.8:
                rb["corners"] = self.ring(4 if not self.oops() else 3)
            return kind, rb
        if kind == "segmentation":
            zones = []
            for _ in range(self.r.randint(0, 3)):
                zone: dict[str, Any] = {"region": self.ring()}
                r = self.r.random()
                if r < 0.3:
                    zone["holes"] = [self.ring() for _ in range(self.r.randint(0, 2))]
                elif r < 0.4:
                    zone["holes"] = self.ring(3)  # the flat-holes quirk
                elif r < 0.5:
                    zone["holes"] = []
                zones.append(zone if not self.oops() else self.pick(["z", None, []]))
            return kind, {"zones": zones}
        if kind == "ner":
            return kind, {"start": self.opt_int(), "end": self.opt_int(), "selection": self.text()}
        if kind == "pdf":
            rect = {k: self.num() for k in ("x1", "y1", "x2", "y2")}
            return kind, {"position": {"boundingRect": rect, "pageNumber": self.opt_int()}}
        return kind, {"front": [1, 2], "back": None}

    def answer(self) -> Any:
        if self.oops():
            return self.pick([math.nan, math.inf, [math.nan], {"v": math.inf}])
        return self.pick(
            [
                "yes",  # radio, dropdown, text
                ["a", "b"],  # checkbox, multi-dropdown
                ["Outdoor / Street"],  # tree-dropdown
                [["a", 1], ["b", 2]],  # rank-like nested lists
                3,
                2.5,
                True,
                None,
                "",
                {"value": "x", "n": [1, 2]},  # undocumented: kept as it came
                [],
            ]
        )

    def classification(self, depth: int) -> Any:
        if self.oops():
            return self.pick(["radio", 3, None, [], ["x"]])
        c: dict[str, Any] = {
            "objectId": self.text("c"),
            "schemaId": self.text("k"),
            "tool": self.pick(["radio", "checkbox", "text", "tree-dropdown", "rank"]),
            "title": self.text("t"),
            "answer": self.answer(),
        }
        if self.r.random() < 0.7:
            c["classifications"] = self.classifications(depth + 1)
        if self.r.random() < 0.1:
            c["page"] = self.opt_int()
        if self.r.random() < 0.1:
            c["metadata"] = self.meta()
        return c

    def classifications(self, depth: int = 0) -> Any:
        if self.oops():
            return self.pick(["x", {}, 0, {"title": "t"}, 3])
        if depth > 2 or self.r.random() < 0.5:
            return self.pick([None, []])
        return [self.classification(depth) for _ in range(self.r.randint(1, 2))]

    def meta(self) -> Any:
        if self.oops():
            return self.pick(["m", 3, [], None])
        m: dict[str, Any] = {}
        if self.r.random() < 0.8:
            m["createdAt"] = self.time()
        if self.r.random() < 0.8:
            m["createdBy"] = self.pick(["a@b.c", 5, None, ""])
        if self.r.random() < 0.2:
            m["note"] = {"k": [1, "two"]}
        return m

    def relation(self, ids: list[str]) -> Any:
        if self.oops():
            return self.pick(["r", 3, [], {"group": "g"}, {"group": [None]}, {"from": {}}])
        ref = self.pick(ids) if ids else "missing"
        r: dict[str, Any] = {"objectId": self.text("r"), "schemaId": "rs", "title": self.text()}
        if self.r.random() < 0.5:
            r.update(from_=ref, to=self.text("o"), direction=self.pick(["straight", "none", 4]))
            r["from"] = r.pop("from_")
        else:
            r["group"] = [ref, self.text("o")]
        if self.r.random() < 0.1:
            r["page"] = self.opt_int()
        return r

    def tool(self, k: int) -> Any:
        if self.oops():
            return self.pick(["tool", None, 3, []])
        t: dict[str, Any] = {"objectId": f"o{k}" if not self.oops() else self.pick(BAD_STRINGS)}
        key, value = self.geometry()
        t[key] = value
        r = self.r.random()
        if r < 0.02:  # two geometry keys
            key2, value2 = self.geometry()
            t[key2] = value2
        elif r < 0.03:
            del t[key]  # no geometry at all
        elif r < 0.04:
            t["someNewField"] = {"a": 1}  # an unknown key beside the geometry
        t["title"] = self.text("class") if self.r.random() < 0.97 else None
        if self.r.random() < 0.9:
            t["schemaId"] = self.text("schema")
        if self.r.random() < 0.8:
            t["classifications"] = self.classifications()
        if self.r.random() < 0.3:
            t["page"] = self.opt_int()
        if self.r.random() < 0.2:
            t["interpolationStopped"] = self.pick([True, False, None, 1])
        if self.r.random() < 0.6:
            t["metadata"] = self.meta()
        if self.r.random() < 0.05:
            t["color"] = "#ff0000"
        keys = list(t)
        self.r.shuffle(keys)  # key order must not matter
        return {k2: t[k2] for k2 in keys}

    def snapshot(self, tools_key: str) -> Any:
        if self.oops():
            return self.pick(["snap", None, 3])
        tools = [self.tool(k) for k in range(self.r.randint(0, 5))]
        s: dict[str, Any] = {tools_key: tools if not self.oops() else self.pick([{}, "t", 3])}
        ids = [t["objectId"] for t in tools if isinstance(t, dict) and "objectId" in t]
        for key, value in (
            ("stage", self.pick(["Label", "Review", "L1"]) if not self.oops() else self.text()),
            ("stageId", self.text("id")),
            ("classifications", self.classifications()),
            ("relations", [self.relation(ids) for _ in range(self.r.randint(0, 2))]),
            ("brushDataUrl", self.pick(["", None, "https://b/x.png"])),
            ("medicalBrushDataUrl", self.pick(["", None])),
            ("completedAt", self.time()),
            ("completedBy", self.pick(["", None, "a@b.c", 5]) if not self.oops() else {}),
        ):
            if self.r.random() < 0.7:
                s[key] = value
        if self.oops():
            s["relations"] = self.pick(["r", {}, 3])
        return s

    def asset(self, i: int) -> Any:
        if self.oops():
            return self.pick(["asset", None, 3, []])
        a: dict[str, Any] = {
            "assetId": f"a{i}" if not self.oops() else self.pick(BAD_STRINGS),
            "externalId": f"img_{i}.png" if not self.oops() else self.pick(BAD_STRINGS),
        }
        r = self.r.random()
        if r < 0.8:
            a["asset"] = f"https://x/{i}.png"
        elif r < 0.9:
            a["data"] = f"https://x/data/{i}.png"  # legacy URL key
        meta: dict[str, Any] = {}
        if self.r.random() < 0.9:
            meta["width"] = 17 if not self.oops() else self.pick([*BAD_INTS, 17.0])
            meta["height"] = 11 if not self.oops() else self.pick([*BAD_INTS, 11.0])
        a["metadata"] = meta if not self.oops() else self.pick(["m", []])
        if self.r.random() < 0.2:
            a["dataset"] = [f"https://x/{i}/p{k}.png" for k in range(3)]
            if self.oops():
                a["dataset"] = self.pick([["", "u"], [5], "x", [None]])
        if self.r.random() < 0.5:
            a["batches"] = ["train"] if not self.oops() else self.pick([[{"name": "b"}], "b", [3]])
        if self.r.random() < 0.8:  # v3
            task = self.snapshot("tools")
            if isinstance(task, dict):
                task["taskId"] = self.text("t")
                task["type"] = self.pick(["default", None, 3])
                task["updatedAt"] = self.time()
                task["updatedBy"] = self.pick(["u@x", None, 7])
                task["stageHistory"] = [self.snapshot("tools") for _ in range(self.r.randint(0, 2))]
                if self.oops():
                    task["stageHistory"] = self.pick(["h", {}, 3])
            a["task"] = task
        else:  # legacy v2
            a["tasks"] = [self.snapshot("objects") for _ in range(self.r.randint(0, 2))]
        return a


def generated(n: int, seed: int) -> list[Any]:
    """``n`` assets: half clean, the rest with broken fields at two rates."""
    out = []
    for i in range(n):
        bad = (0.0, 0.0, 0.01, 0.05)[i % 4]
        out.append(Gen(seed * 100_003 + i, bad).asset(i))
    return out


# -- the two paths ------------------------------------------------------------------------


def fast_path(raw: Any, i: int) -> AssetColumns | str:
    """The fast path alone: its columns, ``"gave up"``, or ``"error: <message>"``."""
    try:
        return _columns._fast(raw, i)
    except _GiveUp:
        return "gave up"
    except ExportFormatError as exc:
        return f"error: {exc}"


def full_path(raw: Any, i: int) -> AssetColumns | str:
    """The full parser alone: its columns or ``"error: <message>"``."""
    try:
        return from_record(parse_asset(raw, i))
    except ExportFormatError as exc:
        return f"error: {exc}"


def assert_same_columns(a: AssetColumns, b: AssetColumns, where: str) -> None:
    for f in fields(AssetColumns):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "verts":
            assert x.dtype == y.dtype == np.float32, where
            np.testing.assert_array_equal(x, y, err_msg=f"{where}: verts")
        elif f.name == "bbox":
            np.testing.assert_array_equal(
                np.asarray(x, np.float32), np.asarray(y, np.float32), err_msg=f"{where}: bbox"
            )
        else:
            assert x == y, f"{where}: {f.name}: fast {x!r} != full {y!r}"
            assert _dumped(x) == _dumped(y), f"{where}: {f.name} serializes differently"


def _dumped(value: Any) -> bytes:
    from ango_torch.export._tables import dumps

    return dumps(value) if isinstance(value, (dict, list)) else repr(value).encode()


def _asset_of(message: str) -> str:
    return message.split(":")[1].split(", object")[0].split(", field")[0]


SEEDS = list(range(6))


@pytest.mark.parametrize("seed", SEEDS)
def test_fast_path_and_full_parser_agree_on_generated_assets(seed: int) -> None:
    raws = generated(400, seed)
    outcomes = {"fast": 0, "gave up": 0, "rejected": 0}
    for i, raw in enumerate(raws):
        fast, full = fast_path(raw, i), full_path(raw, i)
        where = f"seed {seed}, asset #{i}: {raw!r:.300}"
        if isinstance(fast, AssetColumns):
            assert isinstance(full, AssetColumns), f"{where}: only the full parser refuses: {full}"
            assert_same_columns(fast, full, where)
            outcomes["fast"] += 1
        elif fast == "gave up":
            outcomes["rejected" if isinstance(full, str) else "gave up"] += 1
        else:
            # The fast path may meet a later problem first (it reads vertices last); the
            # loader then reports the full parser's error, the first in reading order.
            assert isinstance(full, str), f"{where}: only the fast path refuses: {fast}"
            assert _asset_of(fast) == _asset_of(full), f"{where}: {fast} vs {full}"
            outcomes["rejected"] += 1
    # The generator exercises all three outcomes (so the comparison is not vacuous).
    assert outcomes["fast"] >= 50 and outcomes["rejected"] >= 50 and outcomes["gave up"] >= 50, (
        outcomes
    )


def _index(raws: list[Any], *, fast: bool) -> tuple[Any, list[tuple[int, str]]]:
    builder, skipped = IndexBuilder(), []
    for i, raw in enumerate(raws):
        try:
            cols = asset_columns(raw, i) if fast else from_record(parse_asset(raw, i))
        except ExportFormatError as exc:
            skipped.append((i, str(exc)))
            continue
        builder.add_columns(cols)
    return builder.build(), skipped


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_every_index_column_is_the_same_on_both_paths(seed: int) -> None:
    """The whole index, built with the fast path where it answers or the full parser alone."""
    raws = generated(300, 1000 + seed)
    (fast_index, fast_skips), (full_index, full_skips) = (
        _index(raws, fast=True),
        _index(raws, fast=False),
    )
    assert fast_skips == full_skips
    assert fast_index.arrays.keys() == full_index.arrays.keys()
    for key, value in fast_index.arrays.items():  # (neither is the typed decoder: exact)
        np.testing.assert_array_equal(value, full_index.arrays[key], err_msg=key)
    # Records and attributes rebuilt from the index never fail (the stored JSON was
    # validated at load by the same rules), and equal the parser's records.
    kept = [i for i in range(len(raws)) if i not in {s for s, _ in fast_skips}]
    for row, i in enumerate(kept):
        rebuilt, parsed = fast_index.asset(row), parse_asset(raws[i], i)
        for r_snap, p_snap in zip(
            (rebuilt.task.answer, *rebuilt.task.history),
            (parsed.task.answer, *parsed.task.history),
            strict=True,
        ):
            assert r_snap.classifications == p_snap.classifications
            assert r_snap.relations == p_snap.relations
            assert (r_snap.stage, r_snap.stage_id, r_snap.completed_at, r_snap.completed_by) == (
                p_snap.stage,
                p_snap.stage_id,
                p_snap.completed_at,
                p_snap.completed_by,
            )
            for r_obj, p_obj in zip(r_snap.tools, p_snap.tools, strict=True):
                assert r_obj.classifications == p_obj.classifications
                assert r_obj.metadata == p_obj.metadata
                assert (r_obj.object_id, r_obj.title, r_obj.kind, r_obj.page) == (
                    p_obj.object_id,
                    p_obj.title,
                    p_obj.kind,
                    p_obj.page,
                )
        assert (rebuilt.url, rebuilt.width, rebuilt.height, rebuilt.pages) == (
            parsed.url,
            parsed.width,
            parsed.height,
            parsed.pages,
        )


# -- the reported disagreements, by hand ----------------------------------------------------


def _tool(**geometry: Any) -> dict[str, Any]:
    return {"objectId": "obj1", "title": "car", "schemaId": "s", **geometry}


BOX = {"x": 1, "y": 2, "width": 3, "height": 4}
POLY = [[1, 1], [5, 1], [3, 4]]
REFUSED: list[tuple[str, dict[str, Any], str]] = [
    (
        "two-geometry-keys",
        _tool(**{"bounding-box": BOX, "polygon": POLY}),
        r"object 'obj1'.*two geometries",
    ),
    (
        "two-geometry-keys-other-order",
        _tool(**{"polygon": POLY, "bounding-box": BOX}),
        r"object 'obj1'.*two geometries",
    ),
    (
        "all-nan-box",
        _tool(**{"bounding-box": dict.fromkeys(BOX, math.nan)}),
        r"object 'obj1', field 'bounding-box\.x'.*finite",
    ),
    (
        "nan-point",
        _tool(point=[math.nan, math.nan]),
        r"object 'obj1', field 'point\[0\]'.*finite",
    ),
    (
        "box-beyond-float32",
        _tool(**{"bounding-box": {**BOX, "x": 1e300}}),
        r"object 'obj1', field 'bounding-box\.x'.*float32",
    ),
    (
        "huge-integer",
        _tool(**{"bounding-box": {**BOX, "width": 10**400}}),
        r"object 'obj1', field 'bounding-box\.width'",
    ),
    (
        "bool-vertex-after-the-first",
        _tool(polygon=[[1, 1], [True, 1], [3, 4]]),
        r"object 'obj1', field 'polygon\[1\]\[0\]'.*number",
    ),
    (
        "string-vertex-after-the-first",
        _tool(polygon=[[1, 1], ["5", "1"], [3, 4]]),
        r"object 'obj1', field 'polygon\[1\]\[0\]'.*number",
    ),
    (
        "nested-classification-not-an-object",
        _tool(polygon=POLY, classifications=[{"title": "a", "classifications": ["oops"]}]),
        r"object 'obj1', field 'classifications\[0\]\.classifications\[0\]'.*classification",
    ),
    (
        "classification-title-of-wrong-type",
        _tool(polygon=POLY, classifications=[{"title": {"en": "a"}, "answer": "x"}]),
        r"object 'obj1', field 'classifications\[0\]\.title'.*string",
    ),
    (
        "classifications-an-empty-object",
        _tool(polygon=POLY, classifications={}),
        r"object 'obj1', field 'classifications'.*list",
    ),
    (
        "non-finite-answer",
        _tool(polygon=POLY, classifications=[{"title": "a", "answer": [math.nan]}]),
        r"object 'obj1', field 'classifications\[0\]\.answer\[0\]'.*finite",
    ),
    (
        "rotated-box-nan-rotation",
        _tool(
            **{
                "rotated-bounding-box": {
                    "rotation": math.nan,
                    "corners": [[0, 0], [1, 0], [1, 1], [0, 1]],
                }
            }
        ),
        r"object 'obj1', field 'rotated-bounding-box\.rotation'.*finite",
    ),
    ("negative-page", _tool(polygon=POLY, page=-2), r"object 'obj1', field 'page'.*≥ 0"),
    (
        "box3d-missing-z2",
        _tool(**{"bounding-box": {"x1": 1, "y1": 2, "z1": 3, "x2": 4, "y2": 5}}),
        r"object 'obj1', field 'bounding-box\.z2'",
    ),
]


def test_a_3d_bounding_box_is_a_typed_record_on_both_paths() -> None:
    """``bounding-box: {x1, y1, z1, x2, y2, z2}`` (FORMAT.md, medical brush) was an
    ExportFormatError ('bounding-box.x' missing); now a BoundingBox3D with its corners
    ordered (expected values: the input, sorted per axis by hand)."""
    from ango_torch.records import BoundingBox3D, ToolKind

    box = {"x1": 9, "y1": 2, "z1": 7.5, "x2": 3, "y2": 6, "z2": 1}
    raw = make_asset([_tool(**{"bounding-box": box})], external_id="ct.nrrd")
    assert fast_path(raw, 0) == "gave up"  # the full parser reads it
    export = ango_torch.load_export([raw])
    (obj,) = export[0].task.answer.tools
    assert obj.kind is ToolKind.OTHER
    assert obj.geometry == BoundingBox3D(3.0, 2.0, 1.0, 9.0, 6.0, 7.5)
    # validate knows it (was: "tool 'bounding-box' is not understood")
    from ango_torch.export.validate import find_problems

    assert [p.code for p in find_problems(export) if p.code == "unknown-tool"] == []


@pytest.mark.parametrize(("obj", "match"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_both_paths_refuse_malformed_objects(obj: dict[str, Any], match: str) -> None:
    raw = make_asset([obj], external_id="street_001.jpg")
    for i in (0, 7):
        for path in (fast_path, full_path):
            outcome = path(raw, i)
            assert outcome == "gave up" or isinstance(outcome, str), (path.__name__, outcome)
        with pytest.raises(ExportFormatError, match=match) as info:
            ango_torch.load_export([make_asset([]) for _ in range(i)] + [raw])
        assert f"asset 'street_001.jpg' (#{i})" in str(info.value)


RELATIONS: list[tuple[str, Any, str]] = [
    ("group-not-a-list", [{"title": "g", "group": "obj1"}], r"field 'relations\[0\]\.group'"),
    ("group-of-null", [{"title": "g", "group": [None]}], r"field 'relations\[0\]\.group'"),
    ("from-an-object", [{"title": "r", "from": {}, "to": "x"}], r"field 'relations\[0\]\.from'"),
    ("relation-a-string", ["next-to"], r"field 'relations\[0\]'.*relation object"),
    ("relations-an-object", {}, r"field 'relations'.*list"),
    ("direction-a-list", [{"from": "a", "to": "b", "direction": []}], r"relations\[0\]\.direction"),
]


@pytest.mark.parametrize(
    ("relations", "match"), [c[1:] for c in RELATIONS], ids=[c[0] for c in RELATIONS]
)
def test_malformed_relations_are_refused_at_load(relations: Any, match: str) -> None:
    raw = make_asset([make_polygon(POLY)], external_id="r.jpg", relations=relations)
    with pytest.raises(ExportFormatError, match=match) as info:
        ango_torch.load_export([raw])
    assert "asset 'r.jpg' (#0)" in str(info.value)


def test_skip_leaves_out_malformed_annotations_and_inspect_validate_run() -> None:
    """Before: these passed load_export and later crashed inspect/validate/attributes."""
    from ango_torch.export.validate import find_problems, summarize

    good = make_asset([make_box(1, 1, 3, 3)], external_id="good.jpg")
    bad_nested = make_asset(
        [make_box(1, 1, 3, 3, classifications=[{"title": "a", "classifications": "x"}])],
        external_id="nested.jpg",
    )
    bad_relation = make_asset([make_box(1, 1, 3, 3)], external_id="rel.jpg", relations=[3])
    bad_image_class = make_asset([], external_id="cls.jpg", classifications=[["weather"]])
    export = ango_torch.load_export(
        [good, bad_nested, bad_relation, bad_image_class], on_error="skip"
    )
    assert len(export) == 1 and export[0].external_id == "good.jpg"
    assert [(s.index, s.asset) for s in export.skipped] == [
        (1, "nested.jpg"),
        (2, "rel.jpg"),
        (3, "cls.jpg"),
    ]
    summary = summarize(export)
    assert summary["assets"] == 1 and summary["skipped"] == 3
    problems = find_problems(export)  # the skipped assets, each reported once
    assert [(p.code, p.asset_index) for p in problems] == [("malformed", k) for k in (1, 2, 3)]


# -- the typed path (msgspec, ``_typed``) against both ----------------------------------

typed_only = pytest.mark.skipif(not _typed.AVAILABLE, reason="needs msgspec and orjson")


def _raw_asset(raw: Any, i: int) -> RawAsset:
    # json (not orjson) writes what the generator makes: NaN, Infinity, 10**400 ...
    return RawAsset(i, json.dumps(raw).encode())


def typed_index(raws: list[RawAsset]) -> ExportIndex | None:
    """The typed path alone on one chunk: its index, or ``None`` where it gives up."""
    columns = _typed.chunk_columns(raws)
    if columns is None:
        return None
    builder = IndexBuilder()
    builder.add_chunk(columns)
    return builder.build()


def file_index(raws: list[RawAsset], *, path: str) -> tuple[ExportIndex, list[Any]]:
    """The index of a file's raw assets: the loader's way (``typed``), the fast path and
    parser without typed decoding (``fast``), or the full parser alone (``full``)."""
    builder, skipped = IndexBuilder(), []
    if path == "typed":
        index, log = _indexing._index_serial(raws, "gen.json", "skip")
        return index, [(s.index, s.reason) for s in log]
    for r in raws:
        try:
            obj = decode_raw(r, "gen.json")
            cols = asset_columns(obj, r.index) if path == "fast" else full_columns(obj, r.index)
        except ExportFormatError as exc:
            skipped.append((r.index, str(exc)))
            continue
        builder.add_columns(cols)
    return builder.build(), skipped


def full_columns(raw: Any, i: int) -> AssetColumns:
    return from_record(parse_asset(raw, i))


@typed_only
@pytest.mark.parametrize("seed", SEEDS)
def test_typed_path_and_full_parser_agree_on_generated_assets(seed: int) -> None:
    """Each generated asset alone as a chunk: where the typed path answers, its index
    equals the full parser's (column by column); where the full parser (or the file's
    JSON decoder) refuses an asset, the typed path gives up (never answers)."""
    outcomes = {"typed": 0, "gave up": 0, "gave up, refused": 0}
    for i, raw in enumerate(typed_generated(400, seed)):
        ra = _raw_asset(raw, i)
        typed = typed_index([ra])
        full, skipped = file_index([ra], path="full")
        where = f"seed {seed}, asset #{i}: {raw!r:.300}"
        if typed is None:
            outcomes["gave up, refused" if skipped else "gave up"] += 1
            continue
        assert not skipped, f"{where}: only the full parser refuses: {skipped}"
        assert_same_index(typed, full, where)
        outcomes["typed"] += 1
    assert min(outcomes.values()) >= 40, outcomes  # all three outcomes are exercised


_UNTYPED_TOOLS = ("ner", "pdf", "cuboid", "someNewField")


def typical(raw: Any) -> Any:
    """``raw`` in the shapes typed decoding reads, broken values kept: tools it does not
    read (text, PDF, unknown) left out, numeric names as strings (the parser reads ``5``
    as ``"5"``; real exports write strings); a v3 task and its history, or the tasks of
    a legacy (v2) asset."""
    if not isinstance(raw, dict):
        return raw
    task, legacy = raw.get("task"), raw.get("tasks")
    if isinstance(task, dict):
        history = task.get("stageHistory")
        snaps = [task, *(history if isinstance(history, list) else [])]
    elif isinstance(legacy, list):
        snaps = legacy
    else:
        return raw
    for snap in snaps:
        if not isinstance(snap, dict):
            continue
        for key in ("type", "updatedBy", "completedBy", "stage", "stageId"):
            if type(snap.get(key)) is int:
                snap[key] = str(snap[key])
        for key in ("tools", "objects"):
            tools = snap.get(key)
            if isinstance(tools, list):
                snap[key] = [
                    t for t in tools if not (isinstance(t, dict) and set(_UNTYPED_TOOLS) & t.keys())
                ]
    return raw


def typed_generated(n: int, seed: int, *, bad: bool = True) -> list[Any]:
    """Generated assets, every other one :func:`typical` (``bad=False``: clean only)."""
    out = []
    for i in range(n):
        rate = (0.0, 0.0, 0.01, 0.05)[i % 4] if bad else 0.0
        raw = Gen(seed * 7919 + i, rate).asset(i)
        out.append(typical(raw) if i % 2 == 0 or not bad else raw)
    return out


def clean_generated(n: int, seed: int) -> list[Any]:
    """Assets with no broken field, in the shapes typed decoding reads."""
    return typed_generated(n, seed, bad=False)


@typed_only
@pytest.mark.parametrize("seed", SEEDS[:3])
def test_every_index_column_is_the_same_on_all_three_paths(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole file (clean assets, with broken ones among them) indexed in chunks of a
    few assets: typed decoding where it takes a chunk, the fast path/parser on the rest
    (``_indexing``), the fast path/parser alone, and the full parser alone give the same
    index and the same skipped assets."""
    monkeypatch.setattr(_typed, "CHUNK_BYTES", 3000)
    # Clean assets that typed decoding takes one by one (the test above compares those),
    # in runs of ten, each run followed by three broken ones.
    assets = [
        raw
        for i, raw in enumerate(clean_generated(500, seed))
        if typed_index([_raw_asset(raw, i)]) is not None
    ][:150]
    broken = generated(45, 2000 + seed)
    mixed = [x for k in range(15) for x in assets[10 * k : 10 * k + 10] + broken[3 * k : 3 * k + 3]]
    raws = [_raw_asset(raw, i) for i, raw in enumerate(mixed)]
    taken = []
    real = _typed.chunk_columns

    def counting(group: list[RawAsset], first: int = 0) -> Any:
        out = real(group, first)
        taken.append((len(group), out is not None))
        return out

    monkeypatch.setattr(_typed, "chunk_columns", counting)
    typed, typed_skips = file_index(raws, path="typed")
    fast, fast_skips = file_index(raws, path="fast")
    full, full_skips = file_index(raws, path="full")
    assert typed_skips == fast_skips == full_skips
    assert_same_index(typed, full, f"seed {seed}: typed")
    assert_same_index(fast, full, f"seed {seed}: fast")
    # Chunks of several assets were taken by the typed path, and others fell back.
    assert sum(n for n, ok in taken if ok) >= 60, taken
    assert any(ok and n > 1 for n, ok in taken) and any(not ok for _, ok in taken), taken
