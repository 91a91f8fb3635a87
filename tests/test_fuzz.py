"""The fuzzer of ``tests/fuzz.py``, bounded to seconds, in a child process under a
memory cap: every mutated export is read, validated, inspected, turned into every
dataset task and into COCO without another exception type, a hang or a runaway
allocation.  Longer runs: ``.venv/bin/python tests/fuzz.py --seconds 600 --seed N``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent / "fuzz.py"
SECONDS = float(os.environ.get("ANGO_FUZZ_SECONDS", "15"))


@pytest.mark.parametrize("seed", [0, 1])
def test_fuzzed_exports_succeed_or_raise_typed_errors(seed: int) -> None:
    cmd = [sys.executable, str(FUZZ), "--seconds", str(SECONDS), "--seed", str(seed)]
    cmd += ["--memory-gib", "6", "--verbose"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS * 4 + 120)
    # fuzz.py prints "N cases: ..." then one FAIL line (with its traceback) per failure
    # signature, and exits 1 when there is any.
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    first = done.stdout.splitlines()[0]
    assert int(first.split()[0]) >= 20, first  # it really ran cases
