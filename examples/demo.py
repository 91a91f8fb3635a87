"""The `make demo` job: inspect → preview → a short Mask R-CNN training → evaluation.

Runs on CPU in a few minutes over the bundled sample export (real photographs in
examples/data/images).  Everything it writes goes to runs/demo/.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import evaluate  # noqa: E402
import train_detection  # noqa: E402

from ango_torch.cli import main as cli  # noqa: E402

DATA = HERE / "data"


def step(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def run(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "runs" / "demo"), help="output folder")
    p.add_argument("--epochs", type=int, default=3, help="training epochs (default 3)")
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
    step("3. fine-tune Mask R-CNN (CPU, random init, a few steps)")
    config = str(ROOT / "configs" / "sample_maskrcnn.toml")
    train_detection.main(
        [
            "--config",
            config,
            "--output",
            str(OUT / "maskrcnn"),
            "--set",
            f"schedule.epochs={args.epochs}",
            "--device",
            "cpu",
        ]
    )
    step("4. evaluate the checkpoint (COCO mAP)")
    evaluate.main(
        [
            "--config",
            config,
            "--output",
            str(OUT / "maskrcnn"),
            "--device",
            "cpu",
            "--checkpoint",
            str(OUT / "maskrcnn" / "checkpoint.pt"),
            "--out",
            str(OUT / "maskrcnn" / "eval.json"),
        ]
    )
    step("done")
    print(f"previews:    {OUT / 'preview'}")
    print(f"checkpoint:  {OUT / 'maskrcnn' / 'checkpoint.pt'}")
    print(
        f"metrics:     {OUT / 'maskrcnn' / 'metrics.json'} (per epoch), "
        f"{OUT / 'maskrcnn' / 'eval.json'} (final)"
    )
    print(
        f"took {time.perf_counter() - t0:.0f} s. With downloadable weights, "
        "--weights default gives meaningful mAP; random init shows the pipeline only."
    )
    return 0


if __name__ == "__main__":
    sys.exit(run())
