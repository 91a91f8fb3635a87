"""Fuzzing the export readers: every outcome is a success or an ``AngoTorchError``.

Mutates the bundled sample export structurally (wrong types, missing keys, NaN/Inf/huge
numbers, deep nesting, unknown tools, bad pages, odd URLs and ids) and at the byte level
(truncations, random bytes, gzip/ZIP wrapping and corruption), then runs each case
through ``load_export``, ``find_problems`` (``validate``), ``summarize`` (``inspect``),
the CLI, every ``AngoDataset`` task and ``to_coco``.  Anything else — another exception
type, a hang (per-case alarm), unbounded memory (run under an address-space limit) — is
a failure.

``tests/test_fuzz.py`` runs it for a few seconds in ``make test``; for a longer run::

    .venv/bin/python tests/fuzz.py --seconds 600 --seed 1
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gzip
import io
import json
import math
import os
import random
import signal
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "examples" / "data"

_ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    1.5,
    2**31,
    2**63,
    10**30,
    -(10**30),
    "",
    "x",
    "-1",
    [],
    [[]],
    {},
    {"x": 1},
    [None],
    [1, 2],
    "Infinity",  # replaced by the bare token when serialized (see _dump)
    "NaN",
    "1e400",
]
_ODD_STRINGS = [
    ".",
    "..",
    "../../etc/passwd",
    "/etc/passwd",
    "file:///etc/passwd",
    "https://[::1/x",
    "https://example.invalid/é.png",
    "zip://x::/missing.zip",
    "unknownproto://x/y.png",
    "coins.png/.",
    "{assetId}",
    "{externalId}/../../x",
    "a" * 300,
    "a/b/c.png",
    "",
    "\x00",
    "/dev/zero",
]
_UNKNOWN_TOOLS = ["spline", "cuboid", "angle", "bounding-box-3d", "ner", "pdf"]
_BARE = {"Infinity": "Infinity", "NaN": "NaN", "1e400": "1e400"}


@dataclass
class Outcome:
    """Counts by outcome, and the first traceback of each failure signature."""

    cases: int = 0
    ok: int = 0
    typed: Counter[str] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)
    failure_count: Counter[str] = field(default_factory=Counter)

    def fail(self, signature: str, detail: str) -> None:
        self.failure_count[signature] += 1
        self.failures.setdefault(signature, detail)


class _Hang(Exception):
    pass


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        raise _Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ------------------------------------------------------------------------ mutations


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        node = node[p]
    return node


def _set(node: Any, path: tuple[Any, ...], value: Any) -> None:
    _get(node, path[:-1])[path[-1]] = value


def _deep(depth: int) -> str:
    """``depth`` levels of nested classifications, as JSON text."""
    head = '[{"objectId": "n", "schemaId": "n", "tool": "radio", "title": "n", '
    head += '"answer": "x", "classifications": '
    return head * depth + "[]" + "}]" * depth


def mutate_structure(rng: random.Random, export: list[Any]) -> list[Any]:
    """One to three structural mutations of a deep copy of ``export``."""
    data = copy.deepcopy(export)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(data) if p]
        path = rng.choice(paths)
        op = rng.random()
        parent = _get(data, path[:-1])
        if op < 0.25:
            _set(data, path, rng.choice(_ODD_VALUES))
        elif op < 0.4:
            if isinstance(parent, dict):
                del parent[path[-1]]
            elif isinstance(parent, list):
                parent.pop(path[-1])
        elif op < 0.55:
            _set(data, path, rng.choice(_ODD_STRINGS))
        elif op < 0.62:
            # Spliced in as text by _dump: the json module cannot write it.
            _set(data, path, f"__DEEP_{rng.choice([10, 120, 300, 600, 1200])}__")
        elif op < 0.7:
            value = _get(data, path)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                _set(data, path, rng.choice([math.nan, math.inf, -math.inf, 1e308, 2**70]))
            else:
                _set(data, path, rng.choice(["NaN", "Infinity", "1e400"]))
        elif op < 0.8:
            asset = rng.choice(data) if isinstance(data, list) and data else None
            tools = _tools(asset)
            if tools is not None:
                tool = copy.deepcopy(rng.choice(tools)) if tools else {"objectId": "z"}
                if not isinstance(tool, dict):
                    tool = {"objectId": "z"}
                for key in ("polygon", "bounding-box", "segmentation", "rotated-bounding-box"):
                    tool.pop(key, None)
                tool[rng.choice(_UNKNOWN_TOOLS)] = rng.choice(_ODD_VALUES)
                if rng.random() < 0.3:
                    tool["polygon"] = [[1, 1], [5, 1], [5, 5]]
                    tool["bounding-box"] = {"x": 0, "y": 0, "width": 1, "height": 1}
                tools.append(tool)
        elif op < 0.9:
            asset = rng.choice(data) if isinstance(data, list) and data else None
            tools = _tools(asset)
            tool = rng.choice(tools) if tools else None
            if isinstance(tool, dict):
                tool["page"] = rng.choice([-1, 0, 1, 7, 2**40, "1", None, 1.5])
        else:
            asset = rng.choice(data) if isinstance(data, list) and data else None
            if isinstance(asset, dict):
                key = rng.choice(["asset", "assetId", "externalId"])
                asset[key] = rng.choice(_ODD_STRINGS)
                if rng.random() < 0.3 and len(data) > 1:
                    other = rng.choice(data)
                    if isinstance(other, dict):
                        other["externalId"] = asset.get("externalId")
    return data


def _tools(asset: Any) -> list[Any] | None:
    if not isinstance(asset, dict):
        return None
    task = asset.get("task")
    if isinstance(task, dict) and isinstance(task.get("tools"), list):
        tools: list[Any] = task["tools"]
        return tools
    return None


def _dump(data: Any) -> bytes:
    text = json.dumps(data)
    for depth in (10, 120, 300, 600, 1200):
        text = text.replace(f'"__DEEP_{depth}__"', _deep(depth))
    for word, token in _BARE.items():
        text = text.replace(f'"{word}"', token)
    return text.encode()


def _zip(data: bytes, name: str = "export.json", method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        zf.writestr(name, data)
    return buf.getvalue()


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    """A byte-level variant: truncated, corrupted, wrapped, NDJSON, ..."""
    op = rng.random()
    if op < 0.2:
        return data[: int(len(data) * rng.random())]
    if op < 0.35:
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    if op < 0.45:
        return rng.randbytes(rng.randint(0, 4096))
    if op < 0.55:
        g = gzip.compress(data)
        cut = rng.choice(["trunc", "crc", "garbage", "double", "ok"])
        if cut == "trunc":
            return g[: rng.randint(10, len(g) - 1)]
        if cut == "crc":
            return g[:-8] + bytes(8)
        if cut == "garbage":
            return g + rng.randbytes(20)
        if cut == "double":
            return gzip.compress(g)
        return g
    if op < 0.7:
        z = _zip(data)
        cut = rng.choice(["trunc", "flip", "nested", "stored", "empty", "two"])
        if cut == "trunc":
            return z[: rng.randint(1, len(z) - 1)]
        if cut == "flip":
            out = bytearray(z)
            out[rng.randrange(30, max(31, len(z) // 2))] ^= 0xFF
            return bytes(out)
        if cut == "nested":
            for _ in range(rng.choice([1, 3, 50])):
                z = _zip(z, "inner.zip")
            return z
        if cut == "stored":
            return _zip(data, method=zipfile.ZIP_STORED)
        if cut == "empty":
            return _zip(b"")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("a.json", data)
            zf.writestr("b.json", data)
        return buf.getvalue()
    if op < 0.8:
        try:
            assets = json.loads(data)
        except (ValueError, RecursionError):
            return data
        if isinstance(assets, list):
            lines = [json.dumps(a) for a in assets]
            if lines and rng.random() < 0.5:
                k = rng.randrange(len(lines))
                lines[k] = lines[k][: rng.randint(0, len(lines[k]))]
            return "\n".join(lines).encode()
        return data
    if op < 0.9:
        return rng.choice(
            [b"[1]", b"[null]", b"[]", b"{}", b"null", b"[{}]", b"[[]]", b'"x"', b"[" * 5000]
        )
    return data


# ------------------------------------------------------------------------ running


def _exercise(path: str, root: str, ontology: Any, rng: random.Random) -> None:
    """Everything a user might run on a file; raises whatever the code raises."""
    import ango_torch
    from ango_torch.cli import main as cli_main
    from ango_torch.export.validate import find_problems, summarize

    on_error = rng.choice(["raise", "skip"])
    export = ango_torch.load_export(path, on_error=on_error)
    find_problems(export)
    summarize(export)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for cmd in (["inspect", path], ["validate", path]):
            code = cli_main(cmd)
            if code not in (0, 1, 2):
                raise AssertionError(f"{cmd[0]} exited {code}")
    for task in ("detection", "instance", "semantic"):
        kwargs: dict[str, Any] = {"task": task, "root": root, "on_error": on_error}
        if rng.random() < 0.7:
            kwargs["ontology"] = ontology
        if task != "semantic" and rng.random() < 0.5:
            kwargs["brush_instances"] = "components"
        ds = ango_torch.AngoDataset(export, **kwargs)
        for i in range(min(len(ds), 2)):
            image, target = ds[i]
            _check_target(task, image, target)
        ango_torch.to_coco(ds)


def _check_target(task: str, image: Any, target: dict[str, Any]) -> None:
    if task == "semantic":
        if tuple(target["mask"].shape) != tuple(image.shape[-2:]):
            raise AssertionError("semantic mask shape differs from the image")
        return
    n = len(target["labels"])
    for key in ("boxes", "area", "iscrowd", "masks"):
        if key in target and len(target[key]) != n:
            raise AssertionError(f"{key} has {len(target[key])} rows, labels {n}")


def _signature(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    frames = [f for f in tb if "ango_torch" in f.filename] or tb[-1:]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(exc).__name__} at {where}"


def run(seconds: float, seed: int, *, per_case: float = 20.0, limit: int | None = None) -> Outcome:
    """Fuzz for ``seconds`` (or ``limit`` cases); returns the outcome counts."""
    from ango_torch.errors import AngoTorchError, AngoTorchWarning

    rng = random.Random(seed)
    base = json.loads((SAMPLE / "sample_export.json").read_text())
    ontology = json.loads((SAMPLE / "ontology.json").read_text())
    root = str(SAMPLE / "images")
    base_bytes = _dump(base)
    out = Outcome()
    deadline = time.monotonic() + seconds
    with tempfile.TemporaryDirectory() as tmp:
        n = 0
        while time.monotonic() < deadline and (limit is None or n < limit):
            n += 1
            if rng.random() < 0.6:
                data = _dump(mutate_structure(rng, base))
                if rng.random() < 0.2:
                    data = mutate_bytes(rng, data)
            else:
                data = mutate_bytes(rng, base_bytes)
            path = os.path.join(tmp, f"case{n % 8}.json")
            Path(path).write_bytes(data)
            out.cases += 1
            try:
                with warnings.catch_warnings(), _alarm(per_case):
                    warnings.simplefilter("error")
                    warnings.simplefilter("ignore", AngoTorchWarning)
                    _exercise(path, root, ontology, random.Random(rng.random()))
                out.ok += 1
            except AngoTorchError as exc:
                out.typed[type(exc).__name__] += 1
                if not _names_where(str(exc), path):
                    out.fail(f"{_signature(exc)} (names no asset)", _describe(exc, data))
            except (_Hang, MemoryError) as exc:
                out.fail(f"{type(exc).__name__}", _describe(exc, data))
            except Exception as exc:
                out.fail(_signature(exc), _describe(exc, data))
    return out


def _names_where(message: str, path: str) -> bool:
    """Whether an error message says where: an asset, an NDJSON line or the file."""
    return any(word in message for word in ("asset", "line ", path, os.path.basename(path)))


def _describe(exc: BaseException, data: bytes) -> str:
    head = data[:300].decode("utf-8", "replace")
    tb = "".join(traceback.format_exception(exc)[-6:])
    return f"{tb}\ninput ({len(data)} bytes) starts: {head!r}"


def limit_memory(gib: float) -> None:
    """Cap this process's address space (a runaway allocation raises MemoryError)."""
    import resource

    cap = int(gib * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-gib", type=float, default=8)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import torch  # before the cap: its libraries reserve address space when loaded

    torch.set_num_threads(1)
    limit_memory(args.memory_gib)
    out = run(args.seconds, args.seed)
    print(f"{out.cases} cases: {out.ok} ok, {sum(out.typed.values())} typed errors")
    print(f"typed: {dict(out.typed)}")
    for sig, count in out.failure_count.most_common():
        print(f"FAIL {count:5d}  {sig}")
        if args.verbose:
            print("    " + out.failures[sig].replace("\n", "\n    "))
    return 1 if out.failures else 0


if __name__ == "__main__":
    sys.exit(main())
