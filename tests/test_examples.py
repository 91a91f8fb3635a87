"""Every example script runs on the bundled sample with a tiny schedule; torchrun too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import ango_torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))


def _run(script: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_train_detection_then_evaluate_then_resume(tmp_path: Path) -> None:
    cfg = str(ROOT / "configs" / "sample_maskrcnn.toml")
    out = tmp_path / "det"
    r = _run(
        "train_detection.py",
        "--config",
        cfg,
        "--output",
        str(out),
        "--device",
        "cpu",
        "--set",
        "schedule.epochs=1",
        "--set",
        "model.min_size=160",
        "--set",
        "model.max_size=240",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    history = json.loads((out / "metrics.json").read_text())
    assert len(history) == 1 and history[0]["eval"]["images"] == 3
    assert "bbox" in history[0]["eval"] and "segm" in history[0]["eval"]
    # resume continues at the next epoch
    r = _run(
        "train_detection.py",
        "--config",
        cfg,
        "--output",
        str(out),
        "--device",
        "cpu",
        "--set",
        "schedule.epochs=2",
        "--set",
        "model.min_size=160",
        "--set",
        "model.max_size=240",
        "--resume",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed" in r.stdout and len(json.loads((out / "metrics.json").read_text())) == 2
    r = _run(
        "evaluate.py",
        "--config",
        cfg,
        "--output",
        str(out),
        "--device",
        "cpu",
        "--checkpoint",
        str(out / "checkpoint.pt"),
        "--out",
        str(tmp_path / "e.json"),
        "--set",
        "model.min_size=160",
        "--set",
        "model.max_size=240",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((tmp_path / "e.json").read_text())["images"] == 3


@pytest.mark.slow
def test_train_segmentation(tmp_path: Path) -> None:
    r = _run(
        "train_segmentation.py",
        "--config",
        str(ROOT / "configs" / "sample_deeplabv3.toml"),
        "--output",
        str(tmp_path),
        "--device",
        "cpu",
        "--set",
        "schedule.epochs=1",
        "--set",
        "transforms.size=[96, 128]",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (record,) = json.loads((tmp_path / "metrics.json").read_text())
    assert record["eval"]["images"] == 3 and 0.0 <= record["eval"]["miou"] <= 1.0


@pytest.mark.slow
def test_faster_rcnn_config(tmp_path: Path) -> None:
    r = _run(
        "train_detection.py",
        "--config",
        str(ROOT / "configs" / "sample_fasterrcnn.toml"),
        "--output",
        str(tmp_path),
        "--device",
        "cpu",
        "--set",
        "schedule.epochs=1",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (record,) = json.loads((tmp_path / "metrics.json").read_text())
    assert record["eval"]["images"] == 3 and "segm" not in record["eval"]


@pytest.mark.slow
def test_demo(tmp_path: Path) -> None:
    r = _run("demo.py", "--out", str(tmp_path), "--epochs", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(list((tmp_path / "preview").glob("*.png"))) == 3
    assert len(json.loads((tmp_path / "learn" / "curve.json").read_text())) == 2
    assert (tmp_path / "learn" / "predictions.png").stat().st_size > 10_000
    assert "the TRAINING set" in r.stdout and "--weights default" in r.stdout
    # Step 4: the label PNGs scored by `ango-torch evaluate --task semantic`'s code agree
    # with the learner's own meter on its last epoch (same masks, same full resolution,
    # predictions through a uint8 PNG round trip: equal up to float summation order).
    curve = json.loads((tmp_path / "learn" / "curve.json").read_text())
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["task"] == "semantic" and ev["images"] == 3
    assert ev["miou"] == pytest.approx(curve[-1]["miou"], abs=1e-9)
    assert "4. evaluate" in r.stdout and "mIoU" in r.stdout
    # Independent reference: per-class IoU counted here with numpy from the PNGs and the
    # dataset's masks (|pred = c ∧ gt = c| / |(pred = c ∨ gt = c) ∧ gt ≠ 255|).
    import _common as c
    from PIL import Image

    cfg = c.load_config(str(ROOT / "configs" / "demo_semantic.toml"), [])
    cfg["data"]["task"] = "semantic"
    ds = c.build_dataset(cfg, train=True, transforms=None)
    labels = {p.stem: p for p in (tmp_path / "learn" / "labels").glob("*.png")}
    inter = np.zeros(len(ds.classes))
    union = np.zeros(len(ds.classes))
    idx = ds.export.index
    for i in range(len(ds)):
        gt = ds[i][1]["mask"].numpy()
        name = Path(idx.string(idx.asset_external_id[ds.asset_index(i)])).stem
        pred = np.asarray(Image.open(labels[name]))
        assert pred.shape == gt.shape  # full resolution
        keep = gt != 255
        for k in range(len(ds.classes)):
            inter[k] += ((pred == k) & (gt == k) & keep).sum()
            union[k] += (((pred == k) | (gt == k)) & keep).sum()
    iou = inter[union > 0] / union[union > 0]
    assert ev["miou"] == pytest.approx(float(iou.mean()), abs=1e-9)
    assert list(ev["iou"].values()) == pytest.approx(list(inter / union), abs=1e-9)


@pytest.mark.slow
def test_learn_sample_learns(tmp_path: Path) -> None:
    """The demo's proof of learning, shortened: 12 steps at 96 px. Expected numbers come
    from the dataset's own masks scored by SegmentationMeter (tests/evaluation checks it
    against hand counts); a pipeline whose masks were misplaced would stay near the
    first epoch's mIoU (a measured run: 0.17 → 0.39; the bound leaves margin)."""
    r = _run(
        "learn_sample.py",
        "--config",
        str(ROOT / "configs" / "demo_semantic.toml"),
        "--output",
        str(tmp_path),
        "--epochs",
        "12",
        "--set",
        "transforms.size=[96, 96]",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    curve = json.loads((tmp_path / "curve.json").read_text())
    assert len(curve) == 12 and curve[-1]["miou"] > curve[0]["miou"] + 0.1
    assert "SAME images (the training set" in r.stdout


def test_split_datasets_holds_out_whole_assets_on_both_datasets() -> None:
    """data.val_fraction: the train subset of one dataset and the val subset of the other
    (same export, same seed) share no asset and together cover every sample."""
    import _common as c

    cfg = c.load_config(str(ROOT / "configs" / "sample_fasterrcnn.toml"), [])
    cfg["data"]["val_fraction"] = 0.5
    a = c.build_dataset(cfg, train=True, transforms=None)
    b = c.build_dataset(cfg, train=False, transforms=None)
    train, val = c.split_datasets(cfg, a, b)
    assert train.dataset is a and val.dataset is b
    assert sorted([*train.indices, *val.indices]) == [0, 1, 2]
    assert {a.asset_id(i) for i in train.indices}.isdisjoint(b.asset_id(i) for i in val.indices)
    cfg["data"]["val_fraction"] = 0  # the sample's configs: no hold-out
    assert c.split_datasets(cfg, a, b) == (a, b)


def test_detection_loader_uses_grouped_batches_and_set_epoch() -> None:
    """The detection example's training loader: GroupedBatchSampler batches, reshuffled
    by Run.epochs' set_epoch; every sample once per epoch (3 samples, batch 2: 2 + 1)."""
    import _common as c

    cfg = c.load_config(str(ROOT / "configs" / "sample_fasterrcnn.toml"), [])
    ds = c.build_dataset(cfg, train=True, transforms=None)
    loader = c.loader(ds, cfg, train=True, grouped=True)
    assert isinstance(loader.batch_sampler, ango_torch.GroupedBatchSampler)
    orders = []
    for epoch in range(4):
        loader.batch_sampler.set_epoch(epoch)
        batches = list(loader.batch_sampler)
        assert sorted(i for b in batches for i in b) == [0, 1, 2]
        assert sorted(len(b) for b in batches) == [1, 2]
        orders.append(batches)
    assert any(o != orders[0] for o in orders[1:])  # the shuffle changes with the epoch


def test_lightning_datamodule_splits_and_batches() -> None:
    pytest.importorskip("lightning")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # lightning's own, on import
        import lightning_datamodule as ld

    data = EXAMPLES / "data"
    dm = ld.AngoDataModule(
        str(data / "sample_export.json"),
        root=str(data / "images"),
        ontology=str(data / "ontology.json"),
        val_fraction=0.5,
        seed=1,
    )
    dm.setup("fit")
    train, val = dm.train_set, dm.val_set
    assert sorted([*train.indices, *val.indices]) == [0, 1, 2]  # each sample on one side
    loader = dm.train_dataloader()
    assert isinstance(loader.batch_sampler, ango_torch.GroupedBatchSampler)
    assert sorted(i for b in loader.batch_sampler for i in b) == list(range(len(train)))
    assert len(list(dm.val_dataloader())) == -(-len(val) // dm.batch_size)


@pytest.mark.slow
def test_lightning_example_fits_a_step(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    r = _run("lightning_datamodule.py", "--output", str(tmp_path), "--max-steps", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "fitted 1 step(s) on 3 training samples" in r.stdout


@pytest.mark.slow
def test_torchrun_two_processes_train_and_evaluate_each_image_once(tmp_path: Path) -> None:
    """2 ranks (gloo, CPU): DDP trains a step; evaluation sees each of 3 images once."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    cmd = [
        torchrun or "torchrun",
        "--standalone",
        "--nproc_per_node=2",
        str(EXAMPLES / "train_detection.py"),
        "--config",
        str(ROOT / "configs" / "sample_fasterrcnn.toml"),
        "--output",
        str(tmp_path),
        "--device",
        "cpu",
        "--set",
        "schedule.epochs=1",
        "--set",
        "schedule.batch_size=1",
        "--max-steps",
        "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    r = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert r.returncode == 0, r.stderr[-4000:]
    (record,) = json.loads((tmp_path / "metrics.json").read_text())
    # 3 images over 2 ranks: 2 + 1, not 2 + 2 as DistributedSampler's padding would give.
    assert record["eval"]["images"] == 3


def test_detection_evaluation_gathers_rle_not_float_masks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """train_detection.evaluate hands the gather COCO results with RLE masks, per image,
    never the model's float masks; pycocotools decodes them to the thresholded mask."""
    mask_api = pytest.importorskip("pycocotools.mask")
    import _common as c
    import torch
    import train_detection

    cfg = c.load_config(str(ROOT / "configs" / "sample_maskrcnn.toml"), [])
    ds = c.build_dataset(cfg, train=False, transforms=c.detection_transforms(cfg, train=False))

    class Fake(torch.nn.Module):
        """One detection per image: a float mask, > 0.5 on a 3×2 block (hand-made)."""

        def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
            out = []
            for im in images:
                h, w = im.shape[-2:]
                m = torch.full((1, 1, h, w), 0.25)
                m[0, 0, 4:6, 10:13] = 0.75
                box = torch.tensor([[10.0, 4.0, 13.0, 6.0]])
                out.append(
                    {"boxes": box, "labels": torch.tensor([1]), "scores": torch.tensor([0.9])}
                    | {"masks": m}
                )
            return out

    seen: list[dict[int, object]] = []

    def spy(local: dict[int, object]) -> dict[int, object]:
        seen.append(local)
        return dict(local)

    monkeypatch.setattr(train_detection, "gather_predictions", spy)
    gt = ango_torch.to_coco(ds)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        metrics = train_detection.evaluate(Fake(), ds, cfg, torch.device("cpu"), gt)
    assert metrics["images"] == len(ds) == 3
    (local,) = seen
    assert sorted(local) == [0, 1, 2]
    for image_id, results in local.items():
        assert isinstance(results, list) and len(results) == 1
        seg = results[0]["segmentation"]
        assert isinstance(seg, dict) and not any(isinstance(v, torch.Tensor) for v in seg.values())
        h, w = ds.get_height_and_width(image_id)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
            decoded = mask_api.decode({**seg, "counts": seg["counts"].encode()})
        expected = np.zeros((h, w), np.uint8)
        expected[4:6, 10:13] = 1
        np.testing.assert_array_equal(decoded, expected)
