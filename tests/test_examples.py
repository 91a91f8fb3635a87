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
    r = _run("demo.py", "--out", str(tmp_path), "--epochs", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(list((tmp_path / "preview").glob("*.png"))) == 3
    assert json.loads((tmp_path / "maskrcnn" / "eval.json").read_text())["images"] == 3


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
