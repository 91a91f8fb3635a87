"""The ``ango-torch`` command line: inspect, validate, prefetch, preview, convert, evaluate."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
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
    )
    # Assets the reader could not parse have no files here: they count as failures.
    failures = [f"unreadable asset #{s.index}: {s.reason}" for s in export.skipped]
    failures += [message for _, message in report.failed]
    print(
        f"{args.export} → {args.to}: {report.fetched} fetched, "
        f"{report.skipped} skipped (already complete), {len(failures)} failed"
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
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar (default: when stderr is a terminal and tqdm is installed)",
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


def _output_paths(ds: Any, out: str, suffix: str) -> list[Path]:
    """``out/<externalId with suffix>`` per sample; the full name where stems collide."""
    from .fetch import asset_path

    idx = ds.export.index
    names = []
    for i in range(len(ds)):
        page = int(ds._samples[i, 1])
        external_id = idx.string(idx.asset_external_id[ds.asset_index(i)]) or ds.asset_id(i)
        # asset_path refuses ids that would leave `out` ('..', absolute paths).
        path = asset_path(
            out, asset_id=ds.asset_id(i), external_id=external_id, page=None if page < 0 else page
        )
        names.append(path)
    stems = Counter(PurePosixPath(n).with_suffix("") for n in names)
    return [
        Path(n + suffix if stems[PurePosixPath(n).with_suffix("")] > 1 else n).with_suffix(suffix)
        for n in names
    ]


def _convert_masks(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ._progress import progress
    from .preview import save_png

    ds = _dataset(args, task="semantic", brush=False)
    if len(ds.classes) > 255:
        raise AngoTorchError(
            f"--to masks: {len(ds.classes) - 1} classes do not fit uint8 label PNGs "
            "(at most 254; 255 means ignore)"
        )
    out = Path(args.out)
    paths = _output_paths(ds, str(out), ".png")
    for i in progress(range(len(ds)), desc="masks", total=len(ds), enabled=args.progress):
        canvas = ds.get_height_and_width(i)
        mask = ds.load_target(i, canvas)["mask"].numpy().astype(np.uint8)
        paths[i].parent.mkdir(parents=True, exist_ok=True)
        save_png(torch.from_numpy(mask), paths[i])
    classes = {"classes": ds.classes, "background": 0, "ignore_index": 255}
    (out / "classes.json").write_text(json.dumps(classes, indent=2) + "\n", encoding="utf-8")
    print(f"{len(ds)} label PNGs (uint8 label = class index, 255 = ignore) written to {out}")
    print(f"classes: {out / 'classes.json'}")
    _report(ds)
    return 0


def _convert_yolo(args: argparse.Namespace) -> int:
    from ._progress import progress

    ds = _dataset(args, task="detection", brush=args.brush_components)
    out = Path(args.out)
    paths = _output_paths(ds, str(out / "labels"), ".txt")
    boxes_written = 0
    for i in progress(range(len(ds)), desc="yolo", total=len(ds), enabled=args.progress):
        h, w = ds.get_height_and_width(i)
        target = ds.load_target(i, (h, w))
        lines = []
        for (x1, y1, x2, y2), label in zip(
            target["boxes"].tolist(), target["labels"].tolist(), strict=True
        ):
            cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
            lines.append(f"{label - 1} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}\n")
        paths[i].parent.mkdir(parents=True, exist_ok=True)
        paths[i].write_text("".join(lines), encoding="utf-8")
        boxes_written += len(lines)
    names = ds.classes[1:]
    (out / "classes.txt").write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    yaml = [
        f"# written by ango-torch convert --to yolo from {ds.export.source}",
        f"nc: {len(names)}",
    ]
    yaml += ["names:", *(f"  {k}: {json.dumps(n)}" for k, n in enumerate(names))]
    (out / "data.yaml").write_text("\n".join(yaml) + "\n", encoding="utf-8")
    print(f"{len(ds)} label files, {boxes_written} boxes written to {out / 'labels'}")
    print(f"classes: {out / 'classes.txt'} and {out / 'data.yaml'} (class = label - 1)")
    _report(ds)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .coco import write_coco

    if args.task is not None and args.to != "coco":
        print(
            f"ango-torch convert: --task applies to --to coco only ({args.to} has its own)",
            file=sys.stderr,
        )
        return 2
    if args.to == "masks":
        return _convert_masks(args)
    if args.to == "yolo":
        return _convert_yolo(args)
    task: Literal["detection", "instance"] = "instance" if args.task is None else args.task
    ds = _dataset(args, task=task, brush=args.brush_components)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    coco = write_coco(ds, args.out)
    print(
        f"{args.out}: COCO {task} ground truth, {len(coco['images'])} images, "
        f"{len(coco['annotations'])} annotations, {len(coco['categories'])} categories"
    )
    _report(ds)
    return 0


def _not_yet(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        print(f"ango-torch {name}: not yet implemented", file=sys.stderr)
        return 2

    return run


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ango-torch``."""
    parser = argparse.ArgumentParser(
        prog="ango-torch", description="Ango Hub exports as PyTorch training data."
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
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar (default: when stderr is a terminal and tqdm is installed)",
    )
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

    for name, help_text in (("evaluate", "COCO mAP / mIoU of predictions against an export"),):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("args", nargs="*")
        p.set_defaults(func=_not_yet(name))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ango-torch`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except AngoTorchError as exc:
        print(f"ango-torch {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
