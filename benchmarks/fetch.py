"""Benchmark the fetch + decode layer.

1. ``prefetch`` (thread pool) vs fetching the same assets one by one with
   ``AssetStore.fetch``, against the loopback HTTP server (run in its own process)
   adding a fixed latency to every request.
2. Decoding real photographs (``examples/data/images/*.png`` and JPEG re-encodings
   made here) with ``decode_image`` vs ``PIL.Image.open(...).convert("RGB")``, plus
   ``torchvision.io.decode_image`` (deprecated in 0.29, run with its warning
   silenced) as a candidate.

Usage: ``python benchmarks/fetch.py [--smoke]``.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _server import loopback_server  # noqa: E402

from ango_torch.assets.decode import decode_image  # noqa: E402
from ango_torch.assets.fetch import AssetStore, RetryPolicy  # noqa: E402
from ango_torch.assets.prefetch import DEFAULT_CONCURRENCY, PrefetchItem, prefetch  # noqa: E402

PHOTOS = sorted((ROOT / "examples" / "data" / "images").glob("*.png"))


def make_assets(n: int, folder: Path) -> None:
    """``n`` distinct 256×256 JPEG crops of the sample photographs."""
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in PHOTOS]
    rng = np.random.default_rng(0)
    for i in range(n):
        photo = photos[i % len(photos)]
        y, x = (int(rng.integers(0, s - 256)) for s in photo.shape[:2])
        out = io.BytesIO()
        Image.fromarray(photo[y : y + 256, x : x + 256]).save(out, "JPEG", quality=90)
        (folder / f"img_{i:05d}.jpg").write_bytes(out.getvalue())


def bench_prefetch(n: int, latency: float, concurrencies: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        served = Path(tmp) / "served"
        served.mkdir()
        make_assets(n, served)
        with loopback_server(served, latency) as base:
            items = [
                PrefetchItem(f"id{i}", f"img_{i:05d}.jpg", f"{base}img_{i:05d}.jpg?sig={i}")
                for i in range(n)
            ]
            retry = RetryPolicy(timeout=10)
            store = AssetStore(retry=retry)
            t0 = time.perf_counter()
            for it in items:
                store.fetch(asset_id=it.asset_id, external_id=it.external_id, url=it.url)
            serial = time.perf_counter() - t0
            print(f"prefetch: {n} assets, {latency * 1000:.0f} ms added latency per request")
            print(
                f"  one by one (AssetStore.fetch, bytes only) {serial:7.2f} s "
                f"{n / serial:8.1f} assets/s  (baseline)"
            )
            for c in concurrencies:
                t0 = time.perf_counter()
                report = prefetch(
                    items, to=Path(tmp) / f"out{c}", concurrency=c, retry=retry, progress=False
                )
                took = time.perf_counter() - t0
                if not report.ok or report.fetched != n:
                    raise SystemExit(f"prefetch failed: {report.summary()} {report.failed[:3]}")
                print(
                    f"  prefetch concurrency={c:<3} (fetch+decode+write) {took:7.2f} s "
                    f"{n / took:8.1f} assets/s  {serial / took:5.1f}× baseline"
                    + ("  (default)" if c == DEFAULT_CONCURRENCY else "")
                )
            t0 = time.perf_counter()
            again = prefetch(items, to=Path(tmp) / f"out{concurrencies[0]}", progress=False)
            print(
                f"  resumed run (all {again.skipped} skipped)          "
                f"{time.perf_counter() - t0:7.2f} s"
            )


def best_of(fn: Callable[[], object], reps: int, rounds: int = 3) -> float:
    """Best per-call seconds over ``rounds`` rounds of ``reps`` calls."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def pil_baseline(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def bench_decode(reps: int) -> None:
    try:
        import torch
        from torchvision.io import ImageReadMode
        from torchvision.io import decode_image as tv_decode
    except ImportError:  # pragma: no cover
        tv_decode = None

    def torchvision_path(data: bytes) -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            buf = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            return tv_decode(buf, mode=ImageReadMode.RGB)

    print(f"decode: best of 3 × {reps} calls per file; ratio = baseline time / time")
    print(
        f"  {'file':<22}{'PIL open+convert':>18}{'decode_image':>14}{'ratio':>7}"
        f"{'torchvision.io':>16}{'ratio':>7}"
    )
    totals = [0.0, 0.0, 0.0]
    for photo in PHOTOS:
        rgb = Image.open(photo).convert("RGB")
        jpeg = io.BytesIO()
        rgb.save(jpeg, "JPEG", quality=90)
        big = io.BytesIO()
        rgb.resize((rgb.width * 3, rgb.height * 3), Image.Resampling.BICUBIC).save(
            big, "JPEG", quality=90
        )
        for name, data in (
            (photo.name, photo.read_bytes()),
            (photo.stem + ".jpg", jpeg.getvalue()),
            (photo.stem + "@3x.jpg", big.getvalue()),
        ):
            np.testing.assert_array_equal(decode_image(data), pil_baseline(data))
            base = best_of(lambda d=data: pil_baseline(d), reps)
            ours = best_of(lambda d=data: decode_image(d), reps)
            tv = best_of(lambda d=data: torchvision_path(d), reps) if tv_decode else float("nan")
            totals = [totals[0] + base, totals[1] + ours, totals[2] + tv]
            print(
                f"  {name:<22}{base * 1e3:15.2f} ms{ours * 1e3:11.2f} ms{base / ours:6.2f}×"
                f"{tv * 1e3:13.2f} ms{base / tv:6.2f}×"
            )
    print(
        f"  {'all files':<22}{totals[0] * 1e3:15.2f} ms{totals[1] * 1e3:11.2f} ms"
        f"{totals[0] / totals[1]:6.2f}×{totals[2] * 1e3:13.2f} ms{totals[0] / totals[2]:6.2f}×"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds")
    parser.add_argument("--assets", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.020)
    args = parser.parse_args()
    if args.smoke:
        bench_prefetch(16, 0.005, [DEFAULT_CONCURRENCY])
        bench_decode(1)
    else:
        bench_prefetch(args.assets, args.latency, sorted({8, DEFAULT_CONCURRENCY, 32}))
        bench_decode(10)


if __name__ == "__main__":
    main()
