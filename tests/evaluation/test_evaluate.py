"""Tests of ango_torch.evaluation.evaluate, .metrics and .distributed: COCO AP against pycocotools'
own summary on the bundled sample, both backends, hand-computed IoU, sharding."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from builders import sample_dataset

import ango_torch
from ango_torch.errors import AngoTorchError
from ango_torch.evaluation.distributed import (
    EvalSampler,
    gather_predictions,
    get_rank,
    get_world_size,
    is_main_process,
)
from ango_torch.evaluation.evaluate import (
    EvaluationError,
    MissingDependencyError,
    evaluate_coco,
    predictions_to_coco,
)
from ango_torch.evaluation.metrics import SegmentationMeter

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "examples" / "data"
PYCOCOTOOLS_NUMPY2 = "__array__ implementation doesn't accept a copy keyword"
NO_FCE = importlib.util.find_spec("faster_coco_eval") is None
BACKENDS = [
    "pycocotools",
    pytest.param(
        "faster_coco_eval", marks=pytest.mark.skipif(NO_FCE, reason="needs faster-coco-eval")
    ),
]


@pytest.fixture(scope="module")
def sample() -> ango_torch.AngoDataset:
    ds: ango_torch.AngoDataset = sample_dataset("instance")
    return ds


@pytest.fixture(scope="module")
def gt(sample: ango_torch.AngoDataset) -> dict[str, Any]:
    pytest.importorskip("pycocotools")  # every COCO evaluation test goes through here
    coco = ango_torch.to_coco(sample)
    assert len(coco["annotations"]) == 30 and len(coco["images"]) == 3
    return coco


def outputs_from_targets(ds: ango_torch.AngoDataset) -> dict[int, dict[str, torch.Tensor]]:
    """torchvision-style outputs that repeat the dataset's targets, with score 1."""
    outputs = {}
    for i in range(len(ds)):
        _, t = ds[i]
        outputs[t["image_id"]] = {
            "boxes": t["boxes"],
            "labels": t["labels"],
            "scores": torch.ones(len(t["labels"])),
            "masks": t["masks"].float()[:, None],  # like Mask R-CNN: [N, 1, H, W] probs
        }
    return outputs


def decode(rle: dict[str, Any]) -> np.ndarray[Any, Any]:
    mask_api = pytest.importorskip("pycocotools.mask")

    with warnings.catch_warnings():  # pycocotools' Cython vs numpy 2, not our code
        warnings.filterwarnings("ignore", PYCOCOTOOLS_NUMPY2, DeprecationWarning)
        out: np.ndarray[Any, Any] = mask_api.decode(rle).astype(bool)
    return out


def reference_stats(gt: dict[str, Any], results: list[Any], iou_type: str) -> list[float]:
    """pycocotools' own ``summarize()`` numbers: AP, AP50, AP75, APs, APm, APl, AR100."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", PYCOCOTOOLS_NUMPY2, DeprecationWarning)
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(ev.stats[k]) for k in (0, 1, 2, 3, 4, 5, 8)]


def assert_close(ours: tuple[float, ...], ref: list[float], tol: float = 1e-9) -> None:
    for a, b in zip(ours, ref, strict=True):
        if b == -1:  # pycocotools' "undefined"
            assert math.isnan(a)
        else:
            assert abs(a - b) <= tol, (ours, ref)


# ------------------------------------------------------------------------------ COCO AP


@pytest.mark.parametrize("backend", BACKENDS)
def test_ground_truth_as_results_scores_one(gt: dict[str, Any], backend: str) -> None:
    # polygons and uncompressed RLE straight from to_coco, as results with score 1
    results = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": a["bbox"],
            "segmentation": a["segmentation"],
            "score": 1.0,
        }
        for a in gt["annotations"]
    ]
    before = copy.deepcopy((gt, results))
    metrics = evaluate_coco(gt, results, backend=backend)
    assert (gt, results) == before  # inputs untouched
    assert metrics.backend == backend and list(metrics.by_type) == ["bbox", "segm"]
    for iou_type in ("bbox", "segm"):
        m = metrics[iou_type]
        assert m.ap == m.ap50 == m.ap75 == m.ar100 == 1.0
        assert math.isnan(m.ap_small)  # the sample has no instance under 32² px
        assert list(m.per_class_ap.values()) == pytest.approx([1.0] * 7, abs=1e-12)
        assert list(m.per_class_ap) == [c["name"] for c in gt["categories"]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_targets_through_predictions_to_coco_score_one(
    sample: ango_torch.AngoDataset, gt: dict[str, Any], backend: str
) -> None:
    results = predictions_to_coco(outputs_from_targets(sample))
    assert len(results) == 30
    json.dumps(results)  # JSON-ready: compressed counts are str
    metrics = evaluate_coco(gt, results, backend=backend)
    for iou_type in ("bbox", "segm"):
        assert metrics[iou_type].ap == 1.0 and metrics[iou_type].ar100 == 1.0


def perturbed(sample: ango_torch.AngoDataset) -> list[dict[str, Any]]:
    """Shift every box and mask, vary scores, drop some instances, add a false positive."""
    gen = torch.Generator().manual_seed(0)
    outputs = outputs_from_targets(sample)
    for out in outputs.values():
        n = len(out["scores"])
        keep = torch.rand(n, generator=gen) > 0.2
        shift = torch.randint(-6, 7, (2,), generator=gen)
        out["boxes"] = (out["boxes"].as_subclass(torch.Tensor) + shift.repeat(2))[keep]
        out["masks"] = out["masks"].roll((int(shift[1]), int(shift[0])), dims=(2, 3))[keep]
        out["labels"] = out["labels"][keep]
        out["scores"] = torch.rand(int(keep.sum()), generator=gen)
    fp = outputs[0]
    fp["boxes"] = torch.cat([fp["boxes"], torch.tensor([[10.0, 10.0, 90.0, 60.0]])])
    fp["labels"] = torch.cat([fp["labels"], torch.tensor([1])])
    fp["scores"] = torch.cat([fp["scores"], torch.tensor([0.99])])
    box_mask = torch.zeros((1, 1, *fp["masks"].shape[-2:]))
    box_mask[..., 10:60, 10:90] = 1.0
    fp["masks"] = torch.cat([fp["masks"], box_mask])
    return predictions_to_coco(outputs)


def test_perturbed_matches_pycocotools_summary_and_backends_agree(
    sample: ango_torch.AngoDataset, gt: dict[str, Any]
) -> None:
    pytest.importorskip("faster_coco_eval")
    results = perturbed(sample)
    ours = evaluate_coco(gt, results, backend="pycocotools")
    fast = evaluate_coco(gt, results, backend="faster_coco_eval")
    for iou_type in ("bbox", "segm"):
        m = ours[iou_type]
        assert 0.0 < m.ap < 1.0
        ref = results
        if iou_type == "segm":  # as evaluate_coco does: mask area decides the size range
            ref = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
        assert_close(m.values(), reference_stats(gt, ref, iou_type))
        f = fast[iou_type]
        assert_close(f.values(), [(-1 if math.isnan(v) else v) for v in m.values()], 1e-6)
        for name, ap in m.per_class_ap.items():
            assert (math.isnan(ap) and math.isnan(f.per_class_ap[name])) or abs(
                ap - f.per_class_ap[name]
            ) <= 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_images_without_predictions_count(
    sample: ango_torch.AngoDataset, gt: dict[str, Any], backend: str
) -> None:
    results = [r for r in predictions_to_coco(outputs_from_targets(sample)) if r["image_id"] == 0]
    m = evaluate_coco(gt, results, iou_types=("bbox",), backend=backend)["bbox"]
    assert m.ar100 < 1.0 and m.ap < 1.0
    assert_close(m.values(), reference_stats(gt, results, "bbox"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_results_score_zero(gt: dict[str, Any], backend: str) -> None:
    metrics = evaluate_coco(gt, [], backend=backend)
    assert metrics.num_results == 0 and list(metrics.by_type) == ["bbox", "segm"]
    for m in metrics.by_type.values():
        assert m.ap == m.ap50 == m.ap75 == m.ap_medium == m.ap_large == m.ar100 == 0.0
        assert set(m.per_class_ap.values()) == {0.0}
    json.dumps(metrics.to_dict(), allow_nan=False)


def test_paths_table_and_dict(
    sample: ango_torch.AngoDataset, gt: dict[str, Any], tmp_path: Path
) -> None:
    results = perturbed(sample)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results))
    from_files = evaluate_coco(tmp_path / "gt.json", str(tmp_path / "res.json"))
    in_memory = evaluate_coco(gt, results, backend=from_files.backend)
    assert from_files == in_memory
    table = from_files.table()
    assert "AP50" in table and "AR100" in table and "name-tag" in table and "segm" in table
    d = from_files.to_dict()
    assert d["bbox"]["APs"] is None and d["num_images"] == 3
    assert set(d["segm"]["per_class_AP"]) == set(sample.classes[1:])
    json.dumps(d, allow_nan=False)


def test_boxes_only_results_evaluate_bbox_only(gt: dict[str, Any]) -> None:
    results = [dict(a, score=1.0) for a in gt["annotations"]]
    for r in results:
        del r["segmentation"]
    metrics = evaluate_coco(gt, results)
    assert list(metrics.by_type) == ["bbox"] and metrics["bbox"].ap == 1.0
    with pytest.raises(KeyError, match="segm"):
        metrics["segm"]
    with pytest.raises(EvaluationError, match="segmentation"):
        evaluate_coco(gt, results, iou_types=("segm",))


def test_auto_prefers_faster_coco_eval_and_falls_back(
    gt: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("faster_coco_eval")
    assert evaluate_coco(gt, []).backend == "faster_coco_eval"
    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)  # as if not installed
    assert evaluate_coco(gt, []).backend == "pycocotools"
    with pytest.raises(MissingDependencyError, match="pip install faster-coco-eval") as info:
        evaluate_coco(gt, [], backend="faster_coco_eval")
    assert isinstance(info.value, ImportError) and isinstance(info.value, AngoTorchError)


def _res(**kw: Any) -> list[dict[str, Any]]:
    r = {"image_id": 0, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}
    return [{**r, **kw}]


BAD_EVAL = [
    pytest.param({}, _res(), {}, "'images'", id="gt-not-coco"),
    pytest.param(None, {"a": 1}, {}, "list of dicts", id="results-not-list"),
    pytest.param(None, _res(image_id=99), {}, "image_id 99", id="unknown-image"),
    pytest.param(None, _res(category_id=42), {}, "category_id 42", id="unknown-category"),
    pytest.param(None, [{"image_id": 0, "category_id": 1}], {}, "score", id="no-score"),
    pytest.param(None, _res(), {"backend": "detectron"}, "backend", id="bad-backend"),
    pytest.param(None, _res(), {"iou_types": ("keypoints",)}, "iou_types", id="bad-iou"),
    pytest.param(
        None,
        _res(segmentation={"size": [384, 303], "counts": [5, 5]}),
        {"iou_types": ("segm",)},
        r"\[303, 384\]",
        id="rle-size-swapped",
    ),
]


@pytest.mark.parametrize(("gt_", "results", "kw", "match"), BAD_EVAL)
def test_evaluate_rejects(
    gt: dict[str, Any], gt_: Any, results: Any, kw: dict[str, Any], match: str
) -> None:
    with pytest.raises(EvaluationError, match=match) as info:
        evaluate_coco(gt if gt_ is None else gt_, results, **kw)
    assert isinstance(info.value, ValueError)


# ------------------------------------------------------------------- predictions_to_coco


def test_predictions_to_coco_layout() -> None:
    probs = torch.zeros((2, 1, 5, 7))
    probs[0, 0, 1:3, 2:6] = 0.9
    probs[0, 0, 4, 0] = 0.5  # not > 0.5: background
    probs[1, 0, 0, 0] = 1.0
    out = {
        "boxes": torch.tensor([[2.0, 1.0, 6.0, 3.0], [0.0, 0.0, 1.0, 1.0]]),
        "labels": torch.tensor([3, 1]),
        "scores": torch.tensor([0.8, 0.1]),
        "masks": probs,
    }
    results = predictions_to_coco([(torch.tensor(4), out)], score_threshold=0.5)
    assert len(results) == 1
    r = results[0]
    assert r["image_id"] == 4 and isinstance(r["image_id"], int)
    assert r["category_id"] == 3 and r["bbox"] == [2.0, 1.0, 4.0, 2.0]
    assert r["score"] == pytest.approx(0.8)
    assert r["segmentation"]["size"] == [5, 7] and isinstance(r["segmentation"]["counts"], str)
    expected = np.zeros((5, 7), bool)
    expected[1:3, 2:6] = True
    assert np.array_equal(decode(r["segmentation"]), expected)
    # boxes only, [N, H, W] uint8 masks, a mapping, nothing kept
    assert predictions_to_coco({0: {k: v[:0] for k, v in out.items()}}) == []
    plain = predictions_to_coco({1: {k: v for k, v in out.items() if k != "masks"}})
    assert [set(r) for r in plain] == [{"image_id", "category_id", "bbox", "score"}] * 2
    binary = predictions_to_coco({2: {**out, "masks": (probs[:, 0] > 0.5).to(torch.uint8)}})
    assert np.array_equal(decode(binary[0]["segmentation"]), expected)


BAD_OUTPUTS = [
    pytest.param([(0, {"boxes": torch.zeros(1, 4)})], "missing", id="no-labels"),
    pytest.param([(0, [1, 2])], "expected a dict", id="not-a-dict"),
    pytest.param([(0,)], "pairs", id="not-a-pair"),
    pytest.param(
        {0: {"boxes": torch.zeros(2, 4), "labels": torch.zeros(1), "scores": torch.zeros(2)}},
        r"labels \[N\]",
        id="length-mismatch",
    ),
    pytest.param(
        {
            0: {
                "boxes": torch.zeros(1, 4),
                "labels": torch.zeros(1),
                "scores": torch.ones(1),
                "masks": torch.zeros(1, 2, 4, 4),
            }
        },
        "masks",
        id="mask-shape",
    ),
]


@pytest.mark.parametrize(("outputs", "match"), BAD_OUTPUTS)
def test_predictions_to_coco_rejects(outputs: Any, match: str) -> None:
    with pytest.raises(EvaluationError, match=match):
        predictions_to_coco(outputs)


# -------------------------------------------------------------------- SegmentationMeter

# Hand-computed (rows = target, columns = prediction; the 255 pixel is not counted):
#   target [[0, 0, 1],     pred [[0, 1, 1],
#           [1, 2, 255]]         [1, 1, 0]]
#   confusion [[1, 1, 0], [0, 2, 0], [0, 1, 0]]
#   IoU0 = 1 / (2 + 1 - 1) = 1/2;  IoU1 = 2 / (2 + 4 - 2) = 1/2;  IoU2 = 0 / (1 + 0 - 0) = 0
#   mIoU = (1/2 + 1/2 + 0) / 3 = 1/3;  pixel accuracy = 3 / 5
TARGET = torch.tensor([[0, 0, 1], [1, 2, 255]])
PRED = torch.tensor([[0, 1, 1], [1, 1, 0]])
CONFUSION = [[1, 1, 0], [0, 2, 0], [0, 1, 0]]


def test_segmentation_meter_hand_computed() -> None:
    meter = SegmentationMeter(4, class_names=["bg", "a", "b", "c"])
    meter.update(PRED, TARGET)
    m = meter.compute()
    assert m.confusion[:3, :3].tolist() == CONFUSION and m.confusion[3].sum() == 0
    assert m.iou[:3] == (0.5, 0.5, 0.0) and math.isnan(m.iou[3])  # class 3: absent
    assert m.miou == pytest.approx(1 / 3) and m.pixel_accuracy == pytest.approx(0.6)
    d = m.to_dict()
    assert d["iou"]["c"] is None and d["iou"]["a"] == 0.5
    json.dumps(d, allow_nan=False)
    table = m.table()
    assert "mIoU" in table and "33.33" in table and "pixel accuracy" in table


def test_segmentation_meter_batches_and_logits() -> None:
    batch = SegmentationMeter(3)
    batch.update(torch.stack([PRED, PRED.flip(1)]), torch.stack([TARGET, TARGET.flip(1)]))
    split = SegmentationMeter(3)
    split.update(PRED, TARGET)
    split.update(PRED.flip(1), TARGET.flip(1))
    logits = SegmentationMeter(3)
    onehot = torch.nn.functional.one_hot(PRED, 3).permute(2, 0, 1).float()
    logits.update(onehot[None] * 5 - 1, TARGET[None])  # [B, C, H, W] → argmax
    assert torch.equal(batch.confusion, split.confusion)
    assert batch.confusion.tolist() == [[2 * v for v in row] for row in CONFUSION]
    assert logits.confusion.tolist() == CONFUSION
    logits.reset()
    assert logits.confusion.sum() == 0 and math.isnan(logits.compute().miou)


def test_segmentation_meter_ignore_index() -> None:
    # every pixel predicted wrong where target is ignored: nothing changes
    meter = SegmentationMeter(3, ignore_index=2)
    meter.update(torch.tensor([[1, 0], [0, 1]]), torch.tensor([[1, 2], [2, 1]]))
    assert meter.compute().pixel_accuracy == 1.0
    assert math.isnan(meter.compute().iou[2])
    with pytest.raises(EvaluationError, match=r"\[255\]"):  # 255 is a real value now
        SegmentationMeter(3, ignore_index=-1).update(PRED, TARGET)
    with pytest.raises(EvaluationError, match="pred"):
        SegmentationMeter(2).update(torch.full_like(PRED, 2), torch.zeros_like(TARGET))
    with pytest.raises(EvaluationError, match="same shape"):
        SegmentationMeter(3).update(PRED, TARGET[:1])
    with pytest.raises(EvaluationError, match="C=3"):
        SegmentationMeter(3).update(torch.zeros(1, 2, 2, 3), TARGET[None])
    with pytest.raises(EvaluationError, match="num_classes"):
        SegmentationMeter(0)


def test_segmentation_meter_on_semantic_sample() -> None:
    ds = ango_torch.AngoDataset(
        DATA / "sample_export.json",
        task="semantic",
        root=DATA / "images",
        ontology=DATA / "ontology.json",
    )
    meter = SegmentationMeter(len(ds.classes), class_names=ds.classes)
    for i in range(len(ds)):
        _, t = ds[i]
        meter.update(t["mask"], t["mask"])
    meter.all_reduce()  # no process group: a no-op
    m = meter.compute()
    assert m.miou == 1.0 and m.pixel_accuracy == 1.0


# ---------------------------------------------------------------------------- distributed


@pytest.mark.parametrize("world_size", range(1, 6))
@pytest.mark.parametrize("length", range(12))
def test_eval_sampler_covers_each_index_once(world_size: int, length: int) -> None:
    shards = [list(EvalSampler(length, rank=r, world_size=world_size)) for r in range(world_size)]
    assert [i for s in shards for i in s] == list(range(length))  # contiguous, no padding
    sizes = [len(EvalSampler(length, rank=r, world_size=world_size)) for r in range(world_size)]
    assert sizes == [len(s) for s in shards] and max(sizes) - min(sizes) <= 1


def test_eval_sampler_defaults_and_errors() -> None:
    assert list(EvalSampler(3)) == [0, 1, 2]
    with pytest.raises(EvaluationError, match="rank"):
        EvalSampler(3, rank=2, world_size=2)
    with pytest.raises(EvaluationError, match="dataset_len"):
        EvalSampler(-1)


def test_single_process_helpers() -> None:
    local = {3: {"x": 1}, 1: {"x": 2}}
    assert gather_predictions(local) == local
    assert get_rank() == 0 and get_world_size() == 1 and is_main_process()


def _worker(rank: int, world_size: int, init: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world_size)
    try:
        sampler = EvalSampler(5)
        local = {i: torch.tensor([i, rank]) for i in sampler}
        merged = gather_predictions(local)
        assert sorted(merged) == [0, 1, 2, 3, 4] and get_world_size() == 2
        assert all(int(v[1]) == (0 if i < 3 else 1) for i, v in merged.items())
        try:
            gather_predictions({0: rank})
        except EvaluationError as exc:
            assert "0 (ranks 0, 1)" in str(exc)
        else:
            raise AssertionError("duplicate image ids were not reported")
        meter = SegmentationMeter(3)
        meter.update(PRED, TARGET)
        meter.all_reduce()
        meter.all_reduce()  # twice counts once
        assert meter.confusion.tolist() == [[2 * v for v in row] for row in CONFUSION]
        meter.update(PRED, TARGET)  # back to local counts: 2 updates on this rank
        assert meter.confusion.tolist() == [[2 * v for v in row] for row in CONFUSION]
        dist.barrier()  # no rank tears gloo down while another still talks to it
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_gloo(two_gloo_processes: Callable[..., None]) -> None:
    two_gloo_processes(_worker)


# ------------------------------------------------------------------------------ benchmark


def test_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pycocotools")
    pytest.importorskip("faster_coco_eval")
    spec = importlib.util.spec_from_file_location("eval_bench", ROOT / "benchmarks" / "evaluate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert out.count("agree") == 2 and "DISAGREE" not in out


# ------------------------------------------------------- assetId image ids, multi-page


def _paged_export(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """A 3-page asset annotated on pages 0 and 2 (different boxes), and a plain image."""
    from builders import make_asset, make_box, write_images

    paged = make_asset([make_box(1, 1, 4, 3, page=0), make_box(8, 5, 6, 4, "person", page=2)])
    paged["dataset"] = [f"https://x/p{p}.png" for p in range(3)]
    plain = make_asset([make_box(2, 2, 5, 5)])
    write_images(tmp_path / "images", [plain])
    pages = tmp_path / "images" / f"{paged['externalId']}.pages"
    write_images(pages, [{"externalId": str(p), "metadata": {}} for p in range(3)])
    source = tmp_path / "export.json"
    source.write_text(json.dumps([paged, plain]))
    return source, [paged, plain]


def _cli_evaluate(tmp_path: Path, source: Path, results: list[dict[str, Any]]) -> int:
    from ango_torch.cli import main

    (tmp_path / "pred.json").write_text(json.dumps(results))
    args = [str(source), "--root", str(tmp_path / "images"), "--task", "detection"]
    args += ["--predictions", str(tmp_path / "pred.json"), "--out", str(tmp_path / "m.json")]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", PYCOCOTOOLS_NUMPY2, DeprecationWarning)
        return main(["evaluate", *args])


def test_evaluate_asset_ids_with_pages_score_each_page(tmp_path: Path) -> None:
    """Each page's boxes predicted exactly, keyed by (assetId, page): pycocotools gives
    AP 1.0.  Sending both pages' boxes to one page (the old assetId lookup) cannot."""
    pytest.importorskip("pycocotools")
    source, (paged, plain) = _paged_export(tmp_path)
    # Hand-written from the builders' boxes (XYWH), classes sorted: car = 1, person = 2.
    results = [
        {"image_id": paged["assetId"], "page": 0, "category_id": 1, "bbox": [1, 1, 4, 3]},
        {"image_id": paged["assetId"], "page": 2, "category_id": 2, "bbox": [8, 5, 6, 4]},
        {"image_id": plain["assetId"], "category_id": 1, "bbox": [2, 2, 5, 5]},
    ]
    results = [{**r, "score": 1.0} for r in results]
    assert _cli_evaluate(tmp_path, source, results) == 0
    assert json.loads((tmp_path / "m.json").read_text())["bbox"]["AP"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"page": None}, "multi-page asset .*annotated pages \\[0, 2\\].*ambiguous"),
        ({"page": 1}, "page 1 of .* is no sample"),
        ({"image_id": "plain", "page": 0}, "has no pages"),
    ],
    ids=["no-page", "unannotated-page", "page-on-plain-image"],
)
def test_evaluate_refuses_ambiguous_asset_ids(
    tmp_path: Path, change: dict[str, Any], match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source, (paged, plain) = _paged_export(tmp_path)
    r = {"image_id": paged["assetId"], "category_id": 1, "bbox": [1, 1, 4, 3], "score": 1.0}
    r.update(change)
    if r["image_id"] == "plain":
        r["image_id"] = plain["assetId"]
    if r.get("page") is None:
        r.pop("page")
    assert _cli_evaluate(tmp_path, source, [r]) == 2
    assert re.search(match, capsys.readouterr().err)


def test_evaluate_refuses_an_asset_id_shared_by_two_assets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from builders import make_asset, make_box, write_images

    a, b = (make_asset([make_box(1, 1, 3, 3)]) for _ in range(2))
    b["assetId"] = a["assetId"]
    write_images(tmp_path / "images", [a, b])
    source = tmp_path / "export.json"
    source.write_text(json.dumps([a, b]))
    r = {"image_id": a["assetId"], "category_id": 1, "bbox": [1, 1, 3, 3], "score": 1.0}
    assert _cli_evaluate(tmp_path, source, [r]) == 2
    assert "ambiguous" in capsys.readouterr().err
