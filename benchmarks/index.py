"""Indexing an export vs pycocotools reading the equivalent COCO file.

Prints, in one run, for each export size and kind of tools (``polygons``: every object a
12-gon; ``mixed``: boxes, polygons, segmentations with holes, points):

(a) ``load_export`` + ``AngoDataset`` construction (imports excluded) in one process vs
    ``pycocotools.coco.COCO(path)`` on the same annotations, runs alternating,
    min/median/max of the times and of the per-run ratios; then two processes
    (``workers=2``), forked where safe, and started fresh (forkserver/spawn, the path
    on Python 3.12+ or with threads running); then the one-process comparison again
    with each run in a fresh interpreter (imports and their first use before the
    clock), alternating: in one process each side also pays for the heap the other's
    last run left behind;
(b) re-opening from the persisted index vs the same baseline;
(c) resident size of the index vs ``json.load``'s object tree of the same file;
(d) peak memory while indexing (one process), typed decoding vs without it (today's
    path before typed decoding: ``_typed.AVAILABLE = False``), and vs ``json.load``;
(e) the same export as NDJSON, one process: lines decoded in blocks (``_blocks``) vs
    line by line (``_blocks.ndjson_block`` returning ``None``: the reader before them),
    alternating;
(f) the cost of the two checks of each block's whole text, one process:
    ``_typed._valid_json`` (msgspec checks the syntax of a value it skips or holds as
    ``Raw``, but not its UTF-8 nor its numbers' range, and of a key given twice it
    keeps the last value) and ``_blocks.deepest`` (``max_depth``): ``load_export``
    with both vs with each, and both, patched out, alternating;
(g) where workers start to pay (``_indexing.PARALLEL_MIN_BYTES``): mixed exports of
    about ``--threshold-mib`` MiB each, ``load_export`` with the default number of
    workers (one per CPU up to 4, at least 2; forked where that is safe, else started
    fresh: then the default threshold is ``PARALLEL_STARTED_MIN_BYTES``) vs one process,
    alternating, after an untimed warm-up of each;
(h) export shapes that typed decoding reads since issue 14's ninth session (before,
    each sent its chunks to the path without it): the first ``--shape-assets`` assets
    of the (b)-(g) export with boxes in FORMAT.md's sample key order (x, y, height,
    width), a key the parser ignores on every asset, every tenth tool a rotated box
    with its corners, and as a legacy v2 export; one process, typed decoding vs without it
    (``_typed.AVAILABLE = False``), alternating; the export as generated first, for
    comparison;
(i) where workers started fresh pay (``_indexing.PARALLEL_STARTED_MIN_BYTES``, the path
    on Python 3.12+): mixed exports of about ``--started-mib`` MiB each, ``load_export``
    with 2 workers started by forkserver (spawn where there is none; ``_fork_ok``
    patched false) vs one process, each run in a fresh interpreter whose imports come
    before the clock, so that the forkserver's own start is timed, as in a user's
    first load; alternating.  ``--preload on`` has the forkserver import the indexer
    once, as on Python 3.12.8+ / 3.13.1+, on any Python (``auto``: as this one does).
Memory is measured with tracemalloc in a fresh subprocess per figure.

    python benchmarks/index.py                        # 10k and 50k assets × 20 objects
    python benchmarks/index.py --assets 10000 --repeat 3
    python benchmarks/index.py --smoke                # tiny, for the test suite
    python benchmarks/index.py --assets 1000 --kinds mixed --before-max 0 --repeat 7 \
        --threshold-mib 8 16 32 48                    # (g) with more runs
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synth


def _polygons(asset: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Every object of ``asset`` as a 12-gon (the ``polygons`` kind)."""
    for tool in asset["task"]["tools"]:
        for key in ("bounding-box", "segmentation", "point"):
            tool.pop(key, None)
        if "polygon" not in tool:
            cx, cy = rng.uniform(60, 1220), rng.uniform(60, 660)
            tool["polygon"] = _synth._ring(rng, cx, cy, rng.uniform(10, 50), 12)
    return asset


def write(folder: Path, n: int, kind: str, n_objects: int) -> tuple[Path, Path]:
    """Stream ``ango.json`` and the equivalent ``coco.json`` (never all in memory)."""
    rng = random.Random(0)
    ango, coco = folder / f"ango-{kind}-{n}.json", folder / f"coco-{kind}-{n}.json"
    images, anns = [], []
    with ango.open("w") as f:
        f.write("[")
        for i in range(n):
            a = _synth.make_asset(i, rng, n_objects=n_objects)
            if kind == "polygons":
                a = _polygons(a, rng)
            f.write(("," if i else "") + json.dumps(a))
            c = _synth.to_coco([a])
            for img in c["images"]:
                img["id"] = i
            for ann in c["annotations"]:
                ann["id"], ann["image_id"] = len(anns) + 1, i
                anns.append(json.dumps(ann))
            images.append(json.dumps(c["images"][0]))
        f.write("]")
    cats = json.dumps(_synth.to_coco([])["categories"])
    with coco.open("w") as f:
        f.write('{"images":[' + ",".join(images) + '],"annotations":[')
        f.write(",".join(anns) + '],"categories":' + cats + "}")
    return ango, coco


def _time(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _cpu() -> float:
    """CPU seconds of this process and of its ended children (worker processes)."""
    import resource

    own, ended = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + ended.ru_utime + ended.ru_stime


def _mmm(values: list[float], fmt: str = "{:.2f}") -> str:
    """min/median/max."""
    return "/".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


_MEM = r"""
import json, sys, tracemalloc
kind, path = sys.argv[1], sys.argv[2]
import ango_torch  # imported first: torch's own allocations are not the index's
import fsspec.implementations.local
from ango_torch.export import _indexing, _typed, load
if kind == "untyped":
    _typed.AVAILABLE = False  # the path before typed decoding
tracemalloc.start()
if kind == "json":
    with open(path) as f:
        obj = json.load(f)
else:
    # One process, so that tracemalloc sees all of the indexing's memory.
    obj = ango_torch.load_export(path, progress_bar=False, workers=1)
current, peak = tracemalloc.get_traced_memory()
resident = obj.index.nbytes if kind != "json" else current
print(json.dumps({"resident": resident, "peak": peak}))
"""


_FRESH = r"""
import contextlib, io, sys, time
which, path, warm, root = sys.argv[1:5]
import ango_torch
from pycocotools.coco import COCO
# Imports (torch, the dataset) and their first use excluded, as in (a).
ango_torch.AngoDataset(ango_torch.load_export(warm, progress_bar=False), root=root)
t0 = time.perf_counter()
if which == "ours":
    export = ango_torch.load_export(path, progress_bar=False, workers=1)
    ango_torch.AngoDataset(export, task="instance", root=root)
else:
    with contextlib.redirect_stdout(io.StringIO()):
        COCO(path)
print(time.perf_counter() - t0)
"""


def _child(script: str, *args: str) -> str:
    """The last line ``script`` prints, run in a new interpreter with ``args``."""
    out = subprocess.run(
        [sys.executable, "-c", script, *args], check=True, capture_output=True, text=True
    ).stdout
    return out.strip().splitlines()[-1]


def _fresh(which: str, path: Path, warm: Path) -> float:
    """One timed call (``"ours"``: ``load_export`` + ``AngoDataset``, one process; else
    ``COCO()``) in a new interpreter, after its imports: each side starts from a fresh
    heap, not the one the other side's last run left behind."""
    return float(_child(_FRESH, which, str(path), str(warm), str(path.parent)))


def _memory(kind: str, path: Path) -> dict[str, int]:
    return json.loads(_child(_MEM, kind, str(path)))  # type: ignore[no-any-return]


def _alternating(
    path: Path, repeat: int, sides: list[list[tuple[Any, str, Any]]]
) -> list[list[float]]:
    """One-process ``load_export(path)`` times of each side (its ``(module, attr,
    value)`` patches applied; ``[]``: as is), the sides alternating run by run."""
    import ango_torch

    real = {(id(m), a): (m, a, getattr(m, a)) for side in sides for m, a, _ in side}
    times: list[list[float]] = [[] for _ in sides]
    try:
        for _ in range(repeat):
            for side, out in zip(sides, times, strict=True):
                for module, attr, value in real.values():
                    setattr(module, attr, value)
                for module, attr, value in side:
                    setattr(module, attr, value)
                out.append(
                    _time(lambda: ango_torch.load_export(path, progress_bar=False, workers=1))
                )
    finally:
        for module, attr, value in real.values():
            setattr(module, attr, value)
    return times


def _patched(
    module: Any, attr: str, replacement: Any, path: Path, repeat: int
) -> tuple[list[float], list[float]]:
    """One-process ``load_export(path)`` times with ``module.attr`` as it is and patched
    to ``replacement``, alternating: (as is, patched)."""
    real, patched = _alternating(path, repeat, [[], [(module, attr, replacement)]])
    return real, patched


def _ndjson(ango: Path, folder: Path, repeat: int) -> None:
    """(e): NDJSON in blocks vs line by line."""
    from ango_torch.export import _blocks

    lines = folder / "ango.ndjson"
    with lines.open("w") as f:
        for asset in json.loads(ango.read_bytes()):
            f.write(json.dumps(asset) + "\n")
    blocks, by_line = _patched(_blocks, "ndjson_block", lambda *a, **k: None, lines, repeat)
    ratios = [b / a for a, b in zip(blocks, by_line, strict=True)]
    print(
        f"(e) NDJSON {_mmm(blocks)} s in blocks, {_mmm(by_line)} s line by line → "
        f"{statistics.median(ratios):4.2f}× (min/median/max {_mmm(ratios)}×)"
    )
    lines.unlink()


def _check_cost(ango: Path, repeat: int) -> None:
    """(f): the two checks of each block's whole text (validity, ``_typed._valid_json``;
    depth, ``_blocks.deepest``) vs each, and both, patched out; alternating."""
    from ango_torch.export import _blocks, _typed

    no_validity = (_typed, "_valid_json", lambda data: True)
    no_depth = (_blocks, "deepest", lambda data: 1)
    names = ["no validity check", "no depth check", "neither"]
    full, *others = _alternating(
        ango, repeat, [[], [no_validity], [no_depth], [no_validity, no_depth]]
    )
    for name, times in zip(names, others, strict=True):
        ratios = [a / b for a, b in zip(full, times, strict=True)]
        print(
            f"(f) whole-text checks {_mmm(full)} s with both, {_mmm(times)} s "
            f"{name} → {statistics.median(ratios):4.2f}× the time "
            f"(min/median/max {_mmm(ratios)}×)"
        )


def _sized_mixed(folder: Path, sizes: list[float], objects: int) -> Iterator[Path]:
    """Mixed exports of about each of ``sizes`` MiB, one at a time (each deleted after
    its turn)."""
    probe, coco = write(folder, 100, "mixed", objects)
    per_asset = probe.stat().st_size / 100
    probe.unlink()
    coco.unlink()
    for mib in sizes:
        ango, coco = write(folder, max(2, round(mib * 2**20 / per_asset)), "mixed", objects)
        coco.unlink()
        yield ango
        ango.unlink()


def _faster(one: list[float], two: list[float]) -> str:
    """``two``'s times and how many times faster than ``one`` (alternating runs)."""
    ratios = [a / b for a, b in zip(one, two, strict=True)]
    return (
        f"{_mmm(two, '{:.3f}')} s → {statistics.median(ratios):4.2f}× faster "
        f"(min/median/max {_mmm(ratios)}×)"
    )


def _threshold(folder: Path, sizes: list[float], objects: int, repeat: int) -> None:
    """(g): as many workers as ``load_export`` starts by default (at least 2; forked
    where safe, else started fresh) vs one process, on mixed exports of about ``sizes``
    MiB."""
    import ango_torch
    from ango_torch.export import _indexing

    forked = _indexing._fork_ok()
    limit = _indexing.PARALLEL_MIN_BYTES if forked else _indexing.PARALLEL_STARTED_MIN_BYTES
    how = "forked" if forked else "started fresh"
    n_workers = max(2, _indexing.default_workers(1 << 40))  # as many as the default starts
    warm, coco = write(folder, 100, "mixed", objects)
    for workers in (1, n_workers):  # untimed: a forkserver's own start is not the file's
        ango_torch.load_export(warm, progress_bar=False, workers=workers)
    warm.unlink()
    coco.unlink()
    for ango in _sized_mixed(folder, sizes, objects):
        one: list[float] = []
        two: list[float] = []
        for _ in range(repeat):  # alternating
            for times, workers in ((one, 1), (two, n_workers)):
                t0 = time.perf_counter()
                ango_torch.load_export(ango, progress_bar=False, workers=workers)
                times.append(time.perf_counter() - t0)
        size = ango.stat().st_size / 2**20
        print(
            f"(g) {size:5.1f} MiB mixed: 1 process {_mmm(one, '{:.3f}')} s, {n_workers} workers "
            f"{how} {_faster(one, two)} [by default from {limit / 2**20:.0f} MiB]"
        )


_STARTED = r"""
import sys, time
path, workers, preload = sys.argv[1], int(sys.argv[2]), sys.argv[3]
import ango_torch
from ango_torch.export import _indexing
_indexing._fork_ok = lambda: False  # as on Python 3.12+, or with threads running
# "on": as on Python 3.12.8+ / 3.13.1+ (no other copy of the package is in reach here)
_indexing._server_path_is_callers = lambda version=None: preload == "on"
t0 = time.perf_counter()
ango_torch.load_export(path, progress_bar=False, workers=workers)
print(time.perf_counter() - t0)
"""


def _started(
    folder: Path, sizes: list[float], objects: int, repeat: int, preload: str = "auto"
) -> None:
    """(i): 2 workers started fresh vs one process, each run in a new interpreter;
    ``preload``: whether the forkserver imports the indexer once (``auto``: where this
    Python's server imports from the caller's path, 3.12.8+ / 3.13.1+)."""
    from ango_torch.export import _indexing

    if preload == "auto":
        preload = "on" if _indexing._server_path_is_callers() else "off"
    limit = _indexing.PARALLEL_STARTED_MIN_BYTES / 2**20
    for ango in _sized_mixed(folder, sizes, objects):
        times: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(repeat):  # alternating
            for workers in (1, 2):
                times[workers].append(float(_child(_STARTED, str(ango), str(workers), preload)))
        size = ango.stat().st_size / 2**20
        print(
            f"(i) {size:5.1f} MiB mixed, each run in a fresh process: 1 process "
            f"{_mmm(times[1], '{:.3f}')} s, 2 workers started fresh {_faster(times[1], times[2])} "
            f"[by default from {limit:.0f} MiB; forkserver preload {preload}]"
        )


def _sample_order(asset: dict[str, Any]) -> None:
    for tool in asset["task"]["tools"]:
        if "bounding-box" in tool:
            box = tool["bounding-box"]
            tool["bounding-box"] = {k: box[k] for k in ("x", "y", "height", "width")}


def _new_key(asset: dict[str, Any]) -> None:
    asset["reviewStatus"] = {"state": "ACCEPTED", "by": "reviewer@example.com"}


def _rotated(asset: dict[str, Any]) -> None:
    """Every tenth tool a rotated box with its corners, as the platform writes them
    (FORMAT.md), rotated about the centre."""
    for k, tool in enumerate(asset["task"]["tools"][::10]):
        for key in ("bounding-box", "polygon", "polyline", "point", "segmentation"):
            tool.pop(key, None)
        x, y, w, h, rotation = 10.5 * k, 20.25, 30.0, 40.0, 15.0 * k
        c, s = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
        half = ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))
        corners = [
            [round(x + w / 2 + px * c - py * s, 2), round(y + h / 2 + px * s + py * c, 2)]
            for px, py in half
        ]
        tool["rotated-bounding-box"] = {
            "x": x, "y": y, "width": w, "height": h, "rotation": rotation, "corners": corners
        }  # fmt: skip


def _legacy(asset: dict[str, Any]) -> None:
    task = asset.pop("task")
    task["objects"] = task.pop("tools")
    asset["tasks"] = [task]


_SHAPES: dict[str, Callable[[dict[str, Any]], None]] = {
    "as generated": lambda asset: None,
    "sample key order": _sample_order,
    "a new asset key": _new_key,
    "rotated boxes": _rotated,
    "legacy v2": _legacy,
}


def _shapes(ango: Path, folder: Path, n: int, repeat: int) -> None:
    """(h): typed decoding vs without it on export shapes it now reads."""
    from ango_torch.export import _typed

    for name, change in _SHAPES.items():
        assets = json.loads(ango.read_bytes())[:n]
        for asset in assets:
            change(asset)
        path = folder / "shape.json"
        path.write_text(json.dumps(assets))
        typed, untyped = _patched(_typed, "AVAILABLE", False, path, repeat)
        ratios = [b / a for a, b in zip(typed, untyped, strict=True)]
        print(
            f"(h) {len(assets)} assets, {name:16s}: typed {_mmm(typed, '{:.3f}')} s, "
            f"without typed decoding {_mmm(untyped, '{:.3f}')} s → "
            f"{statistics.median(ratios):4.2f}× faster (min/median/max {_mmm(ratios)}×)"
        )
        path.unlink()


def main() -> None:
    from pycocotools.coco import COCO

    import ango_torch
    from ango_torch.export import _indexing, _typed

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, nargs="+", default=[10_000, 50_000])
    ap.add_argument("--kinds", nargs="+", default=["polygons", "mixed"])
    ap.add_argument("--objects", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--before-max",
        type=int,
        default=10_000,
        help="also time the path without typed decoding up to this many assets",
    )
    ap.add_argument(
        "--threshold-mib",
        type=float,
        nargs="+",
        default=[8, 16, 32, 48],
        help="(g): export sizes around the workers' threshold",
    )
    ap.add_argument("--shape-assets", type=int, default=2000, help="(h): assets per export shape")
    ap.add_argument(
        "--started-mib",
        type=float,
        nargs="+",
        default=[32, 64, 128],
        help="(i): export sizes around the threshold for workers started fresh",
    )
    ap.add_argument(
        "--preload",
        choices=["auto", "on", "off"],
        default="auto",
        help="(i): the forkserver imports the indexer once (auto: where this Python's does)",
    )
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (test suite)")
    args = ap.parse_args()
    if args.smoke:
        args.assets, args.objects, args.repeat = [50], 5, 1
        args.threshold_mib, args.shape_assets, args.started_mib = [0.05], 50, [0.05]
    print(
        f"typed decoding: {'on' if _typed.AVAILABLE else 'off (install ango_torch[fast])'}; "
        "times in s as min/median/max over alternating runs"
    )
    typed = _typed.AVAILABLE
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        warm, _ = write(folder, 2, "mixed", 2)  # imports (torch, the dataset) excluded
        ango_torch.AngoDataset(ango_torch.load_export(warm, progress_bar=False), root=folder)
        for n in args.assets:
            for kind in args.kinds:
                ango, coco = write(folder, n, kind, args.objects)
                mb = ango.stat().st_size / 2**20

                def ours(workers: int, ango: Path = ango) -> None:
                    export = ango_torch.load_export(ango, progress_bar=False, workers=workers)
                    ango_torch.AngoDataset(export, task="instance", root=folder)

                def coco_load(coco: Path = coco) -> None:
                    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints timings
                        COCO(str(coco))

                def before(ango: Path = ango) -> None:
                    _typed.AVAILABLE = False  # the path before typed decoding
                    try:
                        ours(1, ango)
                    finally:
                        _typed.AVAILABLE = typed

                def started(ango: Path = ango) -> None:
                    real = _indexing._fork_ok
                    _indexing._fork_ok = lambda: False  # as on Python 3.12+, or with threads
                    try:
                        ours(2, ango)
                    finally:
                        _indexing._fork_ok = real

                t1, t2, ts, tc, t0, c2 = [], [], [], [], [], []
                method = _indexing._context().get_start_method()
                for _ in range(args.repeat):  # alternating, so that load hits all alike
                    t1.append(_time(lambda: ours(1)))
                    tc.append(_time(coco_load))
                    cpu0 = _cpu()
                    t2.append(_time(lambda: ours(2)))
                    c2.append(_cpu() - cpu0)
                    ts.append(_time(started))
                    if n <= args.before_max:
                        t0.append(_time(before))
                r1 = [c / t for c, t in zip(tc, t1, strict=True)]
                r2 = [c / t for c, t in zip(tc, t2, strict=True)]
                rs = [c / t for c, t in zip(tc, ts, strict=True)]
                rs1 = [a / b for a, b in zip(t1, ts, strict=True)]
                label = f"{n} assets, {kind} ({mb:.0f} MiB)"
                print(
                    f"(a) {label}: 1 process {_mmm(t1)}   COCO() {_mmm(tc)}   "
                    f"→ {statistics.median(r1):5.2f}× faster (min/median/max {_mmm(r1)}×) "
                    "[goal ≥ 3×, floor 2×]"
                )
                print(
                    f"    {label}: 2 processes ({method}) {_mmm(t2)}   → "
                    f"{statistics.median(r2):5.2f}× (min/median/max {_mmm(r2)}×); CPU of all "
                    f"processes {_mmm(c2)} s"
                )
                print(
                    f"    {label}: 2 processes started fresh (no fork: forkserver/spawn, "
                    f"as on Python 3.12+) {_mmm(ts)}   → {statistics.median(rs):5.2f}× "
                    f"(min/median/max {_mmm(rs)}×); vs 1 process: "
                    f"{statistics.median(rs1):4.2f}× faster (min/median/max {_mmm(rs1)}×)"
                )
                f1, fc = [], []
                for _ in range(args.repeat):  # (a2): each call in a fresh interpreter
                    f1.append(_fresh("ours", ango, warm))
                    fc.append(_fresh("coco", coco, warm))
                rf = [c / t for c, t in zip(fc, f1, strict=True)]
                print(
                    f"    {label}: each run in a fresh process: 1 process {_mmm(f1)}   "
                    f"COCO() {_mmm(fc)}   → {statistics.median(rf):5.2f}× "
                    f"(min/median/max {_mmm(rf)}×)"
                )
                if t0:
                    r0 = [c / t for c, t in zip(tc, t0, strict=True)]
                    print(
                        f"    {label}: without typed decoding, 1 process {_mmm(t0)}   → "
                        f"{statistics.median(r0):5.2f}× (min/median/max {_mmm(r0)}×)"
                    )
                ango.unlink()
                coco.unlink()
        # (b)-(d) on a fresh copy of the first export (kept small for the subprocesses).
        n, kind = args.assets[0], args.kinds[-1]
        ango, coco = write(folder, n, kind, args.objects)

        def coco_once() -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                COCO(str(coco))

        t_coco = min(_time(coco_once) for _ in range(args.repeat))
        cache = folder / "cache"
        ango_torch.load_export(ango, cache_dir=cache, progress_bar=False)
        t_reopen = min(
            _time(lambda: ango_torch.load_export(ango, cache_dir=cache)) for _ in range(3)
        )
        print(
            f"(b) re-open {n} {kind}  {t_reopen:8.3f} s   COCO() {t_coco:6.2f} s   "
            f"→ {t_coco / t_reopen:5.1f}× faster   [goal ≥ 20×]"
        )
        m_json, m_typed, m_old = (
            _memory("json", ango),
            _memory("typed", ango),
            _memory("untyped", ango),
        )
        print(
            f"(c) resident index {m_typed['resident'] / 2**20:8.1f} MiB json.load tree "
            f"{m_json['resident'] / 2**20:8.1f} MiB → "
            f"{m_json['resident'] / m_typed['resident']:5.1f}× smaller   [goal ≥ 5×]"
        )
        print(
            f"(d) peak indexing  {m_typed['peak'] / 2**20:8.1f} MiB typed, "
            f"{m_old['peak'] / 2**20:8.1f} MiB without typed decoding "
            f"({m_typed['peak'] / m_old['peak']:4.2f}×), json.load peak "
            f"{m_json['peak'] / 2**20:8.1f} MiB → {m_json['peak'] / m_typed['peak']:5.2f}× smaller"
        )
        _ndjson(ango, folder, args.repeat)
        _check_cost(ango, args.repeat)
        _threshold(folder, args.threshold_mib, args.objects, args.repeat)
        _shapes(ango, folder, args.shape_assets, args.repeat)
        _started(folder, args.started_mib, args.objects, args.repeat, args.preload)


if __name__ == "__main__":
    main()
