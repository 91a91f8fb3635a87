"""``ango-torch convert``: COCO JSON, semantic label PNGs, YOLO labels."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from ..errors import AngoTorchError
from ..evaluation.coco import write_coco
from ._common import _dataset, _report

__all__ = ["output_paths", "run_convert"]


def output_paths(ds: Any, out: str, suffix: str) -> list[Path]:
    """One output file per sample, no two on one path (compared up to case).

    ``out/<name><suffix>`` with ``<name>`` the sample's file under ``root``
    (:mod:`ango_torch.assets.layout`: its externalId where unique, else
    ``_assets/<assetId>/<externalId>``; pages as ``<name>.pages/<p>``) with its
    extension replaced by ``suffix``, or appended where that would make two names meet
    (``a.jpg`` and ``a.png`` → ``a.jpg.png`` and ``a.png.png``).

    Raises:
        AngoTorchError: Two samples would still share a file (assets with the same
            assetId and externalId).
    """
    from ..assets.fetch import asset_path
    from ..assets.layout import shared_assets

    idx = ds.export.index
    shared = shared_assets(idx)
    names = []
    for i in range(len(ds)):
        a, page = ds.asset_index(i), ds.sample_location(i)[1]
        external_id = idx.string(idx.asset_external_id[a]) or ds.asset_id(i)
        # asset_path refuses ids that would leave `out` ('..', absolute paths).
        path = asset_path(
            out,
            asset_id=ds.asset_id(i),
            external_id=external_id,
            page=None if page < 0 else page,
            shared=bool(shared[a]),
        )
        names.append(path)
    full = [False] * len(names)
    while True:  # append the suffix wherever replacing the extension makes names meet
        paths = [
            n + suffix if f else str(PurePosixPath(n).with_suffix(suffix))
            for n, f in zip(names, full, strict=True)
        ]
        counts = Counter(p.casefold() for p in paths)
        clash = [not f and counts[p.casefold()] > 1 for p, f in zip(paths, full, strict=True)]
        if not any(clash):
            break
        full = [f or c for f, c in zip(full, clash, strict=True)]
    owner: dict[str, int] = {}
    for i, p in enumerate(paths):
        j = owner.setdefault(p.casefold(), i)
        if j != i:
            raise AngoTorchError(
                f"{ds._label(j)} and {ds._label(i)} would both be written to {p!r} (the same "
                "assetId and externalId twice: see ango-torch validate)"
            )
    return [Path(p) for p in paths]


def _convert_masks(args: argparse.Namespace) -> int:
    import numpy as np

    from .._progress import progress
    from ..assets.decode import write_png

    ds = _dataset(args, task="semantic", brush=False)
    if len(ds.classes) > 255:
        raise AngoTorchError(
            f"--to masks: {len(ds.classes) - 1} classes do not fit uint8 label PNGs "
            "(at most 254; 255 means ignore)"
        )
    out = Path(args.out)
    paths = output_paths(ds, str(out), ".png")
    for i in progress(range(len(ds)), desc="masks", total=len(ds), enabled=args.progress):
        canvas = ds.get_height_and_width(i)
        mask = ds.load_target(i, canvas)["mask"].numpy().astype(np.uint8)
        paths[i].parent.mkdir(parents=True, exist_ok=True)
        write_png(mask, paths[i])
    classes = {"classes": ds.classes, "background": 0, "ignore_index": 255}
    (out / "classes.json").write_text(json.dumps(classes, indent=2) + "\n", encoding="utf-8")
    print(f"{len(ds)} label PNGs (uint8 label = class index, 255 = ignore) written to {out}")
    print(f"classes: {out / 'classes.json'}")
    _report(ds)
    return 0


def _convert_yolo(args: argparse.Namespace) -> int:
    from .._progress import progress

    ds = _dataset(args, task="detection", brush=args.brush_components)
    out = Path(args.out)
    paths = output_paths(ds, str(out / "labels"), ".txt")
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


def run_convert(args: argparse.Namespace) -> int:

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
    if args.to in ("ytvis", "mot"):
        from .convert_video import convert_mot, convert_ytvis

        return convert_ytvis(args) if args.to == "ytvis" else convert_mot(args)
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
