"""``ango-torch prefetch``: copy an export's images and brush files to a folder."""

from __future__ import annotations

import argparse

from ._common import _FAILURE_LINES, _load


def cmd_prefetch(args: argparse.Namespace) -> int:
    from ..assets.prefetch import prefetch, prefetch_items

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
