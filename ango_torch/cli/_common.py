"""Helpers shared by the ``ango-torch`` commands: source/dataset options, loading, reports."""

from __future__ import annotations

import argparse
import json
from typing import Any, Literal


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
    from ..export.load import load_export

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


_FAILURE_LINES = 50


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 1, got {value}")
    return value


def _dataset(
    args: argparse.Namespace,
    *,
    task: Literal["detection", "instance", "semantic"],
    brush: bool,
) -> Any:
    from ..datasets.dataset import AngoDataset

    return AngoDataset(
        args.export,
        task=task,
        **_source_options(args),
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


def _add_root_ontology_stage(
    p: argparse.ArgumentParser, *, stage_help: str = "use this stage instead of the exported answer"
) -> None:
    """``--root``, ``--ontology`` and ``--stage``: where the images are and which labels."""
    p.add_argument(
        "--root",
        default=None,
        help="folder or fsspec URL holding the images as ROOT/<externalId> (e.g. after "
        "ango-torch prefetch); default: the export's URLs",
    )
    p.add_argument("--ontology", default=None, help="categorySchema JSON: class order, colours")
    p.add_argument("--stage", default=None, help=stage_help)


def _source_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments that :func:`_add_source` and :func:`_add_root_ontology_stage`
    give to a dataset or writer: ``root``, ``ontology``, ``stage``, ``storage_options``,
    ``cache_dir``."""
    return {
        "root": args.root,
        "ontology": args.ontology,
        "stage": args.stage,
        "storage_options": args.storage_options,
        "cache_dir": args.cache_dir,
    }


def _add_dataset_options(p: argparse.ArgumentParser) -> None:
    _add_root_ontology_stage(p)
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
