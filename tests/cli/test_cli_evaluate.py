"""``ango-torch evaluate``: COCO results JSON and label-PNG folders against the export."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from builders import SAMPLE
from builders import SAMPLE_ARGS as ARGS

import ango_torch
from ango_torch.cli import main


def _gt(task: str = "instance") -> dict:
    ds = ango_torch.AngoDataset(
        SAMPLE / "sample_export.json",
        task=task,  # type: ignore[arg-type]
        root=SAMPLE / "images",
        ontology=SAMPLE / "ontology.json",
    )
    return ango_torch.to_coco(ds)


@pytest.mark.parametrize("by_asset_id", [False, True], ids=["sample-index", "asset-id"])
def test_ground_truth_as_predictions_scores_one(
    tmp_path: Path, by_asset_id: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    gt = _gt()
    ids = {im["id"]: im["asset_id"] for im in gt["images"]}
    results = [
        {
            "image_id": ids[a["image_id"]] if by_asset_id else a["image_id"],
            "category_id": a["category_id"],
            "bbox": a["bbox"],
            "segmentation": a["segmentation"],
            "score": 1.0,
        }
        for a in gt["annotations"]
    ]
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(results))
    out = tmp_path / "metrics.json"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*__array__ implementation.*")
        code = main(["evaluate", *ARGS, "--predictions", str(pred), "--out", str(out)])
    assert code == 0
    metrics = json.loads(out.read_text())
    assert metrics["bbox"]["AP"] == pytest.approx(1.0) and metrics["segm"]["AP"] == pytest.approx(
        1.0
    )
    assert "AP" in capsys.readouterr().out


def test_semantic_label_pngs(tmp_path: Path) -> None:
    masks = tmp_path / "masks"
    assert main(["convert", *ARGS, "--to", "masks", "--out", str(masks)]) == 0
    out = tmp_path / "m.json"
    assert (
        main(
            [
                "evaluate",
                *ARGS,
                "--task",
                "semantic",
                "--predictions",
                str(masks),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["miou"] == pytest.approx(1.0)
    next(masks.glob("*.png")).unlink()
    assert main(["evaluate", *ARGS, "--task", "semantic", "--predictions", str(masks)]) == 2


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{nope", "cannot read"),
        ('{"a": 1}', "expected a JSON list"),
        ('[{"category_id": 1}]', "expected an object with image_id"),
        (
            '[{"image_id": "ghost", "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}]',
            "no assetId",
        ),
    ],
    ids=["not-json", "not-a-list", "no-image-id", "unknown-asset-id"],
)
def test_bad_predictions_are_reported(
    tmp_path: Path, content: str, match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pred = tmp_path / "p.json"
    pred.write_text(content)
    assert main(["evaluate", *ARGS, "--predictions", str(pred)]) == 2
    assert match in capsys.readouterr().err
