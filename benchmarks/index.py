"""Indexing an export vs pycocotools reading the equivalent COCO file.

Prints, in one run: (a) indexing time vs ``pycocotools.coco.COCO(path)``; (b) re-opening
from the persisted index vs the same baseline; (c) resident size of the index vs
``json.load``'s object tree of the same file; (d) peak memory while indexing vs
``json.load``.  Memory is measured with tracemalloc in a fresh subprocess per figure.

    python benchmarks/index.py            # 50,000 assets × 20 objects
    python benchmarks/index.py --smoke    # tiny, for the test suite
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


_MEM = r"""
import json, sys, tracemalloc
kind, path = sys.argv[1], sys.argv[2]
import ango_torch  # imported first: torch's own allocations are not the index's
tracemalloc.start()
if kind == "json":
    with open(path) as f:
        obj = json.load(f)
else:
    # One process, so that tracemalloc sees all of the indexing's memory.
    obj = ango_torch.load_export(path, progress_bar=False, workers=1)
current, peak = tracemalloc.get_traced_memory()
resident = obj.index.nbytes if kind == "index" else current
print(json.dumps({"resident": resident, "peak": peak}))
"""


def _memory(kind: str, path: Path) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _MEM, kind, str(path)], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    import _synth
    from pycocotools.coco import COCO

    import ango_torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=50_000)
    ap.add_argument("--objects", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--workers", type=int, default=None, help="indexing processes (default: auto)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (test suite)")
    args = ap.parse_args()
    if args.smoke:
        args.assets, args.objects = 50, 5
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ango, coco = _synth.write(folder, args.assets, n_objects=args.objects)
        mb = ango.stat().st_size / 2**20
        print(
            f"export: {args.assets} assets × {args.objects} objects, "
            f"ango.json {mb:.0f} MiB, coco.json {coco.stat().st_size / 2**20:.0f} MiB"
        )

        def coco_load() -> None:
            with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints timings
                COCO(str(coco))

        t_index = _best(
            lambda: ango_torch.load_export(ango, progress_bar=False, workers=args.workers),
            args.repeat,
        )
        t_coco = _best(coco_load, args.repeat)
        cache = folder / "cache"
        ango_torch.load_export(ango, cache_dir=cache, progress_bar=False)
        t_reopen = _best(lambda: ango_torch.load_export(ango, cache_dir=cache), max(args.repeat, 3))
        try:
            import orjson  # noqa: F401

            parser = "orjson"
        except ImportError:
            parser = "json (install ango_torch[fast] for orjson)"
        from ango_torch.export._indexing import default_workers

        workers = args.workers or default_workers(ango.stat().st_size)
        print(
            f"(a) index          {t_index:8.2f} s   pycocotools COCO(path) {t_coco:8.2f} s   "
            f"→ {t_coco / t_index:5.2f}× faster   [parser: {parser}; {workers} process(es); "
            "goal ≥ 2×]"
        )
        print(
            f"(b) re-open        {t_reopen:8.3f} s   pycocotools COCO(path) {t_coco:8.2f} s   "
            f"→ {t_coco / t_reopen:5.1f}× faster   [goal ≥ 20×]"
        )
        m_json, m_index = _memory("json", ango), _memory("index", ango)
        print(
            f"(c) resident index {m_index['resident'] / 2**20:8.1f} MiB json.load tree "
            f"{m_json['resident'] / 2**20:8.1f} MiB → {m_json['resident'] / m_index['resident']:5.1f}× "  # noqa: E501
            "smaller   [goal ≥ 5×]"
        )
        print(
            f"(d) peak indexing  {m_index['peak'] / 2**20:8.1f} MiB json.load peak "
            f"{m_json['peak'] / 2**20:8.1f} MiB → {m_json['peak'] / m_index['peak']:5.2f}× "
            "smaller"
        )


if __name__ == "__main__":
    main()
