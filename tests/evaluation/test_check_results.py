"""Malformed COCO results are EvaluationErrors naming the result and field (API) and exit
2 with that message (CLI), before either backend sees them."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ango_torch.cli import main
from ango_torch.errors import EvaluationError
from ango_torch.evaluation._check_results import _decode_counts
from ango_torch.evaluation.evaluate import evaluate_coco

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data"
H, W = 4, 5
GT = {
    "images": [{"id": 0, "height": H, "width": W}],
    "categories": [{"id": 1, "name": "a"}],
    "annotations": [
        {
            "id": 1,
            "image_id": 0,
            "category_id": 1,
            "bbox": [0, 0, 2, 2],
            "area": 4,
            "iscrowd": 0,
            "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]],
        }
    ],
}
OK: dict[str, Any] = {"image_id": 0, "category_id": 1, "bbox": [0, 0, 2, 2], "score": 0.9}
POLY = [[0, 0, 2, 0, 2, 2, 0, 2]]
# (result, field named in the message); each one crashed a backend or was accepted
BAD: dict[str, tuple[dict[str, Any], str]] = {
    "bbox_str": ({**OK, "bbox": ["a", 1, 2, 3]}, "bbox"),
    "bbox_short": ({**OK, "bbox": [1, 1]}, "bbox"),
    "bbox_inf": ({**OK, "bbox": [1, 1, float("inf"), 3]}, "bbox"),
    "bbox_negative": ({**OK, "bbox": [1, 1, -2, 3]}, "bbox"),
    "score_nan": ({**OK, "score": float("nan")}, "score"),
    "score_bool": ({**OK, "score": True}, "score"),
    "image_bool": ({**OK, "image_id": False}, "image_id"),
    "poly_str": ({**OK, "segmentation": [["a", 0, 1, 0, 0, 1]]}, "segmentation"),
    "poly_odd": ({**OK, "segmentation": [[0, 0, 1, 0, 0]]}, "segmentation"),
    "poly_two_points": ({**OK, "segmentation": [[0, 0, 1, 1]]}, "segmentation"),
    "rle_size": (
        {**OK, "segmentation": {"size": [10**5, 10**5], "counts": [0, 10**10]}},
        "segmentation",
    ),
    "rle_short": ({**OK, "segmentation": {"size": [H, W], "counts": [3, 4]}}, "segmentation"),
    "rle_garbage": ({**OK, "segmentation": {"size": [H, W], "counts": "zz"}}, "segmentation"),
    "seg_int": ({**OK, "segmentation": 5}, "segmentation"),
    "rle_non_ascii": (
        {**OK, "segmentation": {"size": [H, W], "counts": "\udc80é"}},
        "segmentation",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_result_is_an_evaluation_error(name: str) -> None:
    result, field = BAD[name]
    iou_types = ("bbox", "segm") if "segmentation" in result else ("bbox",)
    with pytest.raises(EvaluationError, match=rf"result #1, field '{field}'"):
        evaluate_coco(GT, [{**OK, "segmentation": POLY}, result], iou_types=iou_types)


def test_valid_results_pass() -> None:
    # the prediction equals the ground truth: AP 1 (COCO's definition)
    pycoco = pytest.importorskip("pycocotools.mask")
    mask = np.zeros((H, W), np.uint8, order="F")
    mask[0:2, 0:2] = 1
    rle = pycoco.encode(np.asfortranarray(mask))
    rle["counts"] = rle["counts"].decode()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*__array__ implementation.*")
        for seg in (POLY, rle, {"size": [H, W], "counts": [0, 2, 2, 2, 14]}):
            metrics = evaluate_coco(GT, [{**OK, "segmentation": seg}], iou_types=("segm",))
            assert metrics["segm"].ap == pytest.approx(1.0)


def test_compressed_counts_decode_like_pycocotools() -> None:
    pycoco = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(0)
    for _ in range(20):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        mask = np.asfortranarray((rng.random((h, w)) < rng.random()).astype(np.uint8))
        counts = pycoco.encode(mask)["counts"]
        # reference runs from numpy: column-major flattening, runs starting with zeros
        flat = mask.flatten(order="F")
        edges = np.flatnonzero(np.diff(flat)) + 1
        runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
        if flat[0]:
            runs = [0, *runs]
        assert _decode_counts(counts) == runs


@pytest.mark.parametrize("name", ["bbox_str", "bbox_short", "score_nan", "poly_str", "bbox_inf"])
def test_cli_exits_2_naming_the_result(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result, field = BAD[name]
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps([{**result, "segmentation": result.get("segmentation", POLY)}]))
    args = [str(SAMPLE / "sample_export.json"), "--root", str(SAMPLE / "images")]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*__array__ implementation.*")
        code = main(
            [
                "evaluate",
                *args,
                "--task",
                "instance",
                "--predictions",
                str(pred),
                "--out",
                str(tmp_path / "m.json"),
            ]
        )
    assert code == 2
    assert f"result #0, field '{field}'" in capsys.readouterr().err
