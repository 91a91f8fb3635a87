"""The compact index: round trip through records, its persisted form, and pickling."""

from __future__ import annotations

import json
import os
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builders import make_asset, make_box, make_polygon, make_segmentation

import ango_torch
from ango_torch.export._build import concat
from ango_torch.export.index import ExportIndex


def _export() -> list[dict]:
    seg = make_segmentation(
        [
            {"region": [[0, 0], [9, 0], [9, 9], [0, 9]], "holes": [[[2, 2], [4, 2], [3, 4]]]},
            {"region": [[10, 1], [12, 1], [11, 3]], "holes": []},
        ]
    )
    rot = {
        "rotated-bounding-box": {
            "x": 1,
            "y": 1,
            "width": 2,
            "height": 2,
            "rotation": 0,
            "corners": [[1, 1], [3, 1], [3, 3], [1, 3]],
        },
        "objectId": "r",
        "title": "sign",
        "schemaId": "s",
    }
    other = {"spline": {"pts": [1, 2]}, "objectId": "sp", "title": "curve"}
    hist = [{"stage": "Label", "stageId": "L", "tools": [make_box(0, 0, 1, 1)]}]
    a = make_asset(
        [
            make_polygon([[1, 1], [9, 1], [5, 8]]),
            seg,
            rot,
            other,
            make_box(5, 5, -2, -2, metadata={"createdAt": 1693555521104}),
        ],
        stage_history=hist,
    )
    a["task"]["classifications"] = [{"title": "weather", "tool": "checkbox", "answer": ["rain"]}]
    return [a, make_asset([], width=None, height=None)]


def test_records_survive_the_index() -> None:
    """Records rebuilt from the columns equal records parsed straight from JSON."""
    from ango_torch.export._parse import parse_asset

    raws = _export()
    export = ango_torch.load_export(raws)
    for i, raw in enumerate(raws):
        direct = parse_asset(raw, i)
        rebuilt = export[i]
        assert rebuilt.task.answer.classifications == direct.task.answer.classifications
        for a, b in zip(rebuilt.task.answer.tools, direct.task.answer.tools, strict=True):
            assert (a.object_id, a.title, a.kind, a.page) == (b.object_id, b.title, b.kind, b.page)
            assert a.metadata == b.metadata and a.classifications == b.classifications
            assert repr(a.geometry) == repr(b.geometry)
        assert len(rebuilt.task.history) == len(direct.task.history)
        assert (rebuilt.width, rebuilt.height) == (direct.width, direct.height)


def test_index_is_columnar_and_pickles(tmp_path: Path) -> None:
    export = ango_torch.load_export(_export())
    idx = export.index
    # Columns, not Python objects: every attribute is a numpy array.
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in idx.arrays.values())
    assert idx.verts.dtype == np.float32 and idx.verts.shape[1] == 2
    assert len(idx.obj_kind) == 6  # 5 answer objects + 1 in the Label stage
    clone = pickle.loads(pickle.dumps(idx))
    assert clone.asset(0).external_id == idx.asset(0).external_id
    path = tmp_path / "i.index"
    idx.save(path)
    loaded = ExportIndex.load(path)
    assert repr(loaded.asset(0)) == repr(idx.asset(0))
    assert idx.rings(1)[1][2] is True  # the segmentation's hole


def test_persisted_index_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "e.json"
    path.write_text(json.dumps(_export()))
    cache = tmp_path / "cache"
    first = ango_torch.load_export(path, cache_dir=cache)
    (saved,) = (cache / "index").glob("*.index")
    assert saved.stem == first.index.digest

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr("ango_torch.export._indexing.asset_columns", boom)
    second = ango_torch.load_export(path, cache_dir=cache)
    assert repr(second[0]) == repr(first[0])
    # Changed content → new key → parsed again.
    path.write_text(json.dumps(_export()[:1]))
    with pytest.raises(AssertionError, match="parsed again"):
        ango_torch.load_export(path, cache_dir=cache)


def _same_size_copy_keeping_mtime(path: Path, text: str) -> None:
    """Replace ``path``'s bytes as ``cp -p`` / ``rsync -t`` / unzip do: size and mtime kept."""
    before = path.stat()
    assert len(text.encode()) == before.st_size
    time.sleep(0.05)  # past a kernel tick, so the ctime the write sets is a new one
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_mtime_ns == before.st_mtime_ns


@pytest.mark.parametrize("birth_time_as_created", [False, True])
def test_cache_sees_a_same_size_copy_that_keeps_the_mtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, birth_time_as_created: bool
) -> None:
    """A remembered hash is keyed by ctime and inode too, not only size and mtime.

    Reference: stat(2): ``utime`` sets the mtime back, but any write sets the ctime to
    now, and nothing but the kernel sets it. Fails with a size+mtime key (the old
    stamp), which re-opened the first file's index for the second file's bytes. On macOS
    and Windows fsspec's ``created`` is the birth time, which an in-place write keeps
    (simulated by ``birth_time_as_created``): the key takes ``os.stat``'s ctime itself.
    """
    monkeypatch.setattr("ango_torch.export.load._RACY_SECONDS", 0.0)
    if birth_time_as_created:
        from fsspec.implementations.local import LocalFileSystem

        info = LocalFileSystem.info

        def born_long_ago(self: Any, path: Any, **kw: Any) -> dict[str, Any]:
            return {**info(self, path, **kw), "created": 1.0e9}

        monkeypatch.setattr(LocalFileSystem, "info", born_long_ago)
    path = tmp_path / "e.json"
    one = json.dumps([make_asset([make_box(1, 2, 3, 4)], external_id="a.png")])
    path.write_text(one)
    old = time.time() - 3600
    os.utime(path, (old, old))
    cache = tmp_path / "cache"
    assert ango_torch.load_export(path, cache_dir=cache)[0].external_id == "a.png"
    assert len(list((cache / "index").glob("stat-*.txt"))) == 1  # the hash is remembered
    _same_size_copy_keeping_mtime(path, one.replace("a.png", "b.png"))
    assert ango_torch.load_export(path, cache_dir=cache)[0].external_id == "b.png"
    # A plain load of the same bytes is the reference the cached one must equal.
    assert repr(ango_torch.load_export(path, cache_dir=cache)[0]) == repr(
        ango_torch.load_export(path)[0]
    )


def test_cache_does_not_remember_the_hash_of_a_file_changed_just_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file changed within _RACY_SECONDS of its hash may change again inside the same
    timestamp tick, stamp unchanged: its hash is not remembered (git's "racily clean"
    rule, Documentation/technical/racy-git.txt), so the next open hashes it again."""
    path = tmp_path / "e.json"
    path.write_text(json.dumps(_export()))
    cache = tmp_path / "cache"
    first = ango_torch.load_export(path, cache_dir=cache)
    assert not list((cache / "index").glob("stat-*.txt"))
    (saved,) = (cache / "index").glob("*.index")  # the index itself is saved all the same
    assert saved.stem == first.index.digest
    # The same file, an hour later: its hash is remembered now.
    now = time.time()
    monkeypatch.setattr("ango_torch.export.load._clock", lambda: now + 3600)
    ango_torch.load_export(path, cache_dir=cache)
    (memo,) = (cache / "index").glob("stat-*.txt")
    assert memo.read_text() == first.index.digest


def test_cache_does_not_remember_a_hash_when_the_file_changed_while_hashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stamp taken before hashing must still hold after it (else the hash may be of
    bytes from before and after a write, remembered under the old stamp)."""
    from ango_torch.export import load

    monkeypatch.setattr(load, "_RACY_SECONDS", 0.0)
    path = tmp_path / "e.json"
    path.write_text(json.dumps(_export()))
    old = time.time() - 3600
    os.utime(path, (old, old))
    digest = load.file_digest

    def then_touch(f: Any) -> str:
        out = digest(f)
        time.sleep(0.05)  # past a kernel tick
        os.utime(path, (old + 1, old + 1))  # a change of its stamp (mtime and ctime)
        return out

    monkeypatch.setattr(load, "file_digest", then_touch)
    ango_torch.load_export(path, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache" / "index").glob("stat-*.txt"))


def test_an_index_is_not_saved_when_the_file_changed_between_hash_and_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Else the new bytes' index is saved under the old bytes' hash, and a later open of
    the old bytes gets it. Reference: a plain load of the old bytes (fails without the
    stamp check before ``save``)."""
    from ango_torch.export import load

    path = tmp_path / "e.json"
    first, second = json.dumps(_export()), json.dumps(_export()[:1])
    path.write_text(first)
    index_file = load._index_file

    def replaced_first(*a: Any, **k: Any) -> Any:
        time.sleep(0.05)  # past a kernel tick
        path.write_text(second)
        return index_file(*a, **k)

    cache = tmp_path / "cache"
    with monkeypatch.context() as m:
        m.setattr(load, "_index_file", replaced_first)
        assert len(ango_torch.load_export(path, cache_dir=cache)) == 1  # what it read
    assert not list((cache / "index").glob("*.index"))
    path.write_text(first)
    assert len(ango_torch.load_export(path, cache_dir=cache)) == len(ango_torch.load_export(path))


def test_a_file_rewritten_within_its_timestamp_tick_is_hashed_again_before_saving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A same-size rewrite in the same timestamp tick as the last write (1-2 s on HFS+,
    FAT, some NFS mounts) leaves the stamp as it was (simulated: the stamp is frozen),
    so only the bytes show it: a file written just before its hash is hashed again
    before its index is saved. Reference: a plain load of the first bytes."""
    from ango_torch.export import load

    path = tmp_path / "e.json"
    first = json.dumps([make_asset([make_box(1, 2, 3, 4)], external_id="a.png")])
    path.write_text(first)
    frozen = load.file_stamp(str(path))
    monkeypatch.setattr(load, "file_stamp", lambda *a, **k: frozen)
    index_file = load._index_file

    def rewritten_first(*a: Any, **k: Any) -> Any:
        path.write_text(first.replace("a.png", "b.png"))
        return index_file(*a, **k)

    cache = tmp_path / "cache"
    with monkeypatch.context() as m:
        m.setattr(load, "_index_file", rewritten_first)
        assert ango_torch.load_export(path, cache_dir=cache)[0].external_id == "b.png"
    assert not list((cache / "index").glob("*.index"))
    path.write_text(first)
    assert ango_torch.load_export(path, cache_dir=cache)[0].external_id == "a.png"


def test_stamps_of_local_files_behind_a_cache_protocol_carry_the_ctime(tmp_path: Path) -> None:
    """simplecache::/filecache:: wrap the local file at the same path: its os.stat
    ctime and inode belong in the key there too."""
    from ango_torch.export._read import file_stamp

    path = tmp_path / "e.json"
    path.write_text("[]")
    for url in (str(path), f"file://{path}", f"simplecache::file://{path}"):
        stamp = file_stamp(url)
        assert stamp is not None and "st_ctime_ns" in stamp[0], url
        assert stamp[1] == pytest.approx(path.stat().st_ctime)  # (mtime == ctime here)


class _Remote:
    """An fsspec filesystem's ``info`` as fsspec's HTTPFileSystem gives it."""

    protocol = ("https", "http")

    def __init__(self, infos: list[dict[str, Any]]) -> None:
        self.infos = infos

    def info(self, path: str) -> dict[str, Any]:
        return self.infos.pop(0)


def test_http_stamps_leave_out_the_redirected_url_and_read_last_modified(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTPFileSystem.info's ``url`` is the address after redirects, signed afresh on
    every request (GitHub releases, Hugging Face): in the key, no hash would ever be
    remembered. ``Last-Modified`` (an HTTP date, RFC 9110) gives the racy-write guard
    its time; reference: ``email.utils`` of the standard library, computed by hand:
    Fri, 04 Dec 2026 08:00:00 GMT = 1796371200 s."""
    import fsspec.core

    from ango_torch.export._read import file_stamp

    def info(sig: int) -> dict[str, Any]:
        return {
            "name": "https://x/e.json",
            "size": 10,
            "type": "file",
            "url": f"https://cdn/e.json?sig={sig}",
            "ETag": '"5f-abc"',
            "Last-Modified": "Fri, 04 Dec 2026 08:00:00 GMT",
        }

    undated = {k: v for k, v in info(4).items() if k != "Last-Modified"}
    fs = _Remote(
        [info(1), info(2), {**info(3), "ETag": '"5f-abd"'}, {**undated, "ETag": "20261204"}]
    )
    monkeypatch.setattr(fsspec.core, "url_to_fs", lambda source, **k: (fs, source))
    one, two, three, four = (file_stamp("https://x/e.json") for _ in range(4))
    assert one is not None and two is not None and three is not None and four is not None
    assert one == two and one[1] == 1796371200.0
    assert three[0] != one[0]  # a new ETag: a new key
    assert four[1] is None  # an ETag of digits is no date (fromisoformat would read one)


def test_corrupt_cache_file_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text(json.dumps(_export()))
    first = ango_torch.load_export(path, cache_dir=tmp_path)
    (saved,) = (tmp_path / "index").glob("*.index")
    (saved / "verts.npy").write_bytes(b"garbage")
    again = ango_torch.load_export(path, cache_dir=tmp_path)
    assert len(again) == len(first)


def test_index_out_of_range() -> None:
    export = ango_torch.load_export(_export())
    with pytest.raises(IndexError, match="out of range"):
        export[5]
    assert export[-1].index == 1


def _many(n: int = 12) -> list[dict]:
    out = []
    for k in range(n):
        out.extend(_export())
        out[-1]["task"]["tools"] = [make_box(k, 1, 2, 2, title=f"class{k % 3}")]
    return out


def _written(folder: Path, n: int = 40) -> tuple[list[dict], Path]:
    """:func:`_many` assets, and the JSON export of them in ``folder``."""
    raws = _many(n)
    path = folder / "e.json"
    path.write_text(json.dumps(raws))
    return raws, path


def test_concat_of_parts_equals_the_whole() -> None:
    raws = _many()
    whole = ango_torch.load_export(raws).index
    parts = [ango_torch.load_export(raws[i : i + 5]).index for i in range(0, len(raws), 5)]
    merged = concat(parts)
    assert len(merged) == len(whole)
    for i in range(len(whole)):
        assert repr(merged.asset(i)) == repr(whole.asset(i))
    np.testing.assert_array_equal(merged.verts, whole.verts)
    assert [merged.titles[t] for t in merged.obj_title] == [
        whole.titles[t] for t in whole.obj_title
    ]


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_parallel_indexing_matches_serial(tmp_path: Path, on_error: str) -> None:
    from ango_torch.export._indexing import index_raw
    from ango_torch.export._read import iter_raw_assets

    raws = _many()
    path = tmp_path / "e.json"
    path.write_text(json.dumps(raws))

    def run(workers: int) -> tuple[ExportIndex, list]:
        with open(path, "rb") as f:
            return index_raw(
                iter_raw_assets(f, "e"),
                "e",
                on_error=on_error,  # type: ignore[arg-type]
                workers=workers,
                batch_bytes=2000,
            )

    (serial, s1), (parallel, s2) = run(1), run(2)
    assert len(parallel) == len(serial) == len(raws) and list(s1) == list(s2) == []
    for i in range(len(serial)):
        assert repr(parallel.asset(i)) == repr(serial.asset(i))
    # Numeric columns are identical; string tables differ in layout (no cross-batch dedup).
    for key in (
        "obj_kind",
        "obj_page",
        "obj_bbox",
        "obj_ring_start",
        "ring_vert",
        "verts",
        "asset_width",
        "snap_obj_start",
        "snap_obj_end",
    ):
        np.testing.assert_array_equal(parallel.arrays[key], serial.arrays[key], err_msg=key)


def test_parallel_indexing_errors_and_skips(tmp_path: Path) -> None:
    from ango_torch.export._indexing import index_raw
    from ango_torch.export._read import iter_raw_assets

    raws = _many()
    raws[7] = {"externalId": "broken.png"}
    path = tmp_path / "e.json"
    path.write_text(json.dumps(raws))
    with open(path, "rb") as f, pytest.raises(ango_torch.ExportFormatError, match=r"broken\.png"):
        index_raw(iter_raw_assets(f, "e"), "e", on_error="raise", workers=2, batch_bytes=2000)
    with open(path, "rb") as f:
        index, skipped = index_raw(
            iter_raw_assets(f, "e"), "e", on_error="skip", workers=2, batch_bytes=2000
        )
    assert len(index) == len(raws) - 1 and [s.index for s in skipped] == [7]


def test_load_export_with_workers(tmp_path: Path) -> None:
    raws = _many()
    path = tmp_path / "e.json"
    path.write_text(json.dumps(raws))
    a = ango_torch.load_export(path, workers=2)
    b = ango_torch.load_export(path, workers=1)
    assert [repr(x) for x in a] == [repr(x) for x in b]


def test_saved_index_is_memory_mapped_and_pickles_as_its_folder(tmp_path: Path) -> None:
    export = ango_torch.load_export(_export())
    export.index.save(tmp_path / "i.index")
    loaded = ExportIndex.load(tmp_path / "i.index")
    assert isinstance(loaded.verts.base, np.memmap) and not loaded.verts.flags.writeable
    data = pickle.dumps(loaded)
    assert len(data) < 200  # the folder's path, not the columns
    clone = pickle.loads(data)
    assert repr(clone.asset(0)) == repr(export.index.asset(0))
    np.testing.assert_array_equal(clone.verts, export.index.verts)


def _die(job: object) -> object:
    import os

    os._exit(3)  # a worker that dies before answering


def test_parallel_indexing_falls_back_when_workers_die(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing

    import ango_torch.export._indexing as ix

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs fork to inject the failure into the workers")
    monkeypatch.setattr(ix, "_context", lambda: multiprocessing.get_context("fork"))
    monkeypatch.setattr(ix, "_work", _die)
    raws = _many()
    path = tmp_path / "e.json"
    path.write_text(json.dumps(raws))
    with pytest.warns(ango_torch.AngoTorchWarning, match="indexing in this process"):
        export = ango_torch.load_export(path, workers=2)
    assert len(export) == len(raws)


def test_persisted_index_of_another_parser_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index saved by a different parser (another schema key) is not reused."""
    import ango_torch.export._indexing as ix

    path = tmp_path / "e.json"
    path.write_text(json.dumps(_export()))
    cache = tmp_path / "cache"
    ango_torch.load_export(path, cache_dir=cache)
    (saved,) = (cache / "index").glob("*.index")
    meta = json.loads(np.load(saved / "meta.npy").tobytes())
    assert meta.get("schema")  # saved with the parser's schema key
    meta["schema"] = "0" * len(meta["schema"])  # as written by another parser version
    np.save(saved / "meta.npy", np.frombuffer(json.dumps(meta).encode(), np.uint8))
    calls = []
    real = ix.asset_columns
    monkeypatch.setattr(ix, "asset_columns", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = ango_torch.load_export(path, cache_dir=cache)
    assert len(calls) == len(_export())  # parsed again, not read from the stale index
    assert json.loads(np.load(saved / "meta.npy").tobytes())["schema"] != "0" * len(meta["schema"])
    assert len(again) == 2


def test_schema_key_follows_the_parser_sources(tmp_path: Path) -> None:
    """The key hashes the index-producing modules' sources: editing one changes it."""
    import shutil

    from ango_torch.export import index

    package = Path(index.__file__).parents[1]  # the ango_torch folder
    assert index.schema_key(package) == index.SCHEMA and len(index.SCHEMA) == 32
    copy = tmp_path / "pkg"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert index.schema_key(copy) == index.SCHEMA
    with open(copy / "export" / "_parse.py", "a") as f:
        f.write("# a changed rule\n")
    assert index.schema_key(copy) != index.SCHEMA


def test_schema_key_covers_every_module_the_indexer_imports() -> None:
    """Every export module that indexing reaches (imports read from the sources with
    ``ast``, transitively from ``_indexing``) is hashed into the schema key."""
    import ast

    from ango_torch.export import _schema

    package = Path(_schema.__file__).parents[1]
    seen, todo = set(), ["export/_indexing.py"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        folder = (package / name).parent
        for node in ast.walk(ast.parse((package / name).read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = folder if node.level == 1 else folder.parent
                parts = (node.module or "").split(".") if node.module else []
                targets = [base.joinpath(*parts)] if parts else []
                targets += [base.joinpath(*parts, a.name) for a in node.names]
                for t in targets:
                    if t.with_suffix(".py").is_file():
                        todo.append(str(t.with_suffix(".py").relative_to(package)))
    in_scope = {n for n in seen if n.startswith("export/") or n == "records.py"}
    assert in_scope - {"export/_archive.py"} <= set(_schema._SCHEMA_MODULES)


_FORK_PROBE = """
import os, sys
import ango_torch.export._indexing as ix
big, mid = 1 << 30, 100 << 20
print(ix._context().get_start_method(), ix.default_workers(big), ix.default_workers(mid))
import torch
torch.set_num_threads(2)
x = torch.randn(1 << 20)
(x * 2).sum()  # an intra-op parallel op: starts the OpenMP pool (native threads)
print(len(os.listdir("/proc/self/task")) > 2, file=sys.stderr)
print(ix._context().get_start_method(), ix.default_workers(big), ix.default_workers(mid))
"""


def _cpus() -> int:
    import os

    # The workers default_workers gives a large file: the CPUs this process may use, <= 4.
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, cpus or 1))


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_no_fork_after_native_threads_started() -> None:
    """Once native (non-Python) threads run, indexing workers are not forked."""
    import multiprocessing
    import subprocess
    import sys

    if "fork" not in multiprocessing.get_all_start_methods() or sys.version_info >= (3, 12):
        pytest.skip("fork is not a default start method here")
    out = subprocess.run(
        [sys.executable, "-c", _FORK_PROBE], capture_output=True, text=True, check=True
    )
    before, after = (line.split() for line in out.stdout.splitlines()[:2])
    # A fresh, single-threaded process: fork is safe, and files from 32 MiB get workers.
    assert before == ["fork", str(_cpus()), str(_cpus())]
    assert out.stderr.strip() == "True"  # the probe really started native threads
    # Then no fork: workers started as fresh interpreters, only for files from 128 MiB.
    assert after[0] in ("forkserver", "spawn") and after[1:] == [str(_cpus()), "1"]


def test_no_fork_once_cuda_or_distributed_is_initialized(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torchrun (CUDA or a process group initialized), indexing never forks; with
    CUDA alone a large file gets started workers, under a process group one process."""
    import sys
    import types

    import ango_torch.export._indexing as ix

    monkeypatch.setattr(ix, "_preload_in_forkserver", lambda: None)  # (this process's server)
    for cuda, dist in ((True, False), (False, True)):
        fake = types.ModuleType("torch")
        fake.cuda = types.SimpleNamespace(is_initialized=lambda v=cuda: v)  # type: ignore[attr-defined]
        fake.distributed = types.SimpleNamespace(  # type: ignore[attr-defined]
            is_available=lambda: True, is_initialized=lambda v=dist: v
        )
        monkeypatch.setitem(sys.modules, "torch", fake)
        assert not ix._fork_ok()
        assert ix._context().get_start_method() != "fork"
        assert ix.default_workers(1 << 30) == (1 if dist else _cpus())
        assert ix.default_workers(100 << 20) == 1  # below PARALLEL_STARTED_MIN_BYTES


_PRELOADED = """
import multiprocessing, sys
from multiprocessing import forkserver
import ango_torch
import ango_torch.export._indexing as ix
ix._fork_ok = lambda: False  # as on Python 3.12+
# As on Python 3.12.8+ / 3.13.1+ (the Pythons here predate it); the package is found
# on the server's default path too (installed; the current directory holds no copy).
ix._server_path_is_callers = lambda version=None: True
multiprocessing.set_forkserver_preload(sys.argv[2].split(",") if sys.argv[2] else [])
export = ango_torch.load_export(sys.argv[1], workers=2, progress_bar=False)
server = forkserver._forkserver
assert server._forkserver_pid is not None, "no forkserver started (workers fell back?)"
with open(f"/proc/{server._forkserver_pid}/maps") as f:
    mapped = f.read()
print(len(export), ",".join(server._preload_modules) or "-", "_multiarray_umath" in mapped)
"""


def _forkserver_here() -> None:
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no forkserver here")
    if not Path("/proc/self/maps").exists():
        pytest.skip("no /proc here")


@pytest.mark.parametrize(
    ("theirs", "listed", "imported"),
    [
        ("json", "json,ango_torch.export._indexing", "True"),  # theirs kept, ours added
        ("", "-", "False"),  # an empty list (preload nothing) left alone
    ],
)
def test_forkserver_workers_fork_with_this_package_imported(
    theirs: str, listed: str, imported: str, tmp_path: Path
) -> None:
    """Workers started by forkserver are forks of a server that imported the indexer
    (numpy's extension is mapped in the server: it is imported nowhere else there), so
    that each does not import the package anew; the caller's own preload list is kept,
    and an empty one left empty.  Reference: the server process's memory map, read
    from /proc (Linux)."""
    import subprocess
    import sys

    _forkserver_here()
    raws, path = _written(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", _PRELOADED, str(path), theirs],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(len(raws)), listed, imported]


_SHADOWED = """
import sys
import ango_torch
import ango_torch.export._indexing as ix
ix._fork_ok = lambda: False  # as on Python 3.12+
export = ango_torch.load_export(sys.argv[1], workers=2, progress_bar=False)
print(len(export), ango_torch.__file__.startswith(sys.argv[2]))
"""


def test_forkserver_never_imports_another_copy_of_the_package(tmp_path: Path) -> None:
    """A copy of ``ango_torch`` in the current directory, which the caller (a script run
    from elsewhere) does not import, is never imported by the forkserver.  Before
    Python 3.12.8 / 3.13.1 the server ignored the caller's ``sys.path`` (CPython
    gh-117378, the reference) and imported its preload list from the current
    directory first: with the indexer in that list its workers ran the other copy
    (found by review, issue 14).  Passes on a Python with the fix too, where the server
    imports from the caller's path."""
    import subprocess
    import sys

    import ango_torch

    _forkserver_here()
    raws, path = _written(tmp_path)
    marker = tmp_path / "imported.txt"
    shadow = tmp_path / "cwd" / "ango_torch"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        f"open({str(marker)!r}, 'a').write('shadow\\n')\nraise ImportError('a shadow copy')\n"
    )
    script = tmp_path / "caller" / "run.py"
    script.parent.mkdir()
    script.write_text(_SHADOWED)
    real = str(Path(ango_torch.__file__).parent)
    out = subprocess.run(
        [sys.executable, str(script), str(path), real],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=shadow.parent,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(len(raws)), "True"]
    assert not marker.exists(), "the forkserver imported the copy in the current directory"


@pytest.mark.parametrize(
    ("version", "callers"),
    [
        ((3, 10, 13), False),
        ((3, 11, 7), False),
        ((3, 12, 7), False),
        ((3, 12, 8), True),
        ((3, 13, 0), False),
        ((3, 13, 1), True),
        ((3, 14, 0), True),
    ],
)
def test_the_forkserver_path_fix_is_known_by_version(
    version: tuple[int, int, int], callers: bool
) -> None:
    """Which Pythons' forkserver imports its preload list from the caller's sys.path:
    CPython gh-117378, fixed in 3.12.8 and 3.13.1 (their changelogs, the reference)."""
    from ango_torch.export import _indexing

    assert _indexing._server_path_is_callers(version) is callers


def test_a_forkserver_that_dies_falls_back_to_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that cannot be started because the forkserver died (it reads EOF on
    its socket, as when a module it preloads raises) makes ``load_export`` index in one
    process with a warning, as other pool failures do, rather than fail with
    EOFError.  Reference: the same export indexed with ``workers=1``."""
    from concurrent.futures import ProcessPoolExecutor

    from ango_torch.export import _indexing

    def dead(*args: object, **kwargs: object) -> None:
        raise EOFError

    _, path = _written(tmp_path)
    expected = ango_torch.load_export(path, workers=1, progress_bar=False).index.arrays
    monkeypatch.setattr(_indexing, "_fork_ok", lambda: False)
    monkeypatch.setattr(_indexing, "_preload_in_forkserver", lambda: None)
    monkeypatch.setattr(ProcessPoolExecutor, "submit", dead)
    with pytest.warns(ango_torch.AngoTorchWarning, match="indexing in this process instead"):
        got = ango_torch.load_export(path, workers=2, progress_bar=False).index.arrays
    assert got.keys() == expected.keys()
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


_UNGUARDED = """
import sys, warnings
warnings.simplefilter("error")
with open(sys.argv[2], "a") as f:
    f.write("ran\\n")  # top-level code without the __main__ guard
before = globals().get("__file__"), globals().get("__spec__")
import ango_torch
import ango_torch.export._indexing as ix
ix._context = lambda: ix._CONTEXTS[sys.argv[3]]  # as where fork is unsafe (Python 3.12+)
export = ango_torch.load_export(sys.argv[1], workers=2, progress_bar=False)
print(len(export), (globals().get("__file__"), globals().get("__spec__")) == before)
"""


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
@pytest.mark.parametrize("how", ["script", "stdin", "module"])
def test_started_workers_do_not_run_the_callers_script(
    how: str, method: str, tmp_path: Path
) -> None:
    """forkserver/spawn workers import this package, not the caller's ``__main__``: a
    script without the ``if __name__ == "__main__":`` guard, one read from stdin, or a
    module run with ``-m`` runs once, and its workers index (no fallback warning, which
    is an error here).  Before, each worker ran the script's top-level code again and
    failed."""
    import multiprocessing
    import subprocess
    import sys

    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} here")
    raws, path = _written(tmp_path)
    marker = tmp_path / "ran.txt"
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "train.py").write_text(_UNGUARDED)
    cmd = {
        "script": [str(tmp_path / "pkg" / "train.py")],
        "stdin": ["-"],
        "module": ["-m", "pkg.train"],
    }[how]
    out = subprocess.run(
        [sys.executable, *cmd, str(path), str(marker), method],
        input=_UNGUARDED if how == "stdin" else None,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(len(raws)), "True"]  # (__main__ restored after)
    assert marker.read_text() == "ran\n"  # the script's top level ran once


def test_threads_starting_workers_at_once_restore_main(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads' hidings overlapping (A hides, B hides, A ends, B ends) leave
    ``__main__`` as it was; each saving what it found lost ``__file__`` for good."""
    import sys
    import types

    import ango_torch.export._indexing as ix

    main = types.ModuleType("__main__")
    main.__file__ = "/x/train.py"
    monkeypatch.setitem(sys.modules, "__main__", main)
    a, b = ix._main_hidden(), ix._main_hidden()
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)
    assert not hasattr(main, "__file__")  # B's start is still running
    b.__exit__(None, None, None)
    assert main.__file__ == "/x/train.py" and main.__dict__["__spec__"] is None


def _refusing_context() -> Any:
    import multiprocessing.context as mpc

    class Process(mpc.SpawnProcess):
        def start(self) -> None:
            raise PermissionError(1, "Operation not permitted")  # a sandbox's socket

    class Context(mpc.SpawnContext):
        pass

    Context.Process = Process  # type: ignore[assignment]
    return Context()


def test_workers_that_cannot_start_fall_back_to_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker (or the pool) refused by the OS gives the one-process index and a
    warning, not the OSError."""
    import ango_torch.export._indexing as ix

    raws = _many(8)
    path = tmp_path / "e.json"
    path.write_text(json.dumps(raws))
    monkeypatch.setattr(ix, "_context", _refusing_context)
    with pytest.warns(ango_torch.AngoTorchWarning, match="PermissionError"):
        assert len(ango_torch.load_export(path, workers=2)) == len(raws)

    def no_pool(*args: Any, **kwargs: Any) -> Any:
        raise OSError(38, "Function not implemented")  # no /dev/shm semaphores

    monkeypatch.setattr(ix, "ProcessPoolExecutor", no_pool)
    with pytest.warns(ango_torch.AngoTorchWarning, match="Function not implemented"):
        assert len(ango_torch.load_export(path, workers=2)) == len(raws)


def test_forked_workers_by_default_from_32_mib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where fork is safe, files from PARALLEL_MIN_BYTES (32 MiB: where two forked
    workers beat one process on 2 cores, benchmarks/index.py) get workers; smaller ones
    and files of unknown size are indexed in-process."""
    import ango_torch.export._indexing as ix

    monkeypatch.setattr(ix, "_fork_ok", lambda: True)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert ix.PARALLEL_MIN_BYTES == 32 << 20
    assert ix.default_workers(32 << 20) == _cpus()
    assert ix.default_workers((32 << 20) - 1) == 1
    assert ix.default_workers(None) == 1
    monkeypatch.setattr(ix, "_fork_ok", lambda: False)  # started workers: from 128 MiB
    assert ix.default_workers(100 << 20) == 1


def test_no_workers_under_torchrun_before_its_process_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ango_torch.export._indexing as ix

    monkeypatch.setattr(ix, "_fork_ok", lambda: True)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert ix.default_workers(1 << 30) == _cpus()
    monkeypatch.setenv("WORLD_SIZE", "4")  # set by torchrun for every rank
    assert ix.default_workers(1 << 30) == 1


def test_main_hidden_restores_main_also_on_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    import ango_torch.export._indexing as ix

    main = types.ModuleType("__main__")
    main.__file__ = "/x/train.py"
    spec = main.__spec__ = types.SimpleNamespace(name="train")  # type: ignore[assignment]
    monkeypatch.setitem(sys.modules, "__main__", main)
    with pytest.raises(KeyError), ix._main_hidden():
        assert not hasattr(main, "__file__") and main.__spec__ is None
        raise KeyError
    assert main.__file__ == "/x/train.py" and main.__spec__ is spec
    bare = types.ModuleType("__main__")  # a REPL's: no __file__
    del bare.__spec__
    monkeypatch.setitem(sys.modules, "__main__", bare)
    with ix._main_hidden():
        pass
    assert not hasattr(bare, "__file__") and "__spec__" not in bare.__dict__


def test_no_workers_from_a_daemonic_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A DataLoader worker (daemonic) may not start processes: it indexes in one."""
    import multiprocessing
    import types

    import ango_torch.export._indexing as ix

    monkeypatch.setattr(ix, "_fork_ok", lambda: True)
    assert ix.default_workers(1 << 30) == _cpus()
    fake = types.SimpleNamespace(daemon=True)
    monkeypatch.setattr(multiprocessing, "current_process", lambda: fake)
    assert ix.default_workers(1 << 30) == 1


def _default_workers_here() -> int:
    import ango_torch.export._indexing as ix

    return ix.default_workers(1 << 30)


def test_no_workers_by_default_in_a_pool_worker() -> None:
    """A ProcessPoolExecutor worker (not daemonic since Python 3.9) shares the CPUs with
    its siblings: by default it indexes in one process, as joblib's loky does, where
    each of N workers started up to 4 indexers before (found by review)."""
    import concurrent.futures
    import multiprocessing

    import ango_torch.export._indexing as ix

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("starts the pool by fork")
    assert not ix._child()
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        assert pool.submit(_default_workers_here).result(timeout=60) == 1
    out = ctx.Queue()
    proc = ctx.Process(target=_put_default_workers, args=(out,))  # a plain child too
    proc.start()
    assert out.get(timeout=60) == 1
    proc.join(timeout=60)


def _put_default_workers(out: Any) -> None:
    out.put(_default_workers_here())


def _index_in_daemon(path: str, out: Any) -> None:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            n: Any = len(ango_torch.load_export(path, workers=2, progress_bar=False))
        except Exception as exc:  # reported to the test, which fails on it
            n = f"{type(exc).__name__}: {exc}"
    out.put((n, [str(w.message) for w in caught]))


def test_workers_asked_for_in_a_daemonic_process_index_in_it(tmp_path: Path) -> None:
    """A daemonic process (a DataLoader worker) may not start processes: asked for
    ``workers=2`` there, load_export warns and indexes in it (multiprocessing raised
    ``AssertionError: daemonic processes are not allowed to have children`` before)."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("starts the daemonic process by fork")
    raws = _many(8)
    path = tmp_path / "e.json"
    path.write_text(json.dumps(raws))
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    proc = ctx.Process(target=_index_in_daemon, args=(str(path), out), daemon=True)
    proc.start()
    n, messages = out.get(timeout=60)
    proc.join(timeout=60)
    assert n == len(raws)
    assert len(messages) == 1 and "daemonic process" in messages[0]


def test_no_started_workers_by_default_in_a_frozen_or_embedded_interpreter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A frozen app (PyInstaller) re-runs itself in spawned workers without
    ``freeze_support()``; an embedding one has no ``sys.executable`` to start."""
    import sys

    import ango_torch.export._indexing as ix

    monkeypatch.setattr(ix, "_fork_ok", lambda: False)
    assert ix.default_workers(1 << 30) == _cpus()
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert ix.default_workers(1 << 30) == 1
    monkeypatch.delattr(sys, "frozen")
    monkeypatch.setattr(sys, "executable", "")
    assert ix.default_workers(1 << 30) == 1
    monkeypatch.setattr(ix, "_fork_ok", lambda: True)  # forked workers need neither
    assert ix.default_workers(1 << 30) == _cpus()
