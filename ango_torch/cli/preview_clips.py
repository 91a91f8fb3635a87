"""``ango-torch preview --clips T``: video clips as animated GIFs."""

from __future__ import annotations

import argparse
from typing import Literal

from ._common import _FAILURE_LINES, _report, _source_options


def preview_clips_cmd(args: argparse.Namespace) -> int:
    """Write the first ``--limit`` clips (all by default) of the export's videos."""
    from ..datasets.video import AngoVideoDataset
    from ..datasets.video_preview import preview_clips

    task: Literal["detection", "instance"] = "instance" if args.task == "instance" else "detection"
    vds = AngoVideoDataset(
        args.export,
        clip_len=args.clips,
        task=task,
        **_source_options(args),
    )
    indices = range(min(len(vds), args.limit)) if args.limit is not None else None
    paths = preview_clips(vds, args.out, indices=indices)
    print(f"{len(paths)} clip previews ({task}, {args.clips} frames) written to {args.out}")
    for path in paths[:_FAILURE_LINES]:
        print(f"  {path}")
    _report(vds.frames)
    return 0
