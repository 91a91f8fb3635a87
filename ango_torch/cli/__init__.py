"""The ``ango-torch`` command line: stage 5, the top of the pipeline.

One module per command (``inspect`` holds inspect and validate, ``prefetch``,
``preview``, ``convert``, ``evaluate``, ``split``), their shared options and helpers in
``_common``; this module builds the parser and holds :func:`main` (the console script
``ango_torch.cli:main``). Commands that need torch import their module when run, so
``inspect`` and ``validate`` start without it.

May import: every other package. Nothing imports it but ``ango_torch.__main__``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import AngoTorchError
from ._common import (
    _add_allow_local_urls,
    _add_dataset_options,
    _add_progress,
    _add_source,
    _positive_int,
)
from .inspect import cmd_inspect, cmd_validate
from .prefetch import cmd_prefetch
from .preview import cmd_preview
from .volumes import add_volume_options

__all__ = ["main"]


def cmd_convert(args: argparse.Namespace) -> int:
    from .convert import run_convert

    return run_convert(args)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import run_evaluate

    return run_evaluate(args)


def _add_command(sub: Any, name: str, *, func: Any, **kw: Any) -> argparse.ArgumentParser:
    """Register the command ``name`` (``kw``: ``help``, ``description``) that reads an
    export (:func:`_common._add_source`) and runs ``func(args)``."""
    p: argparse.ArgumentParser = sub.add_parser(name, **kw)
    _add_source(p)
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ango-torch``."""
    parser = argparse.ArgumentParser(
        prog="ango-torch",
        description="Ango Hub exports as PyTorch training data.",
        epilog=(
            "Exit status: 0 ok, 1 problems found (validate, prefetch failures), 2 bad "
            "input or a safety limit reached (a one-line error on stderr)."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _add_command(
        sub,
        "inspect",
        help="summarize an export",
        description=(
            "Summary of an export: assets, objects per class and tool, stages, batches, problems."
        ),
        func=cmd_inspect,
    )
    p.add_argument("--stage", default=None, help="count this stage instead of the answer")
    p.add_argument("--ontology", default=None, help="categorySchema JSON (path or URL)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_volume_options(p)
    _add_allow_local_urls(p)

    p = _add_command(
        sub,
        "validate",
        help="list problems; exit 1 if any",
        description=(
            "List every problem of an export (malformed assets, polygons under 3 points, "
            "zero-area or far-outside geometry, duplicate objectIds, dangling relations, "
            "unknown tools, missing image sizes); exit status 1 when there is any."
        ),
        func=cmd_validate,
    )
    p.add_argument("--ontology", default=None, help="also check titles against it")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--limit", type=int, default=200, help="problems to print (default 200)")
    add_volume_options(p)
    _add_allow_local_urls(p)

    from ..assets.prefetch import DEFAULT_CONCURRENCY

    p = _add_command(
        sub,
        "prefetch",
        help="download every asset and brush mask to a folder",
        description=(
            "Download every image (each page of a multi-page asset) and the brush mask of "
            "the answer or of --stage into DIR, checking that each decodes.  Afterwards "
            "root=DIR (in Python) or --root DIR (on the command line) reads them from "
            "there instead of the export's signed URLs, which expire.  Resumable: files "
            "already complete in DIR are skipped.  Exit status 1 when any file failed."
        ),
        func=cmd_prefetch,
    )
    p.add_argument(
        "--to",
        required=True,
        metavar="DIR",
        help="destination folder or fsspec URL; afterwards use root=DIR (or --root DIR)",
    )
    p.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"parallel downloads (default {DEFAULT_CONCURRENCY})",
    )
    p.add_argument(
        "--stage", default=None, help="fetch this stage's brush masks instead of the answer's"
    )
    p.add_argument(
        "--no-brush", dest="brush", action="store_false", help="images only, no brush masks"
    )
    p.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="write files without checking that they decode",
    )
    _add_allow_local_urls(p)
    _add_progress(p)

    p = _add_command(
        sub,
        "preview",
        help="draw annotations over images into PNG files",
        description=(
            "Draw every sample's annotations over its image into DIR/<index>_<name>.png: "
            "masks (filled, outlined, holes left clear), brush masks, boxes and rotated "
            "boxes, points and polylines, each named by its class and coloured as in "
            "--ontology (else a fixed palette)."
        ),
        func=cmd_preview,
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNG files")
    _add_dataset_options(p)
    p.add_argument(
        "--task",
        choices=("instance", "detection", "semantic"),
        default="instance",
        help="what to draw: instance masks and boxes (default; brush as connected "
        "components), detection boxes only, or the semantic label map",
    )
    p.add_argument("--limit", type=_positive_int, default=None, metavar="N", help="first N samples")
    p.add_argument(
        "--clips",
        type=_positive_int,
        default=None,
        metavar="T",
        help="videos: write clips of T frames as animated GIFs (AngoVideoDataset, "
        "interpolated instances dashed, track ids shown) instead of PNGs",
    )

    p = _add_command(
        sub,
        "convert",
        help="convert an export to COCO JSON, label PNGs or YOLO labels",
        description=(
            "--to coco: COCO ground truth JSON (category id = label; polygons, RLE for "
            "holes and brush), from the annotations alone (images are read only where the "
            "export lacks their size).  --to masks: one uint8 label PNG per image, "
            "OUT/<externalId stem>.png (0 background, 255 ignore, brush included), and "
            "OUT/classes.json.  --to yolo: OUT/labels/<externalId stem>.txt with "
            "'class cx cy w h' normalized to [0, 1] (class = label - 1), OUT/classes.txt "
            "and OUT/data.yaml."
        ),
        func=cmd_convert,
    )
    p.add_argument(
        "--to",
        required=True,
        choices=("coco", "masks", "yolo", "ytvis", "mot"),
        help="output format (ytvis: YouTube-VIS JSON of the video tracks; mot: "
        "MOTChallenge gt.txt per video)",
    )
    p.add_argument(
        "--out",
        required=True,
        help="the JSON file (coco, ytvis) or the output folder (masks, yolo, mot)",
    )
    _add_dataset_options(p)
    p.add_argument(
        "--task",
        choices=("detection", "instance"),
        default=None,
        help="coco only: instance (default: area shapes with segmentations) or detection "
        "(also axis-aligned bounding boxes)",
    )
    p.add_argument(
        "--brush-components",
        action="store_true",
        help="coco, yolo: add one instance per connected component of each brush class "
        "(masks always include brush)",
    )

    p = _add_command(
        sub,
        "evaluate",
        help="COCO mAP / mIoU of predictions against an export",
        description=(
            "Score predictions against the export's ground truth. detection/instance: a COCO "
            "results JSON (a list of {image_id, category_id, score, bbox[, segmentation]}; "
            "image_id is the sample index as in ango-torch convert, or the assetId (with "
            "'page' for a multi-page asset); "
            "category_id is the label, i.e. the class's position in the class list). "
            "semantic: a folder of uint8 label PNGs named as `ango-torch convert --to masks` "
            "names them. Prints a table; --out writes JSON."
        ),
        func=cmd_evaluate,
    )
    _add_dataset_options(p)
    p.add_argument("--predictions", required=True, help="results JSON, or a folder of PNGs")
    p.add_argument("--task", choices=("detection", "instance", "semantic"), default="instance")
    p.add_argument("--iou-types", default=None, help="bbox,segm (default: what the results hold)")
    p.add_argument("--backend", choices=("auto", "pycocotools", "faster_coco_eval"), default="auto")
    p.add_argument(
        "--brush-components",
        action="store_true",
        help="brush classes as one instance per connected component",
    )
    p.add_argument("--out", default=None, help="write the metrics as JSON here")

    from .split import add_split_parser, run_split

    add_split_parser(sub, _add_source).set_defaults(func=run_split)

    from .shard import add_shard_parser, run_shard

    add_shard_parser(sub).set_defaults(func=run_shard)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ango-torch`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except AngoTorchError as exc:
        # Exit 2 for bad input of any kind (1 means "problems found"): one line, no
        # traceback, whatever the message holds.
        message = " ".join(str(exc).splitlines())
        print(f"ango-torch {args.command}: error: {message}", file=sys.stderr)
        return 2
