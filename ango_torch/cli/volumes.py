"""``--volumes`` of ``ango-torch inspect`` and ``validate``: read each volume and its labels."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_volume_options(p: argparse.ArgumentParser) -> None:
    """``--volumes`` and what reading them needs (``--root``; ``--allow-local-urls`` is
    added by the caller where the command has it)."""
    p.add_argument(
        "--volumes",
        action="store_true",
        help="also read every volume asset and its .seg.nrrd (needs ango_torch[medical]): "
        "shapes, spacing, orientation, segments and classes, grid mismatches, label "
        "values with no class",
    )
    p.add_argument(
        "--root",
        default=None,
        help="with --volumes: folder holding the volumes (ROOT/<externalId>)",
    )


def volume_reports(args: argparse.Namespace, export: Any) -> list[dict[str, Any]]:
    """The per-volume reports of ``export`` (see
    :func:`ango_torch.datasets.volume_report.volume_reports`)."""
    from ..datasets.volume import AngoVolumeDataset
    from ..datasets.volume_report import volume_reports as reports

    ds = AngoVolumeDataset(
        export,
        root=args.root,
        ontology=getattr(args, "ontology", None),
        stage=getattr(args, "stage", None),
        metatensor=False,
        allow_local_urls=getattr(args, "allow_local_urls", False),
    )
    return reports(ds)


def print_volumes(reports: list[dict[str, Any]], out: Any = sys.stdout) -> None:
    """One line per volume, then one per segment."""
    print(f"volumes      {len(reports)}", file=out)
    for r in reports:
        head = f"  {r['asset']} (#{r['index']})"
        if r["error"]:
            print(f"{head}: {r['error']}", file=out)
            continue
        shape = "×".join(str(v) for v in r["shape"])
        spacing = ", ".join(f"{v:g}" for v in r["spacing"])
        print(
            f"{head}: {r['format']} {shape} ×{r['channels']}, spacing ({spacing}) mm, "
            f"{r['orientation']}, label grid {r['label_grid']}",
            file=out,
        )
        for s in r["segments"]:
            name = f" {s['name']!r}" if s["name"] else ""
            print(
                f"    segment {s['number']}{name}: value {s['label_value']}, layer "
                f"{s['layer']} → {s['class'] or '(no class)'}",
                file=out,
            )
