"""``ango-torch shard``: write an export as WebDataset shards plus ``index.json``."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import (
    _add_allow_local_urls,
    _add_progress,
    _add_root_ontology_stage,
    _add_source,
    _source_options,
)
from .split import _by, _fractions

__all__ = ["add_shard_parser", "run_shard"]


def add_shard_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``shard`` on the subcommand parsers ``sub``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "shard",
        help="write WebDataset .tar shards and index.json for streaming (AngoShards)",
        description=(
            "Write one sample per image asset (the original image bytes, the asset's "
            "export record as JSON, its brush PNG where present) into WebDataset .tar "
            "shards under OUT (a folder or fsspec URL), plus index.json. The same export "
            "gives byte-identical shards; an interrupted run continues where it stopped. "
            "Read them with ango_torch.AngoShards(OUT/index.json, task=...) or any "
            "WebDataset reader."
        ),
    )
    _add_source(p)
    p.add_argument("--out", required=True, metavar="DIR_OR_URL", help="destination")
    _add_root_ontology_stage(p, stage_help="shard this stage instead of the answer")
    p.add_argument("--shard-size", default="512MB", help="target bytes per shard (default 512MB)")
    p.add_argument(
        "--split-by",
        type=_by,
        default=None,
        metavar="KIND",
        help="write leak-free splits (as `ango-torch split --by KIND`: asset, batch, video or "
        "metadata:KEY), each in OUT/<name>/ with its own index.json; OUT/splits.json lists them",
    )
    p.add_argument(
        "--fractions",
        type=_fractions,
        default={"train": 0.8, "val": 0.2},
        metavar="NAME=F,...",
        help="with --split-by: split names and fractions (default train=0.8,val=0.2)",
    )
    p.add_argument("--seed", type=int, default=0, help="with --split-by: hash seed (default 0)")
    _add_allow_local_urls(p)
    _add_progress(p)
    return p


def run_shard(args: argparse.Namespace) -> int:
    from ..datasets.shard_writer import write_shards

    index = write_shards(
        args.export,
        args.out,
        **_source_options(args),
        shard_size=args.shard_size,
        allow_local_urls=args.allow_local_urls,
        show_progress=args.progress,
        split_by=args.split_by,
        fractions=args.fractions,
        seed=args.seed,
    )
    if args.split_by is not None:
        for name, entry in index["splits"].items():
            print(f"{args.out}/{name}: {entry['samples']} samples of {entry['assets']} assets")
        return 0
    print(
        f"{args.export} → {args.out}: {index['samples']} samples in "
        f"{len(index['shards'])} shards, {len(index['skipped'])} assets skipped"
    )
    for s in index["skipped"][:20]:
        print(f"  skipped asset #{s['index']} {s['asset']!r}: {s['reason']}")
    return 0
