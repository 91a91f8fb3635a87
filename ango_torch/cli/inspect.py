"""``ango-torch inspect`` and ``ango-torch validate``: counts and problems of an export."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._common import _load, _print_counts
from .video_report import print_videos, video_problems, video_reports


def cmd_inspect(args: argparse.Namespace) -> int:
    from ..export.ontology import load_ontology
    from ..export.validate import find_problems, summarize

    export = _load(args, on_error="skip")
    summary = summarize(export, stage=args.stage)
    ontology = load_ontology(args.ontology) if args.ontology else None
    problems = find_problems(export, ontology=ontology)
    videos = video_reports(export)
    problems += video_problems(videos)
    volumes = _volumes(args, export)
    if args.json:
        summary["problems"] = len(problems)
        summary["videos"] = videos
        if volumes is not None:
            summary["volumes"] = volumes
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
    print_videos(videos, out)
    if volumes is not None:
        from .volumes import print_volumes

        print_volumes(volumes, out)
    return 0


def _volumes(args: argparse.Namespace, export: Any) -> list[dict[str, Any]] | None:
    if not getattr(args, "volumes", False):
        return None
    from .volumes import volume_reports

    return volume_reports(args, export)


def cmd_validate(args: argparse.Namespace) -> int:
    from ..export.ontology import load_ontology
    from ..export.validate import find_problems

    export = _load(args, on_error="skip")
    ontology = load_ontology(args.ontology) if args.ontology else None
    problems = find_problems(export, ontology=ontology)
    videos = video_reports(export)
    problems += video_problems(videos)
    volumes = _volumes(args, export)
    vol_lines: list[str] = []
    if volumes is not None:
        from ..datasets.volume_report import volume_problems

        vol_lines = volume_problems(volumes)
    if args.json:
        doc: dict[str, Any] = {
            "source": export.source,
            "assets": len(export),
            "problems": [p.to_dict() for p in problems],
        }
        if volumes is not None:
            doc["volume_problems"] = vol_lines
        print(json.dumps(doc, indent=2))
    else:
        for line in vol_lines:
            print(line)
        for p in problems[: args.limit]:
            print(p)
        if len(problems) > args.limit:
            print(f"... and {len(problems) - args.limit} more (use --limit or --json)")
        print(f"{len(export)} assets, {len(problems)} problems" + ("" if problems else ": OK"))
    return 1 if problems or vol_lines else 0
