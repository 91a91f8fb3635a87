"""The benchmark scripts run (``--smoke`` sizes) and print their ratio lines."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
# Headline lines look like "(b) DataLoader   ...   →   1.62× faster   [goal ≥ 1.5×]".
RATIO = re.compile(r"^\((?P<key>[a-z])\) .*→\s*(?P<ratio>\S+)×", re.MULTILINE)


def _run(script: str) -> dict[str, float]:
    # -W error: a benchmark that warns (e.g. a deprecated torchvision.io decoder) fails.
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(BENCHMARKS / script), "--smoke"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    return {m["key"]: float(m["ratio"]) for m in RATIO.finditer(proc.stdout)}


@pytest.mark.parametrize(
    ("script", "keys", "positive"),
    [
        ("dataset.py", "abc", True),
        # index.py prints fixed-precision ratios ("{:5.1f}"), which at smoke sizes can
        # round to 0.0 (e.g. peak memory vs json.load of a 50-asset file).
        ("index.py", "abcdefghi", False),
        ("shards.py", "abcd", True),
        ("volumes.py", "a", True),
        ("video.py", "ab", True),
        ("video_index.py", "a", True),
    ],
    ids=["dataset", "index", "shards", "volumes", "video", "video_index"],
)
def test_smoke(script: str, keys: str, positive: bool) -> None:
    ratios = _run(script)
    assert sorted(ratios) == list(keys), ratios
    for key, ratio in ratios.items():
        assert math.isfinite(ratio), (key, ratio)
        assert ratio > 0 if positive else ratio >= 0, (key, ratio)


def test_gpu_train_smoke() -> None:
    """On CPU at toy sizes: the three throughputs of both pipelines are printed."""
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(BENCHMARKS / "gpu_train.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    names = r"ango_torch masks=packed|ango_torch|torchvision CocoDetection \(baseline\)"
    rows = re.findall(rf"^({names})\s+(.*)$", proc.stdout, re.MULTILINE)
    assert [name for name, _ in rows] == [
        "ango_torch",
        "ango_torch masks=packed",
        "torchvision CocoDetection (baseline)",
    ]
    assert len(re.findall(r"^  .* pinned .* MiB .* main-process CPU .* ms", proc.stdout, re.M)) == 3
    for _, values in rows:
        rates = [float(v) for v in re.findall(r"([\d.]+)/s", values)]
        assert len(rates) == 3 and all(r > 0 for r in rates), values
