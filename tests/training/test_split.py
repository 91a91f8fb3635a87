"""ango_torch.split, AngoDataset(batches=, where=) and ``ango-torch split``.

Expected values come from the raw asset dicts the tests build (their ``batches``,
``metadata`` and ``externalId``), never from the package's own index or report.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from builders import make_asset, make_box, make_polygon
from torch.utils.data import Subset

import ango_torch
from ango_torch.cli import main

SQUARE = [[1, 1], [6, 1], [6, 5], [1, 5]]
TITLES = ("car", "person", "bike")


def _asset(i: int, *, tag: str = "") -> dict[str, Any]:
    """Asset ``i``: batches, a ``video`` metadata key (missing on every 9th), and every
    4th a 3-page asset annotated on pages 0 and 2 (two samples)."""
    pages = i % 4 == 0
    title = TITLES[i % 3]
    tools = [make_polygon(SQUARE, title, **({"page": 0} if pages else {}))]
    if pages:
        tools.append(make_box(2, 2, 4, 3, "person", page=2))
    a = make_asset(tools, external_id=f"{tag}img_{i:03d}.png")
    a["batches"] = [f"{tag}b{i % 5}"] if i % 11 else []
    if i == 7:
        a["batches"] = ["b0", "b1"]  # links batches b0 and b1 into one group
    if i % 9:
        a["metadata"]["video"] = f"{tag}vid{i % 6}"
    if pages:
        a["dataset"] = [f"https://x/{tag}{i}_{p}.png" for p in range(3)]
    return a


def _export(n: int = 40, tag: str = "") -> list[dict[str, Any]]:
    return [_asset(i, tag=tag) for i in range(n)]


def _site(asset: ango_torch.Asset) -> str:
    return asset.external_id[-5]  # last digit of the number: 10 groups


BY_KINDS = ["asset", "video", "batch", "metadata:video", _site]


def _raw_groups(raw: dict[str, Any], by: Any) -> set[str]:
    """The group values of a raw asset, read from the dict the test built."""
    if by in ("asset", "video"):
        return {raw["externalId"]}
    if by == "batch":
        return {"batch:" + b for b in raw["batches"]} or {raw["externalId"]}
    if by == "metadata:video":
        return {"video:" + raw["metadata"]["video"]} if "video" in raw["metadata"] else set()
    return {"site:" + raw["externalId"][-5]}


FRACTIONS = {"train": 0.5, "val": 0.3, "test": 0.2}


@pytest.mark.parametrize("by", BY_KINDS, ids=lambda b: b if isinstance(b, str) else "callable")
def test_no_group_straddles_a_split_dataset_and_export(by: Any) -> None:
    raw = _export()
    ds = ango_torch.AngoDataset(raw, task="detection")
    out = ango_torch.split(ds, FRACTIONS, by=by, seed=3)
    assert isinstance(out, dict) and list(out) == list(FRACTIONS)
    seen: list[int] = []
    owner: dict[str, str] = {}
    for name, subset in out.items():
        assert isinstance(subset, Subset) and subset.dataset is ds
        seen += list(subset.indices)
        for i in subset.indices:
            for g in _raw_groups(raw[ds.asset_index(i)], by):
                assert owner.setdefault(g, name) == name, f"{g} in {owner[g]} and {name}"
    # every sample once: 40 assets, 10 of them (0, 4, ..., 36) with two annotated pages
    assert sorted(seen) == list(range(50))
    assert len(ds) == 50
    # the export form: asset positions, same sides
    lists = ango_torch.split(raw, FRACTIONS, by=by, seed=3)
    assert sorted(i for lst in lists.values() for i in lst) == list(range(40))
    for name, subset in out.items():
        assert sorted({ds.asset_index(i) for i in subset.indices}) == lists[name]


@pytest.mark.parametrize("by", BY_KINDS, ids=lambda b: b if isinstance(b, str) else "callable")
def test_adding_ten_percent_new_assets_moves_no_existing_asset(by: Any) -> None:
    base = _export(40)
    grown = list(base)
    rng = random.Random(0)
    for new in _export(4, tag="new"):  # 10% more, inserted anywhere
        grown.insert(rng.randrange(len(grown) + 1), new)
    before = ango_torch.split(base, FRACTIONS, by=by, seed=1)
    after = ango_torch.split(grown, FRACTIONS, by=by, seed=1)
    side_before = {base[a]["externalId"]: n for n, lst in before.items() for a in lst}
    side_after = {grown[a]["externalId"]: n for n, lst in after.items() for a in lst}
    assert len(side_after) == 44
    assert {k: side_after[k] for k in side_before} == side_before
    # same export and seed: the same lists; the seed matters
    assert ango_torch.split(base, FRACTIONS, by=by, seed=1) == before


def test_the_seed_changes_the_split_and_fractions_hold_on_many_assets() -> None:
    raw = [make_asset([make_polygon(SQUARE)]) for _ in range(1000)]
    a = ango_torch.split(raw, {"train": 0.8, "val": 0.2}, seed=0)
    b = ango_torch.split(raw, {"train": 0.8, "val": 0.2}, seed=1)
    assert a != b
    # a uniform hash: binomial(1000, 0.8), sd 12.6; ±50 is four standard deviations
    assert abs(len(a["train"]) - 800) <= 50 and len(a["train"]) + len(a["val"]) == 1000


def test_report_counts_are_hand_counted() -> None:
    # batch x: A (2 car, 1 person) and B (1 car); batch y: C (1 person) and D, a 2-page
    # asset with a bike on each page (2 samples).  Counted by hand per batch group:
    a = make_asset([make_polygon(SQUARE), make_polygon(SQUARE), make_box(2, 2, 3, 3, "person")])
    b = make_asset([make_polygon(SQUARE)])
    c = make_asset([make_box(1, 1, 3, 3, "person")])
    d = make_asset([make_polygon(SQUARE, "bike", page=0), make_polygon(SQUARE, "bike", page=1)])
    d["dataset"] = ["https://x/d0.png", "https://x/d1.png"]
    for asset, batch in ((a, "x"), (b, "x"), (c, "y"), (d, "y")):
        asset["batches"] = [batch]
    expected = {
        "x": {"groups": 1, "assets": 2, "samples": 2, "objects": 4,
              "classes": {"car": 3, "person": 1}},
        "y": {"groups": 1, "assets": 2, "samples": 3, "objects": 3,
              "classes": {"bike": 2, "person": 1}},
    }  # fmt: skip
    ds = ango_torch.AngoDataset([a, b, c, d], task="detection")
    for seed in range(4):
        out = ango_torch.split(ds, {"train": 0.5, "val": 0.5}, by="batch", seed=seed)
        side = {"x": "train" if 0 in out["train"].indices else "val"}
        side["y"] = "train" if 2 in out["train"].indices else "val"
        for name in ("train", "val"):
            want: dict[str, Any] = {
                "groups": 0, "assets": 0, "samples": 0, "objects": 0, "classes": Counter()
            }  # fmt: skip
            for batch in ("x", "y"):
                if side[batch] == name:
                    for k, v in expected[batch].items():
                        want[k] = want[k] + (Counter(v) if k == "classes" else v)
            want["classes"] = dict(sorted(want["classes"].items()))
            assert out.report.splits[name].to_dict() == want


def test_stratify_splits_every_class_in_the_fractions() -> None:
    # 50 car-only assets and 10 with a bike: 0.8/0.2 of each by hand is 40/10 and 8/2
    cars = [make_asset([make_polygon(SQUARE)]) for _ in range(50)]
    bikes = [make_asset([make_polygon(SQUARE), make_polygon(SQUARE, "bike")]) for _ in range(10)]
    raw = cars + bikes
    for seed in range(5):
        out = ango_torch.split(raw, {"train": 0.8, "val": 0.2}, seed=seed, stratify=True)
        val = set(out["val"])
        assert len(val & set(range(50))) == 10 and len(val & set(range(50, 60))) == 2
        assert out.report.splits["val"].classes["bike"] == 2
        assert out.report.stratify


def test_assets_without_the_key_are_groups_of_their_own() -> None:
    raw = _export(40)
    out = ango_torch.split(raw, FRACTIONS, by="metadata:video")
    # metadata "video" is missing on assets 0, 9, 18, 27, 36
    assert out.report.ungrouped == 5
    nobatch = ango_torch.split(raw, FRACTIONS, by="batch")
    assert nobatch.report.ungrouped == 4  # batches [] on assets 0, 11, 22, 33


def test_split_of_a_subset_and_bad_arguments() -> None:
    raw = _export(12)
    ds = ango_torch.AngoDataset(raw, task="detection")
    sub = Subset(ds, [5, 1, 2, 8])
    out = ango_torch.split(sub, {"a": 0.5, "b": 0.5}, by="asset")
    assert all(s.dataset is sub for s in out.values())
    assert sorted(i for s in out.values() for i in s.indices) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="sum to 1"):
        ango_torch.split(raw, {"train": 0.8, "val": 0.3})
    with pytest.raises(ValueError, match="by must be"):
        ango_torch.split(raw, FRACTIONS, by="colour")
    with pytest.raises(ValueError, match="by must be"):
        ango_torch.split(raw, FRACTIONS, by="metadata:")
    with pytest.raises(ValueError, match="≥ 0"):
        ango_torch.split(raw, {"train": 1.5, "val": -0.5})


def test_dataset_filters_by_batch_and_metadata_and_counts_what_it_left_out() -> None:
    raw = _export(40)
    full = ango_torch.AngoDataset(raw, task="detection")
    ds = ango_torch.AngoDataset(raw, task="detection", batches=["b1"])
    # by hand: b1 is the batch of i % 5 == 1 (i % 11 != 0) plus asset 7 (b0 and b1)
    want = sorted({i for i in range(40) if i % 5 == 1 and i % 11} | {7})
    assert sorted({ds.asset_index(i) for i in range(len(ds))}) == want
    report = ds.report
    assert report.filtered_assets == Counter({"not in batches=": 40 - len(want)})
    # one object per asset, two on the 3-page assets (i % 4 == 0)
    assert report.filtered_objects == sum(1 + (i % 4 == 0) for i in range(40) if i not in want)
    assert not report.skipped_assets and ds.classes == full.classes
    assert "filtered" in report.summary()

    by_meta = ango_torch.AngoDataset(raw, task="detection", where={"video": ["vid1", "vid2"]})
    want = [i for i in range(40) if i % 9 and i % 6 in (1, 2)]
    assert sorted({by_meta.asset_index(i) for i in range(len(by_meta))}) == want
    assert by_meta.report.filtered_assets["not matched by where="] == 40 - len(want)

    by_fn = ango_torch.AngoDataset(
        raw, task="detection", where=lambda a: a.external_id.endswith("3.png")
    )
    assert sorted({by_fn.asset_index(i) for i in range(len(by_fn))}) == [3, 13, 23, 33]


def test_dataset_filter_bad_arguments() -> None:
    raw = _export(6)
    with pytest.raises(ValueError, match=r"no asset is in \['trian'\].*batches present"):
        ango_torch.AngoDataset(raw, batches=["trian"])
    with pytest.raises(ValueError, match="list of batch names"):
        ango_torch.AngoDataset(raw, batches="b1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="where must be"):
        ango_torch.AngoDataset(raw, where=3)  # type: ignore[arg-type]


def test_cli_split_writes_the_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = _export(40)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(raw))
    out = tmp_path / "splits"
    argv = [str(path), "--fractions", "train=0.7,val=0.3", "--by", "batch", "--seed", "2"]
    assert main(["split", *argv, "--out", str(out)]) == 0
    assert "train" in capsys.readouterr().out
    doc = json.loads((out / "split.json").read_text())
    expected = ango_torch.split(raw, {"train": 0.7, "val": 0.3}, by="batch", seed=2)
    for name in ("train", "val"):
        assert doc["splits"][name]["indices"] == expected[name]
        ids = (out / f"{name}.txt").read_text().split()
        assert ids == [raw[a]["assetId"] for a in expected[name]]
    assert doc["report"]["splits"]["train"]["assets"] == len(expected["train"])
    # every batch on one side, read back from the files and the raw dicts
    side = {i: n for n in ("train", "val") for i in (out / f"{n}.txt").read_text().split()}
    for b in {b for a in raw for b in a["batches"]}:
        assert len({side[a["assetId"]] for a in raw if b in a["batches"]}) == 1
    for bad in (["--fractions", "train=0.7,val=0.2"], ["--by", "colour"], ["--fractions", "x"]):
        with pytest.raises(SystemExit) as exc:
            main(["split", str(path), "--out", str(out), *bad])
        assert exc.value.code == 2
    capsys.readouterr()


def test_video_clips_and_volume_slices_split_by_asset() -> None:
    # Every clip (frames of one video) and every slice of one volume belongs to one
    # asset: the sides come from the assets' hashes alone, so no asset is on two sides;
    # the expected asset of each sample is read from the datasets' own sample tables
    # (clip rows, slice rows), not from split().
    pytest.importorskip("nrrd")
    from ango_torch.datasets.volume import AngoVolumeDataset
    from ango_torch.datasets.volume_slices import AngoVolumeSlices

    data = Path(__file__).resolve().parents[2] / "examples" / "data"
    vol = AngoVolumeDataset(
        data / "volume" / "export.json",
        root=data / "volume" / "root",
        ontology=data / "volume" / "ontology.json",
        metatensor=False,
    )
    slices = AngoVolumeSlices(vol, axis=2)
    parts = ango_torch.split(slices, {"a": 0.5, "b": 0.5}, by="asset", seed=3)
    seen: dict[int, str] = {}
    for name, subset in parts.items():
        for j in subset.indices:
            asset = vol.asset_index(slices._index[j][0])
            assert seen.setdefault(asset, name) == name
    assert sum(len(s) for s in parts.values()) == len(slices)
    assert set(seen) == {0, 1}
    pytest.importorskip("av")
    clips = ango_torch.AngoVideoDataset(
        data / "video" / "video_export.json", root=data / "video", clip_len=4
    )
    parts = ango_torch.split(clips, {"a": 0.5, "b": 0.5}, by="video")
    sides = {
        int(clips._clips[j, 0]): name for name, subset in parts.items() for j in subset.indices
    }
    assert sum(len(s) for s in parts.values()) == len(clips) and len(sides) == 1
