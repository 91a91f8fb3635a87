"""``ango-torch split``: leak-free train/val/test lists of an export's assets."""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_split_parser", "run_split"]


def _fractions(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            f = float(value)
        except ValueError:
            f = math.nan
        if not sep or not name or not math.isfinite(f) or f < 0 or name in out:
            raise argparse.ArgumentTypeError(
                f"expected NAME=FRACTION,... (e.g. train=0.8,val=0.2), got {text!r}"
            )
        if os.sep in name or name.startswith(".") or (os.altsep and os.altsep in name):
            raise argparse.ArgumentTypeError(f"split name {name!r} is not a plain file name")
        out[name] = f
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise argparse.ArgumentTypeError(f"fractions must sum to 1, got {sum(out.values())!r}")
    return out


def _by(text: str) -> str:
    if text in ("asset", "batch", "video") or (
        text.startswith("metadata:") and len(text) > len("metadata:")
    ):
        return text
    raise argparse.ArgumentTypeError(f"expected asset, batch, video or metadata:KEY, got {text!r}")


def add_split_parser(
    sub: Any, add_source: Callable[[argparse.ArgumentParser], None]
) -> argparse.ArgumentParser:
    """Register ``split`` on the subcommand parsers ``sub``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "split",
        help="write leak-free train/val/test lists of assets",
        description=(
            "Assign the export's assets to splits so that no group straddles two: an asset "
            "(with all its pages), an Ango batch (assets sharing one), or a metadata value "
            "(--by metadata:KEY). Each group's side comes from a hash of (seed, group key) "
            "alone: the same export and seed give the same lists, and assets added later "
            "never move an existing asset. Writes OUT/<name>.txt (one assetId per line, in "
            "export order) and OUT/split.json (asset positions, assetIds, counts), and "
            "prints per-split asset, object and class counts."
        ),
    )
    add_source(p)
    p.add_argument(
        "--fractions",
        type=_fractions,
        default={"train": 0.8, "val": 0.2},
        metavar="NAME=F,...",
        help="split names and fractions summing to 1 (default train=0.8,val=0.2)",
    )
    p.add_argument(
        "--by",
        type=_by,
        default="asset",
        metavar="KIND",
        help="asset (default), batch, video or metadata:KEY",
    )
    p.add_argument("--seed", type=int, default=0, help="hash seed (default 0)")
    p.add_argument(
        "--stratify",
        action="store_true",
        help="balance classes (within one group per class; not stable as the export grows)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the lists")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    return p


def run_split(args: argparse.Namespace) -> int:
    """Run ``ango-torch split``; returns the exit status."""
    from ..export.groups import asset_key
    from ..training.splits import split
    from ._common import _load

    export = _load(args)
    result = split(export, args.fractions, by=args.by, seed=args.seed, stratify=args.stratify)
    idx = export.index
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lists: dict[str, Any] = {}
    for name, positions in result.items():
        ids = [asset_key(idx, a) for a in positions]
        (out / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
        lists[name] = {"indices": list(positions), "asset_ids": ids}
    report = result.report.to_dict()
    doc = {
        "export": export.source,
        "fractions": args.fractions,
        "splits": lists,
        "report": report,
    }
    (out / "split.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(result.report.summary())
        print(f"wrote {', '.join(f'{n}.txt' for n in result)} and split.json to {out}")
    return 0
