"""A loopback HTTP server standing in for S3/GCS in tests and benchmarks.

Serves files from a dict on 127.0.0.1 (port 0), counts requests per path, and
injects faults per path.  Faults queued with :meth:`LoopbackServer.fail` are used
up one per request, then the file is served; :meth:`LoopbackServer.always` sets a
fault served on every request.

Faults: ``"503"``, ``"429"``, ``"404"``, ``"500"``, ``"reset"`` (headers, half the
body, then a TCP reset), ``"slow"`` (waits ``slow_seconds`` before answering) and
``"expired"`` (403 with S3's ``Request has expired`` XML body).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

S3_EXPIRED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message><X-Amz-Expires>120000</X-Amz-Expires>"
    b"<Expires>2023-09-02T17:25:19Z</Expires><ServerTime>2023-09-03T08:00:00Z</ServerTime>"
    b"<RequestId>0123456789ABCDEF</RequestId></Error>"
)
S3_FORBIDDEN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message></Error>"
)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        state = self.server.state
        path = self.path.split("?", 1)[0]
        with state.lock:
            state.counts[path] += 1
            queue = state.queued.get(path)
            fault = queue.pop(0) if queue else state.sticky.get(path)
        if state.latency:
            time.sleep(state.latency)
        body = state.files.get(path)
        if fault == "slow":
            time.sleep(state.slow_seconds)
        elif fault == "reset":
            body = body or b"x" * 1000
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            # SO_LINGER 0: close() sends RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        elif fault == "expired":
            return self._send(403, S3_EXPIRED, {"Content-Type": "application/xml"})
        elif fault == "forbidden":
            return self._send(403, S3_FORBIDDEN, {"Content-Type": "application/xml"})
        elif fault in ("503", "500", "429", "404"):
            headers = {"Retry-After": "0"} if fault == "429" else {}
            return self._send(int(fault), b"fault " + fault.encode(), headers)
        if body is None:
            return self._send(404, b"<Error><Code>NoSuchKey</Code></Error>")
        self._send(200, body, {"Content-Type": "application/octet-stream"})


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.files: dict[str, bytes] = {}
        self.counts: Counter[str] = Counter()
        self.queued: dict[str, list[str]] = {}
        self.sticky: dict[str, str] = {}
        self.latency = 0.0
        self.slow_seconds = 1.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    state: _State

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # injected resets and client timeouts make handlers fail on purpose


class LoopbackServer:
    """The server; use :func:`serve` to start and stop it."""

    def __init__(self, *, latency: float = 0.0, slow_seconds: float = 1.0) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self.state = self._server.state = _State()
        self.state.latency = latency
        self.state.slow_seconds = slow_seconds
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, kwargs={"poll_interval": 0.05}
        )

    @property
    def files(self) -> dict[str, bytes]:
        return self.state.files

    @property
    def counts(self) -> Counter[str]:
        return self.state.counts

    def url(self, path: str, query: str = "") -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{path}" + (f"?{query}" if query else "")

    def fail(self, path: str, *faults: str) -> None:
        """Queue faults for the next requests of ``path``, one per request."""
        with self.state.lock:
            self.state.queued.setdefault(path, []).extend(faults)

    def always(self, path: str, fault: str) -> None:
        """Serve ``fault`` on every request of ``path``."""
        with self.state.lock:
            self.state.sticky[path] = fault

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def serve(*, latency: float = 0.0, slow_seconds: float = 1.0) -> Iterator[LoopbackServer]:
    """Run a :class:`LoopbackServer` for the duration of the ``with`` block."""
    server = LoopbackServer(latency=latency, slow_seconds=slow_seconds).start()
    try:
        yield server
    finally:
        server.stop()


def _main() -> None:
    """``python tests/httpserver.py --dir D --latency S``: serve D's files, print the port.

    Runs until stdin closes (the benchmark keeps the server in its own process so
    that the server's threads do not compete with the client for the GIL).
    """
    import argparse
    import os
    import sys

    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    with serve(latency=args.latency) as server:
        for folder, _, names in os.walk(args.dir):  # subfolders too (shards' index/)
            for name in names:
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    server.files["/" + os.path.relpath(path, args.dir)] = f.read()
        print(server.url("/"), flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    _main()
