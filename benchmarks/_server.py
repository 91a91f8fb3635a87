"""The loopback HTTP server of the benchmarks (``tests/httpserver.py``, own process)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def loopback_server(folder: Path, latency: float) -> Iterator[str]:
    """Serve ``folder``'s files with ``latency`` seconds added to every request.

    Yields the base URL (ending in ``/``); the server process stops on exit.
    """
    server = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "httpserver.py"),
            "--dir",
            str(folder),
            "--latency",
            str(latency),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)
        if server.stdout is not None:
            server.stdout.close()
