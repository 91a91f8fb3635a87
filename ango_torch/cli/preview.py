"""``ango-torch preview``: draw the dataset's samples with their targets as PNGs."""

from __future__ import annotations

import argparse

from ._common import _FAILURE_LINES, _dataset, _report


def cmd_preview(args: argparse.Namespace) -> int:
    from ..datasets.preview import preview

    if getattr(args, "clips", None):
        from .preview_clips import preview_clips_cmd

        return preview_clips_cmd(args)
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
