"""The `make demo` job: inspect → preview → a network that visibly learns the sample.

Runs on CPU, without any download, in a few minutes over the bundled sample export (real
photographs in examples/data/images): a tiny U-Net overfits the three images (the
training set, said so in the output) and prints train-set mIoU per epoch, then draws its
predictions next to the ground truth and scores its label PNGs with the evaluation behind
``ango-torch evaluate --task semantic`` (``eval.json``).  With ``--weights default`` (a download of
torchvision's COCO weights) it then fine-tunes and evaluates Mask R-CNN.  Everything it
writes goes to runs/demo/.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import evaluate  # noqa: E402
import learn_sample  # noqa: E402
import train_detection  # noqa: E402

from ango_torch.cli import main as cli  # noqa: E402
from ango_torch.cli.evaluate import semantic_metrics  # noqa: E402

DATA = HERE / "data"


def step(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def evaluate_labels(learned: dict[str, Any], out: Path) -> dict[str, Any]:
    """Score the learner's final label PNGs with the code behind ``ango-torch evaluate
    --task semantic`` (:func:`ango_torch.cli.evaluate.semantic_metrics`), on the dataset
    the learner used: the CLI itself builds its dataset without a class mapping, and the
    U-Net predicts the config's four merged classes. Writes ``out/eval.json``."""
    labels = str(Path(learned["output"]) / "labels")
    metrics = semantic_metrics(learned["dataset"], labels)
    print(f"predictions: {labels} (one uint8 label PNG per image, full size)")
    print(metrics.table())
    last = learned["history"][-1]["miou"]
    result = {"task": "semantic", "images": len(learned["dataset"]), **metrics.to_dict()}
    result["learner_last_miou"] = last
    (out / "eval.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"evaluation mIoU {metrics.miou:.3f} (the learner's last epoch: {last:.3f}, the same "
        f"masks at the same full resolution); written to {out / 'eval.json'}"
    )
    return result


def run(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "runs" / "demo"), help="output folder")
    p.add_argument(
        "--epochs", type=int, default=None, help="U-Net epochs (default: the config's, 60)"
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop the U-Net's training after this long (default: the config's, 150)",
    )
    p.add_argument(
        "--weights",
        choices=["default", "none"],
        default="none",
        help="default: also fine-tune Mask R-CNN from COCO weights (downloads them)",
    )
    p.add_argument(
        "--detection-epochs", type=int, default=3, help="Mask R-CNN epochs with --weights"
    )
    args = p.parse_args(argv)
    OUT = Path(args.out)
    t0 = time.perf_counter()
    export, images, ontology = DATA / "sample_export.json", DATA / "images", DATA / "ontology.json"
    step("1. inspect the export")
    cli(["inspect", str(export), "--ontology", str(ontology)])
    step("2. draw the annotations over the images")
    cli(
        [
            "preview",
            str(export),
            "--root",
            str(images),
            "--ontology",
            str(ontology),
            "--out",
            str(OUT / "preview"),
        ]
    )
    step("3. learn: a tiny U-Net overfits the 3 sample images (the TRAINING set)")
    learn = [
        "--config",
        str(ROOT / "configs" / "demo_semantic.toml"),
        "--output",
        str(OUT / "learn"),
    ]
    if args.epochs is not None:
        learn += ["--epochs", str(args.epochs)]
    if args.max_seconds is not None:
        learn += ["--max-seconds", str(args.max_seconds)]
    learned = learn_sample.main(learn)
    step("4. evaluate its predictions (ango-torch evaluate --task semantic)")
    scored = evaluate_labels(learned, OUT)
    if args.weights == "default":
        step("5. fine-tune Mask R-CNN from COCO weights, then evaluate (COCO mAP)")
        config = str(ROOT / "configs" / "sample_maskrcnn.toml")
        common = ["--config", config, "--output", str(OUT / "maskrcnn"), "--device", "cpu"]
        train_detection.main(
            [*common, "--weights", "default", "--set", f"schedule.epochs={args.detection_epochs}"]
        )
        evaluate.main(
            [
                *common,
                "--checkpoint",
                str(OUT / "maskrcnn" / "checkpoint.pt"),
                "--out",
                str(OUT / "maskrcnn" / "eval.json"),
            ]
        )
    step("done")
    print(f"previews:     {OUT / 'preview'}")
    print(f"learning:     {OUT / 'learn' / 'curve.json'} (per epoch loss and train-set mIoU)")
    print(f"predictions:  {OUT / 'learn' / 'predictions.png'} (image | ground truth | prediction)")
    print(f"evaluation:   {OUT / 'eval.json'} (mIoU {scored['miou']:.3f} of learn/labels/)")
    if args.weights == "default":
        print(f"Mask R-CNN:   {OUT / 'maskrcnn'} (checkpoint.pt, metrics.json, eval.json)")
    else:
        print(
            "Mask R-CNN:   not trained (from random weights, minutes of CPU give mAP 0.000); "
            "make demo ARGS='--weights default' fine-tunes it from COCO weights (a download)"
        )
    print(f"took {time.perf_counter() - t0:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(run())
