"""Builders of small exports, made in code on odd, non-square canvases (17×11)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

W, H = 17, 11  # odd, non-square: a height/width swap fails loudly
_ids = itertools.count()


def oid(prefix: str = "o") -> str:
    return f"{prefix}{next(_ids):06d}"


def make_polygon(points: list[list[float]], title: str = "car", **extra: Any) -> dict[str, Any]:
    return {
        "polygon": points,
        "objectId": oid(),
        "schemaId": f"s-{title}",
        "title": title,
        "classifications": [],
        **extra,
    }


def make_box(
    x: float, y: float, w: float, h: float, title: str = "car", **extra: Any
) -> dict[str, Any]:
    return {
        "bounding-box": {"x": x, "y": y, "width": w, "height": h},
        "objectId": oid(),
        "schemaId": f"s-{title}",
        "title": title,
        "classifications": [],
        **extra,
    }


def make_segmentation(
    zones: list[dict[str, Any]], title: str = "building", **extra: Any
) -> dict[str, Any]:
    return {
        "segmentation": {"zones": zones},
        "objectId": oid(),
        "schemaId": f"s-{title}",
        "title": title,
        "classifications": [],
        **extra,
    }


def make_asset(
    tools: list[dict[str, Any]] | None = None,
    *,
    external_id: str | None = None,
    width: int | None = W,
    height: int | None = H,
    stage_history: list[dict[str, Any]] | None = None,
    **task_extra: Any,
) -> dict[str, Any]:
    n = next(_ids)
    meta = {}
    if width is not None:
        meta["width"] = width
    if height is not None:
        meta["height"] = height
    return {
        "asset": f"https://bucket.s3.amazonaws.com/{n}.png",
        "assetId": f"a{n:023d}",
        "externalId": external_id or f"img_{n}.png",
        "metadata": meta,
        "batches": ["train"],
        "task": {
            "taskId": f"t{n}",
            "stage": "Complete",
            "stageId": "Complete",
            "tools": tools or [],
            "classifications": [],
            "relations": [],
            "brushDataUrl": "",
            "medicalBrushDataUrl": "",
            "stageHistory": stage_history or [],
            **task_extra,
        },
    }


def make_v2_asset(objects: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    a = make_asset(**kw)
    task = a.pop("task")
    a["tasks"] = [{"taskId": task["taskId"], "objects": objects, "classifications": []}]
    return a


def make_export(n: int = 3) -> list[dict[str, Any]]:
    return [
        make_asset([make_polygon([[1, 1], [9, 1], [5, 8]]), make_box(2, 2, 4, 3, "person")])
        for _ in range(n)
    ]


def write_images(folder: Any, assets: list[dict[str, Any]], *, seed: int = 0) -> Any:
    """Write a random RGB PNG per asset (its metadata size, else 17×11) as root/<externalId>."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for a in assets:
        meta = a.get("metadata") or {}
        w, h = meta.get("width") or W, meta.get("height") or H
        pixels = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / a["externalId"], format="PNG")
    return folder


def write_brush(path: Any, size: tuple[int, int], paint: dict[str, Any]) -> Any:
    """An RGBA brush PNG of ``size`` (H, W): ``paint`` maps '#rrggbb' → (slice_y, slice_x)."""
    import numpy as np
    from PIL import Image

    rgba = np.zeros((*size, 4), np.uint8)
    for color, (sy, sx) in paint.items():
        c = color.lstrip("#")
        rgba[sy, sx] = [int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), 255]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def brush_path(root: Any, asset: dict[str, Any], stage: str | None = None) -> Any:
    """Where ``root=`` looks for ``asset``'s brush PNG (named by its content, as
    ``ango-torch prefetch`` writes it): ``root/_brush/<assetId>[@stage].<key>.png``."""
    from pathlib import Path

    from ango_torch import load_export
    from ango_torch.assets.fetch import asset_path
    from ango_torch.assets.prefetch import prefetch_items

    (item,) = [i for i in prefetch_items(load_export([asset]), stage=stage) if i.kind == "brush"]
    return Path(
        asset_path(
            str(root),
            asset_id=item.asset_id,
            external_id=item.external_id,
            kind="brush",
            stage_key=item.stage_key,
            content_key=item.content_key,
        )
    )


# -- a rich synthetic export (tests/datasets/test_accounting.py, tests/export/test_export.py)
CLASSES = ["car", "person", "building"]
SQUARE = [[2, 2], [8, 2], [8, 7], [2, 7]]  # pixels x 2..7, y 2..6
SLIVER = [[2.6, 1], [2.9, 1], [2.9, 9]]  # between pixel centres: box, no pixel
TWICE = [[1, 1], [9, 1], [1, 9]] * 2  # the same triangle traced twice: even-odd cancels


def _tool(key: str, value: Any, title: str = "car", **extra: Any) -> dict[str, Any]:
    box = make_box(0, 0, 1, 1, title, **extra)
    del box["bounding-box"]
    return {key: value, **box}


def rich_assets(folder: Path) -> list[dict[str, Any]]:
    """Synthetic export (17×11 images): every way an object can be left out."""
    image = make_asset(
        [
            make_polygon(SQUARE),  # kept everywhere
            make_box(1, 1, 3, 3, "person"),  # detection; ignored by instance/semantic
            make_polygon(SLIVER),  # detection keeps its box; empty mask elsewhere
            make_polygon(TWICE),  # detection keeps its box; empty mask elsewhere
            make_polygon([[100, 100], [120, 100], [110, 120]]),  # outside the image
            make_polygon([[1, 1], [5, 1]]),  # degenerate (2 points)
            _tool("point", [3, 3], "person"),  # unused tool everywhere
            _tool("polyline", [[1, 1], [4, 4], [6, 1]]),  # unused tool everywhere
            make_polygon(SQUARE, "tree"),  # another class (not in CLASSES)
            make_segmentation(  # partly outside: clipped, kept everywhere
                [{"region": [[10, 5], [25, 5], [25, 15], [10, 15]], "holes": [SQUARE]}]
            ),
        ]
    )
    paged = make_asset(
        [
            make_polygon(SQUARE, page=0),  # kept
            make_box(1, 1, 3, 3, "person", page=1),  # detection only
            make_polygon(SQUARE, page=2),  # kept
            make_polygon([[1, 1], [6, 1], [3, 5]], "building", page=2),  # kept
            make_polygon(SQUARE, page=5),  # the asset has 3 pages: page outside
        ]
    )
    paged["dataset"] = [f"https://x/{paged['assetId']}/p{p}.png" for p in range(3)]
    video = make_asset(
        [make_box(1, 1, 3, 3), make_polygon(SQUARE)], external_id="drive.png"
    )  # a video by its metadata
    video["metadata"].update(frameTotal=10, frameRate=30)
    clip = make_asset([make_polygon(SQUARE)], external_id="clip.WEBM")  # by its extension
    assets = [image, paged, video, clip]
    write_images(folder, [image])
    pages = folder / f"{paged['externalId']}.pages"
    write_images(pages, [{"externalId": str(p), "metadata": {}} for p in range(3)])
    return assets


# -- the bundled sample (examples/data) ---------------------------------------------------

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "data"
# The command-line source of the bundled sample: export, --root, --ontology.
SAMPLE_ARGS = [
    str(SAMPLE / "sample_export.json"),
    "--root",
    str(SAMPLE / "images"),
    "--ontology",
    str(SAMPLE / "ontology.json"),
]


def sample_dataset(task: str = "instance", **kw: Any) -> Any:
    """``AngoDataset`` of the bundled sample (its images and ontology); ``kw`` as given."""
    import ango_torch

    return ango_torch.AngoDataset(
        SAMPLE / "sample_export.json",
        task=task,  # type: ignore[arg-type]
        root=SAMPLE / "images",
        ontology=SAMPLE / "ontology.json",
        **kw,
    )


def json_depth(value: object) -> int:
    """Nesting depth counted on a decoded JSON value (``[]``: 1; a scalar: 0): the
    reference the byte-level depth checks are tested against."""
    if isinstance(value, dict):
        return 1 + max((json_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((json_depth(v) for v in value), default=0)
    return 0


TYPED_SQUARE = [[1.5, 2], [30, 2.25], [30, 40], [1, 40]]


def typed_assets(n: int) -> list[dict[str, Any]]:
    """Boxes, polygons with a classification, segmentations with holes, points,
    metadata and a stage history: the shapes typed decoding reads (all of it
    typed-decodable)."""
    out = []
    for i in range(n):
        tools = [
            make_box(i, 2, 10.5, -4, metadata={"createdAt": 1693555521104, "createdBy": "a"}),
            make_polygon(
                [[x + i, y] for x, y in TYPED_SQUARE],
                classifications=[
                    {
                        "objectId": "c1",
                        "schemaId": "k",
                        "tool": "radio",
                        "title": "occluded",
                        "answer": "no",
                        "classifications": [],
                    }
                ],
            ),
            make_segmentation([{"region": TYPED_SQUARE, "holes": [[[5, 5], [9, 5], [7, 8]]]}]),
            {"point": [3, 4.5], "objectId": f"p{i}", "title": "tip", "schemaId": "sp"},
        ]
        history = [{"stage": "Label", "completedAt": "2023-09-01T08:05:21.104Z", "tools": tools}]
        out.append(make_asset(tools, external_id=f"img_{i}.jpg", stage_history=history))
    return out


def assert_same_index(a: Any, b: Any, where: str = "") -> None:
    """Two :class:`~ango_torch.export.index.ExportIndex`\\ es hold the same index.

    Every column is compared exactly, but the entries of the JSON table (``extras_*``:
    snapshot and asset extras, object rows) as JSON values: the typed decoder stores a
    tool's classifications and metadata as the file's own text (its key order, escapes,
    number spelling), the parser as JSON of the decoded values. The reference
    is the standard library's ``json``, with keys sorted (``1``, ``1.0`` and ``true``
    stay distinct).
    """
    import json

    import numpy as np

    arrays_a, arrays_b = a.arrays, b.arrays
    assert arrays_a.keys() == arrays_b.keys(), where
    for key, value in arrays_a.items():
        if key not in ("extras_blob", "extras_offsets"):
            np.testing.assert_array_equal(value, arrays_b[key], err_msg=f"{where}: {key}")
    assert len(arrays_a["extras_offsets"]) == len(arrays_b["extras_offsets"]), where

    def entries(arrays: Any) -> list[str]:
        blob, offsets = arrays["extras_blob"].tobytes(), arrays["extras_offsets"].tolist()
        return [
            json.dumps(json.loads(blob[s:e]), sort_keys=True)
            for s, e in itertools.pairwise(offsets)
        ]

    for k, (x, y) in enumerate(zip(entries(arrays_a), entries(arrays_b), strict=True)):
        assert x == y, f"{where}: JSON table entry {k}: {x} != {y}"
