"""The ``ango-torch`` command line: inspect, validate, prefetch, preview, convert, evaluate."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, Literal

from .errors import AngoTorchError

__all__ = ["main"]


def _json_arg(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def _add_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("export", help="export file: .json, .ndjson, .zip, .json.gz (path or URL)")
    p.add_argument(
        "--storage-options",
        type=_json_arg,
        default=None,
        metavar="JSON",
        help="fsspec storage options as a JSON object",
    )
    p.add_argument("--cache-dir", default=None, help="persist the index (and assets) here")


def _load(args: argparse.Namespace, *, on_error: Literal["raise", "skip"] = "raise") -> Any:
    from .export import load_export

    return load_export(
        args.export,
        storage_options=args.storage_options,
        cache_dir=args.cache_dir,
        on_error=on_error,
    )


def _print_counts(title: str, counts: dict[str, int], out: Any) -> None:
    print(f"{title}:", file=out)
    if not counts:
        print("  (none)", file=out)
    width = max((len(k) for k in counts), default=0)
    for k, v in counts.items():
        print(f"  {k:<{width}}  {v:>8}", file=out)


def cmd_inspect(args: argparse.Namespace) -> int:
    from .ontology import load_ontology
    from .validate import find_problems, summarize

    export = _load(args, on_error="skip")
    summary = summarize(export, stage=args.stage)
    ontology = load_ontology(args.ontology) if args.ontology else None
    problems = find_problems(export, ontology=ontology)
    if args.json:
        summary["problems"] = len(problems)
        print(json.dumps(summary, indent=2))
        return 0
    out = sys.stdout
    print(f"export       {summary['source']}", file=out)
    print(f"assets       {summary['assets']} ({summary['skipped']} unreadable)", file=out)
    print(f"stage        {summary['stage']} ({summary['assets_with_stage']} assets)", file=out)
    print(f"objects      {summary['objects']}", file=out)
    sizes = summary["image_sizes"]
    print(f"image sizes  {sizes['known']} known, {sizes['missing']} missing", file=out)
    print(f"pages        {summary['pages']}", file=out)
    print(f"classif.     {summary['classifications']} image-level", file=out)
    print(f"relations    {summary['relations']}", file=out)
    print(f"brush masks  {summary['brush_masks']}", file=out)
    _print_counts("objects per class", summary["objects_per_class"], out)
    _print_counts("objects per tool", summary["objects_per_tool"], out)
    _print_counts("stages (snapshots)", summary["stages"], out)
    _print_counts("batches", summary["batches"], out)
    codes: dict[str, int] = {}
    for p in problems:
        codes[p.code] = codes.get(p.code, 0) + 1
    _print_counts(f"problems ({len(problems)}; details: ango-torch validate)", codes, out)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .ontology import load_ontology
    from .validate import find_problems

    export = _load(args, on_error="skip")
    ontology = load_ontology(args.ontology) if args.ontology else None
    problems = find_problems(export, ontology=ontology)
    if args.json:
        print(
            json.dumps(
                {
                    "source": export.source,
                    "assets": len(export),
                    "problems": [p.to_dict() for p in problems],
                },
                indent=2,
            )
        )
    else:
        for p in problems[: args.limit]:
            print(p)
        if len(problems) > args.limit:
            print(f"... and {len(problems) - args.limit} more (use --limit or --json)")
        print(f"{len(export)} assets, {len(problems)} problems" + ("" if problems else ": OK"))
    return 1 if problems else 0


_FAILURE_LINES = 50


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 1, got {value}")
    return value


def cmd_prefetch(args: argparse.Namespace) -> int:
    from .prefetch import prefetch, prefetch_items

    export = _load(args, on_error="skip")
    items = prefetch_items(export, stage=args.stage, brush=args.brush)
    report = prefetch(
        items,
        to=args.to,
        concurrency=args.concurrency,
        storage_options=args.storage_options,
        progress=args.progress,
        verify=args.verify,
        allow_local_urls=args.allow_local_urls,
    )
    # Assets the reader could not parse have no files here: they count as failures.
    failures = [f"unreadable asset #{s.index}: {s.reason}" for s in export.skipped]
    if export.skipped_count > len(export.skipped):  # reasons kept: limits.max_skipped
        failures.append(f"{export.skipped_count - len(export.skipped)} more unreadable assets")
    failures += [message for _, message in report.failed]
    print(
        f"{args.export} → {args.to}: {report.fetched} fetched, "
        f"{report.skipped} skipped (already complete), {len(failures)} failed"
    )
    shared = sum(item.shared for item in items if item.kind == "image" and not item.page)
    if shared:
        print(
            f"{shared} assets share an externalId with another (up to case): their images "
            f"are under {args.to}/_assets/<assetId>/ (see ango-torch validate)"
        )
    for message in failures[:_FAILURE_LINES]:
        print(f"  {message}")
    if len(failures) > _FAILURE_LINES:
        print(f"  ... and {len(failures) - _FAILURE_LINES} more")
    if failures:
        print("run the same command again to retry the failures; complete files are skipped")
        return 1
    print(f"done: pass root={args.to!r} (or --root {args.to}) to read the files from there")
    return 0


def _dataset(
    args: argparse.Namespace,
    *,
    task: Literal["detection", "instance", "semantic"],
    brush: bool,
) -> Any:
    from .dataset import AngoDataset

    return AngoDataset(
        args.export,
        task=task,
        root=args.root,
        ontology=args.ontology,
        stage=args.stage,
        storage_options=args.storage_options,
        cache_dir=args.cache_dir,
        on_error=args.on_error,
        brush_instances="components" if brush else None,
        allow_local_urls=getattr(args, "allow_local_urls", False),
        follow_symlinks=getattr(args, "follow_symlinks", False),
    )


def _add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar (default: when stderr is a terminal and tqdm is installed)",
    )


def _add_dataset_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--root",
        default=None,
        help="folder or fsspec URL holding the images as ROOT/<externalId> (e.g. after "
        "ango-torch prefetch); default: the export's URLs",
    )
    p.add_argument("--ontology", default=None, help="categorySchema JSON: class order, colours")
    p.add_argument("--stage", default=None, help="use this stage instead of the exported answer")
    p.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        default="raise",
        help="malformed assets: stop (default) or leave them out and report them",
    )
    _add_allow_local_urls(p)
    p.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="follow symlinks under --root that lead out of it (default: refuse them)",
    )
    _add_progress(p)


def _add_allow_local_urls(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-local-urls",
        action="store_true",
        help="read export URLs that name files on this machine (paths, file://); by "
        "default they are refused: an export is untrusted and its URLs are remote",
    )


def _report(ds: Any) -> None:
    summary = ds.report.summary()
    if summary != "nothing skipped or dropped":
        print(f"note: {summary}".replace("\n", "\n      "))


def cmd_preview(args: argparse.Namespace) -> int:
    from .preview import preview

    ds = _dataset(args, task=args.task, brush=args.task != "semantic")
    indices = range(min(len(ds), args.limit)) if args.limit is not None else None
    paths = preview(ds, args.out, indices=indices, progress=args.progress)
    print(f"{len(paths)} previews ({args.task}) written to {args.out}")
    for path in paths[:_FAILURE_LINES]:
        print(f"  {path}")
    if len(paths) > _FAILURE_LINES:
        print(f"  ... and {len(paths) - _FAILURE_LINES} more")
    _report(ds)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from ._cli_convert import run_convert

    return run_convert(args)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ._cli_evaluate import run_evaluate

    return run_evaluate(args)


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

    p = sub.add_parser(
        "inspect",
        help="summarize an export",
        description=(
            "Summary of an export: assets, objects per class and tool, stages, batches, problems."
        ),
    )
    _add_source(p)
    p.add_argument("--stage", default=None, help="count this stage instead of the answer")
    p.add_argument("--ontology", default=None, help="categorySchema JSON (path or URL)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser(
        "validate",
        help="list problems; exit 1 if any",
        description=(
            "List every problem of an export (malformed assets, polygons under 3 points, "
            "zero-area or far-outside geometry, duplicate objectIds, dangling relations, "
            "unknown tools, missing image sizes); exit status 1 when there is any."
        ),
    )
    _add_source(p)
    p.add_argument("--ontology", default=None, help="also check titles against it")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--limit", type=int, default=200, help="problems to print (default 200)")
    p.set_defaults(func=cmd_validate)

    from .prefetch import DEFAULT_CONCURRENCY

    p = sub.add_parser(
        "prefetch",
        help="download every asset and brush mask to a folder",
        description=(
            "Download every image (each page of a multi-page asset) and the brush mask of "
            "the answer or of --stage into DIR, checking that each decodes.  Afterwards "
            "root=DIR (in Python) or --root DIR (on the command line) reads them from "
            "there instead of the export's signed URLs, which expire.  Resumable: files "
            "already complete in DIR are skipped.  Exit status 1 when any file failed."
        ),
    )
    _add_source(p)
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
    p.set_defaults(func=cmd_prefetch)

    p = sub.add_parser(
        "preview",
        help="draw annotations over images into PNG files",
        description=(
            "Draw every sample's annotations over its image into DIR/<index>_<name>.png: "
            "masks (filled, outlined, holes left clear), brush masks, boxes and rotated "
            "boxes, points and polylines, each named by its class and coloured as in "
            "--ontology (else a fixed palette)."
        ),
    )
    _add_source(p)
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
    p.set_defaults(func=cmd_preview)

    p = sub.add_parser(
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
    )
    _add_source(p)
    p.add_argument("--to", required=True, choices=("coco", "masks", "yolo"), help="output format")
    p.add_argument(
        "--out", required=True, help="the JSON file (coco) or the output folder (masks, yolo)"
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
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser(
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
    )
    _add_source(p)
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
    p.set_defaults(func=cmd_evaluate)

    from ._cli_split import add_split_parser, run_split

    add_split_parser(sub, _add_source).set_defaults(func=run_split)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
