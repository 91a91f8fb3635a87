"""WebDataset shards (``write_shards``) and the streaming ``AngoShards`` dataset.

The references: ``AngoDataset`` on the same export (the issue's definition of a right
target), the image files on disk (byte equality), the ``webdataset`` library's own
reader, and hand-counted slot plans.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from ango_torch import AngoDataset
from ango_torch.assets.fetch import AssetStore
from ango_torch.datasets.shard_writer import FORMAT_VERSION, write_shards
from ango_torch.datasets.shards import AngoShards

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
EXPORT, ONTOLOGY, IMAGES = DATA / "sample_export.json", DATA / "ontology.json", DATA / "images"


def _sample_shards(out: Path, size: str = "300KB") -> dict[str, Any]:
    return write_shards(EXPORT, out, root=IMAGES, ontology=ONTOLOGY, shard_size=size)


def many_assets(tmp_path: Path, n: int) -> tuple[Path, Path]:
    """An export of ``n`` image assets (copies of the sample's, no brush) and its root."""
    records = json.loads(EXPORT.read_text())
    root = tmp_path / "images"
    root.mkdir()
    out = []
    for i in range(n):
        rec = json.loads(json.dumps(records[i % len(records)]))
        name = f"a{i:03d}_{rec['externalId']}"
        shutil.copy(IMAGES / rec["externalId"], root / name)
        rec["externalId"], rec["assetId"] = name, f"id{i:03d}"
        rec["task"]["brushDataUrl"] = ""
        rec["task"]["stageHistory"] = []
        out.append(rec)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(out))
    return path, root


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return bool(torch.equal(a, b))
    return bool(a == b)


@pytest.mark.parametrize("task", ["detection", "instance", "semantic"])
def test_shard_samples_equal_the_datasets(tmp_path: Path, task: str) -> None:
    _sample_shards(tmp_path)
    ds = AngoDataset(EXPORT, task=task, root=IMAGES, ontology=ONTOLOGY)
    shards = AngoShards(tmp_path / "index.json", task=task, shuffle=False)
    assert shards.classes == ds.classes
    got = list(shards)
    assert len(got) == len(ds) == 3
    for i, (image, target) in enumerate(got):
        ref_image, ref_target = ds[i]
        assert torch.equal(image, ref_image)
        assert type(image) is type(ref_image)
        assert target.keys() == ref_target.keys()
        for key in target:
            assert _equal(target[key], ref_target[key]), (task, i, key)


# webdataset leaves its last shard's file to the garbage collector
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_webdataset_reads_the_shards(tmp_path: Path) -> None:
    """The webdataset library itself reads every sample; images are the original bytes."""
    wds = pytest.importorskip("webdataset")
    index = _sample_shards(tmp_path)
    urls = [str(tmp_path / s["name"]) for s in index["shards"]]
    samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))
    assert [s["__key__"] for s in samples] == ["00000000", "00000001", "00000002"]
    for s in samples:
        record = json.loads(s["json"])
        assert s["png"] == (IMAGES / record["externalId"]).read_bytes()
        assert record["asset"] == f"{s['__key__']}.png"
    # coffee.png has the sample's one brush mask (examples/data/images/_brush)
    (brush,) = [s for s in samples if "brush.png" in s]
    assert json.loads(brush["json"])["externalId"] == "coffee.png"
    assert brush["brush.png"] == next((IMAGES / "_brush").iterdir()).read_bytes()


def test_same_export_gives_byte_identical_shards(tmp_path: Path) -> None:
    a, b = _sample_shards(tmp_path / "a"), _sample_shards(tmp_path / "b")
    assert a == b
    names = sorted(str(p.relative_to(tmp_path / "a")) for p in (tmp_path / "a").rglob("*.*"))
    tars = ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert names == sorted([f"index/{t}.npz" for t in tars] + ["index.json", *tars])
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_interrupted_write_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clean = _sample_shards(tmp_path / "clean")
    fetched: list[str] = []
    real = AssetStore.fetch

    def flaky(self: AssetStore, **kw: Any) -> bytes:
        if kw.get("kind") == "image":
            fetched.append(kw["external_id"])
            # The third image: shard 0 is written; shard 1 (astronaut) closes only when
            # the next sample would overflow it, i.e. after this fetch.
            if len(fetched) == 3 and fail:
                raise OSError("network down")
        return real(self, **kw)

    monkeypatch.setattr(AssetStore, "fetch", flaky)
    fail = True
    with pytest.raises(OSError, match="network down"):
        _sample_shards(tmp_path / "out")
    assert not (tmp_path / "out" / "index.json").exists()
    progress = json.loads((tmp_path / "out" / "_progress.json").read_text())
    assert [s["name"] for s in progress["shards"]] == ["shard-000000.tar"]
    fail, fetched[:] = False, []
    assert _sample_shards(tmp_path / "out") == clean
    assert fetched == ["astronaut.png", "coffee.png"]  # shard 0's image is not fetched again
    for name in ["index.json", "shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]:
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()
        if name != "index.json":
            name = f"index/{name}.npz"
            assert (tmp_path / "out" / name).read_bytes() == (
                tmp_path / "clean" / name
            ).read_bytes()
    assert not (tmp_path / "out" / "_progress.json").exists()


def _fake(counts: list[int], tmp_path: Path) -> AngoShards:
    index = {
        "format_version": FORMAT_VERSION,
        "samples": sum(counts),
        "shards": [{"name": f"s{i}", "samples": c, "bytes": 0} for i, c in enumerate(counts)],
        "tasks": {
            t: {"classes": ["__background__"], "brush_colors": {}}
            for t in ("detection", "instance", "semantic")
        },
    }
    (tmp_path / "index.json").write_text(json.dumps(index))
    return AngoShards(tmp_path / "index.json", task="detection", seed=5)


def test_plan_splits_the_epoch_into_equal_disjoint_runs(tmp_path: Path) -> None:
    # 3 + 4 + 4 = 11 samples over 2 ranks × 2 workers: 5 per rank (11 // 2), worker
    # parts 3 + 2; the last 11 % 2 = 1 sample of the epoch's order is left out.
    shards = _fake([3, 4, 4], tmp_path)
    counts = [3, 4, 4]
    for epoch in range(4):
        shards.set_epoch(epoch)
        order = shards.shard_order()
        assert sorted(order) == [0, 1, 2]
        epoch_list = [(s, j) for s in order for j in range(counts[s])]
        seen = []
        for rank in range(2):
            per_rank = []
            for worker in range(2):
                runs = shards.plan(rank, 2, worker, 2)
                part = [(s, j) for s, lo, hi in runs for j in range(lo, hi)]
                assert len(part) == (3, 2)[worker]
                per_rank += part
            assert len(per_rank) == 5
            seen += per_rank
        assert seen == epoch_list[:10]
    orders = set()
    for epoch in range(6):
        shards.set_epoch(epoch)
        orders.add(tuple(shards.shard_order()))
    assert len(orders) > 1  # shuffled per epoch


def test_state_dict_resumes_mid_epoch(tmp_path: Path) -> None:
    export, root = many_assets(tmp_path, 7)
    write_shards(export, tmp_path / "sh", root=root, shard_size="400KB")
    ds = AngoShards(tmp_path / "sh" / "index.json", task="detection", seed=1, buffer=3)
    ds.set_epoch(2)
    full = [t["image_id"] for _, t in ds]
    assert sorted(full) == list(range(7))
    it = iter(ds)
    first = [next(it)[1]["image_id"] for _ in range(3)]
    state = ds.state_dict()
    assert state == {"epoch": 2, "yielded": 3}
    again = AngoShards(tmp_path / "sh" / "index.json", task="detection", seed=1, buffer=3)
    again.load_state_dict(state)
    rest = [t["image_id"] for _, t in again]
    assert first + rest == full


@pytest.mark.slow
def test_torchrun_two_ranks_two_workers_epoch_and_resume(tmp_path: Path) -> None:
    """2 ranks × 2 workers (gloo, CPU) with torchdata's StatefulDataLoader.

    Reference counts by hand: 11 assets, 2 ranks → 5 each (11 // 2), 1 left out.
    """
    pytest.importorskip("torchdata")
    export, root = many_assets(tmp_path, 11)
    index = write_shards(export, tmp_path / "sh", root=root, shard_size="400KB")
    assert index["samples"] == 11 and len(index["shards"]) > 4
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    script = Path(__file__).with_name("_shards_ddp.py")
    cmd = [torchrun or "torchrun", "--standalone", "--nproc_per_node=2", str(script)]
    cmd += [str(tmp_path / "sh" / "index.json"), str(tmp_path), "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    assert [len(x["full"]) for x in ranks] == [5, 5] == ranks[0]["counts"]
    union = ranks[0]["full"] + ranks[1]["full"]
    assert len(set(union)) == 10 and set(union) <= set(range(11))  # each once, 1 left out
    for x in ranks:
        assert len(x["first"]) == 2  # k = 1 batch of 2
        assert sorted(x["first"] + x["rest"]) == sorted(x["full"])  # exactly the rest
    # targets of the streamed samples equal AngoDataset's (same asset, same image_id)
    ds = AngoDataset(export, task="detection", root=root)
    shards = AngoShards(tmp_path / "sh" / "index.json", task="detection", seed=7)
    for image, target in shards:
        ref_image, ref_target = ds[target["image_id"]]
        assert torch.equal(image, ref_image)
        assert all(_equal(target[k], ref_target[k]) for k in ref_target)


def test_cli_shard_writes_what_write_shards_writes(tmp_path: Path) -> None:
    from ango_torch.cli import main

    argv = ["shard", str(EXPORT), "--out", str(tmp_path / "cli"), "--root", str(IMAGES)]
    argv += ["--ontology", str(ONTOLOGY), "--shard-size", "300KB"]
    assert main(argv) == 0
    _sample_shards(tmp_path / "py")
    for name in ["index.json", "shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]:
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "py" / name).read_bytes()


def test_shard_size_units() -> None:
    from ango_torch.datasets.shard_writer import parse_size

    # by hand: 512 × 10**6, 64 × 2**20, 1.5 × 10**9
    assert parse_size("512MB") == 512_000_000
    assert parse_size("64MiB") == 67_108_864
    assert parse_size("1.5GB") == 1_500_000_000
    with pytest.raises(ValueError, match="shard size"):
        parse_size("lots")


def test_fsspec_destination_and_source(tmp_path: Path) -> None:
    """Shards written to and read from an fsspec URL (memory://) equal local ones."""
    import fsspec

    local = _sample_shards(tmp_path)
    remote = write_shards(
        EXPORT, "memory://ango-shards-test", root=IMAGES, ontology=ONTOLOGY, shard_size="300KB"
    )
    assert remote == local
    fs = fsspec.filesystem("memory")
    for s in local["shards"]:
        assert fs.cat(f"/ango-shards-test/{s['name']}") == (tmp_path / s["name"]).read_bytes()
    shards = AngoShards("memory://ango-shards-test/index.json", task="detection", shuffle=False)
    assert [t["asset_id"] for _, t in shards] == [
        t["asset_id"]
        for _, t in AngoShards(tmp_path / "index.json", task="detection", shuffle=False)
    ]
    # cache_dir keeps local copies: once read, the shards are read without the source
    cached = AngoShards(
        "memory://ango-shards-test/index.json",
        task="detection",
        shuffle=False,
        cache_dir=tmp_path / "cache",
    )
    first = [t["asset_id"] for _, t in cached]
    for s in local["shards"]:
        fs.rm(f"/ango-shards-test/{s['name']}")
    assert [t["asset_id"] for _, t in cached] == first
    fs.rm("/ango-shards-test", recursive=True)


def test_not_a_shard_index_is_refused(tmp_path: Path) -> None:
    from ango_torch.errors import ExportFormatError

    (tmp_path / "index.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(ExportFormatError, match=f"format_version {FORMAT_VERSION}"):
        AngoShards(tmp_path / "index.json", task="detection")
    shards = _fake([2], tmp_path)
    with pytest.raises(ValueError, match="task must be one of"):
        AngoShards(tmp_path / "index.json", task="keypoints")  # type: ignore[arg-type]
    assert len(shards) == 2  # one process: the whole epoch


@pytest.mark.parametrize("task", ["detection", "semantic"])
def test_stage_shards_equal_the_stage_dataset(tmp_path: Path, task: str) -> None:
    """Stage "Label" of the sample (its brush masks removed: the stage's mask is not
    bundled, and the test runs offline)."""
    records = json.loads(EXPORT.read_text())
    for rec in records:
        rec["task"]["brushDataUrl"] = ""
        for snap in rec["task"]["stageHistory"]:
            snap["brushDataUrl"] = ""
    export = tmp_path / "export.json"
    export.write_text(json.dumps(records))
    write_shards(export, tmp_path, root=IMAGES, ontology=ONTOLOGY, stage="Label")
    ds = AngoDataset(export, task=task, root=IMAGES, ontology=ONTOLOGY, stage="Label")
    answer = AngoDataset(export, task=task, root=IMAGES, ontology=ONTOLOGY)
    key = "boxes" if task == "detection" else "mask"
    # the stage differs from the answer, so the test can tell them apart
    assert any(not _equal(ds[i][1][key], answer[i][1][key]) for i in range(3))
    shards = AngoShards(tmp_path / "index.json", task=task, shuffle=False)
    got = list(shards)
    assert len(got) == len(ds) == 3
    for i, (image, target) in enumerate(got):
        ref_image, ref_target = ds[i]
        assert torch.equal(image, ref_image)
        for key in ref_target:
            assert _equal(target[key], ref_target[key]), (task, i, key)
    with pytest.raises(ValueError, match="stage 'Label'"):
        AngoShards(tmp_path / "index.json", task=task, stage=None)


def test_reading_uses_the_stored_index_not_the_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Targets come from index/<shard>.npz (parsed once by the writer): with the export
    parser disabled, the samples still equal AngoDataset's (the reference)."""
    import ango_torch.export.load as load

    _sample_shards(tmp_path)
    ds = AngoDataset(EXPORT, task="instance", root=IMAGES, ontology=ONTOLOGY)

    def no_parsing(*args: Any, **kw: Any) -> Any:
        raise AssertionError("AngoShards parsed a stored record")

    monkeypatch.setattr(load, "index_dicts", no_parsing)
    got = list(AngoShards(tmp_path / "index.json", task="instance", shuffle=False))
    assert len(got) == 3
    for i, (image, target) in enumerate(got):
        assert torch.equal(image, ds[i][0])
        assert all(_equal(target[k], v) for k, v in ds[i][1].items())


def test_a_damaged_shard_index_is_refused(tmp_path: Path) -> None:
    from ango_torch.errors import ExportFormatError

    _sample_shards(tmp_path)
    (tmp_path / "index" / "shard-000001.tar.npz").write_bytes(b"not an npz")
    shards = AngoShards(tmp_path / "index.json", task="detection", shuffle=False)
    with pytest.raises(ExportFormatError, match=r"shard-000001\.tar\.npz.*unreadable"):
        list(shards)


def test_a_truncated_shard_is_refused(tmp_path: Path) -> None:
    """The reader parses ustar headers itself: a shard cut mid-member names the shard."""
    from ango_torch.errors import ExportFormatError

    _sample_shards(tmp_path)
    path = tmp_path / "shard-000000.tar"
    path.write_bytes(path.read_bytes()[:2048])  # header + part of the first image
    shards = AngoShards(tmp_path / "index.json", task="detection", shuffle=False)
    with pytest.raises(ExportFormatError, match=r"shard-000000\.tar: truncated"):
        list(shards)


def test_split_by_writes_leak_free_splits(tmp_path: Path) -> None:
    """--split-by metadata:site: each split's shards hold the assets ango_torch.split puts
    there (the reference: the split module's own assignment), no site in two splits (by
    hand: the site of each asset), and samples equal AngoDataset's (same sample index)."""
    from ango_torch import split

    export, root = many_assets(tmp_path, 12)
    records = json.loads(export.read_text())
    for i, rec in enumerate(records):
        rec.setdefault("metadata", {})["site"] = f"s{i % 4}"
    export.write_text(json.dumps(records))
    fractions = {"train": 0.5, "val": 0.5}
    top = write_shards(
        export, tmp_path / "sh", root=root, split_by="metadata:site", fractions=fractions, seed=1
    )
    assert json.loads((tmp_path / "sh" / "splits.json").read_text()) == top
    ds = AngoDataset(export, task="detection", root=root)
    ref = split(ds, fractions, by="metadata:site", seed=1)
    assert sorted(top["splits"]) == ["train", "val"]
    sites: dict[str, set[str]] = {}
    for name, subset in ref.items():
        entry = top["splits"][name]
        assert entry["index"] == f"{name}/index.json"
        assert entry["samples"] == entry["assets"] == len(subset.indices)
        shards = AngoShards(tmp_path / "sh" / entry["index"], task="detection", shuffle=False)
        assert shards.index["split"]["name"] == name
        got = list(shards)
        assert [t["image_id"] for _, t in got] == list(subset.indices)
        for image, target in got:
            ref_image, ref_target = ds[target["image_id"]]
            assert torch.equal(image, ref_image)
            assert all(_equal(target[k], v) for k, v in ref_target.items())
        sites[name] = {f"s{i % 4}" for i in subset.indices}
    assert sum(len(s.indices) for s in ref.values()) == 12
    assert sites["train"] and sites["val"] and not sites["train"] & sites["val"]  # none in both

    from ango_torch.cli import main

    argv = ["shard", str(export), "--out", str(tmp_path / "cli"), "--root", str(root)]
    argv += ["--split-by", "metadata:site", "--fractions", "train=0.5,val=0.5", "--seed", "1"]
    assert main(argv) == 0
    for name in ["splits.json", "train/index.json", "val/shard-000000.tar"]:
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "sh" / name).read_bytes()
    with pytest.raises(ValueError, match="split name"):
        write_shards(export, tmp_path / "bad", root=root, split_by="asset", fractions={"a/b": 1})


def test_multi_page_assets_are_sharded_one_sample_per_page(tmp_path: Path) -> None:
    """A 3-page asset annotated on pages 0 and 2 gives 2 samples (AngoDataset's, the
    reference), kept in one shard even when the shard size would split them; a video
    asset is left out and listed in ``skipped``."""
    from builders import SQUARE, make_asset, make_polygon, write_images

    one, two = make_asset([make_polygon(SQUARE)]), make_asset([make_polygon(SQUARE)])
    paged = make_asset(
        [make_polygon(SQUARE, page=0), make_polygon(SQUARE, page=2), make_polygon(SQUARE, page=2)]
    )
    paged["dataset"] = ["https://x/p0.png", "https://x/p1.png", "https://x/p2.png"]
    root = tmp_path / "images"
    write_images(root, [one, two])
    write_images(root / f"{paged['externalId']}.pages", [{"externalId": str(p)} for p in range(3)])
    clip = make_asset([make_polygon(SQUARE, page=0)], external_id="clip.webm")  # a video
    assets = [one, paged, two, clip]
    index = write_shards(assets, tmp_path / "sh", root=root, shard_size="1KB")
    ds = AngoDataset(assets, task="instance", root=root)
    assert len(ds) == 5 and index["samples"] == 4  # the video's one frame sample is not kept
    assert index["skipped"] == [{"index": 3, "asset": "clip.webm", "reason": "video asset"}]
    assert [s["samples"] for s in index["shards"]] == [1, 2, 1]  # the pages stay together
    got = list(AngoShards(tmp_path / "sh" / "index.json", task="instance", shuffle=False))
    assert [t["image_id"] for _, t in got] == [0, 1, 2, 3]
    assert [len(t["labels"]) for _, t in got] == [1, 1, 2, 1]  # by hand: objects per page
    for image, target in got:
        ref_image, ref_target = ds[target["image_id"]]
        assert torch.equal(image, ref_image)
        assert all(_equal(target[k], v) for k, v in ref_target.items())
    tar = (tmp_path / "sh" / "shard-000001.tar").read_bytes()
    assert (root / f"{paged['externalId']}.pages" / "2").read_bytes() in tar  # page 2's bytes


def _held_while_writing(tmp_path: Path, n: int, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """The most Python-traced bytes (tracemalloc; numpy buffers included) held when an
    image is about to be fetched, while ``n`` assets are written as one shard, and that
    shard's size.  (Held bytes, not the peak: reading a local file briefly reserves its
    size cap, 1 GB, which is never touched.)"""
    import tracemalloc

    (tmp_path / f"n{n}").mkdir()
    export, root = many_assets(tmp_path / f"n{n}", n)
    held: list[int] = []
    real = AssetStore.fetch

    def fetch(self: AssetStore, **kw: Any) -> bytes:
        held.append(tracemalloc.get_traced_memory()[0])
        return real(self, **kw)

    monkeypatch.setattr(AssetStore, "fetch", fetch)
    tracemalloc.start()
    try:
        index = write_shards(export, tmp_path / f"sh{n}", root=root, shard_size="1GB")
    finally:
        tracemalloc.stop()
    assert len(index["shards"]) == 1 and len(held) == n
    return max(held), index["shards"][0]["bytes"]


def test_the_writer_streams_a_shard_instead_of_holding_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writing 4N assets into one shard holds little more memory than writing N: each
    sample goes to the file as it comes.  Reference: the shard's own size (index.json's
    ``bytes``): a writer that kept the shard's samples until it closes would hold about
    the 9 extra samples' bytes more by the last fetch; the streaming one holds their
    records' JSON only (the sample images are ~20× larger than their records)."""
    small, small_bytes = _held_while_writing(tmp_path, 3, monkeypatch)
    big, big_bytes = _held_while_writing(tmp_path, 12, monkeypatch)
    extra = big_bytes - small_bytes  # 9 more samples: about 4 MB of images
    assert extra > 3_000_000
    assert big - small < 0.25 * extra, (big, small, extra)
