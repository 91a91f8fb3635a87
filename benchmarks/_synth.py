"""Synthetic exports for the benchmarks: Ango v3 JSON and the equivalent COCO JSON."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

CLASSES = ["car", "person", "bike", "bus", "truck", "dog", "sign", "tree"]


def _ring(rng: random.Random, cx: float, cy: float, r: float, n: int) -> list[list[float]]:
    return [
        [
            round(cx + r * (0.6 + 0.4 * rng.random()) * math.cos(2 * math.pi * k / n), 2),
            round(cy + r * (0.6 + 0.4 * rng.random()) * math.sin(2 * math.pi * k / n), 2),
        ]
        for k in range(n)
    ]


def make_asset(
    i: int, rng: random.Random, *, n_objects: int = 20, width: int = 1280, height: int = 720
) -> dict[str, Any]:
    tools: list[dict[str, Any]] = []
    for k in range(n_objects):
        title = CLASSES[rng.randrange(len(CLASSES))]
        cx, cy, r = rng.uniform(60, width - 60), rng.uniform(60, height - 60), rng.uniform(10, 50)
        base = {
            "objectId": f"{i:08x}{k:04x}",
            "schemaId": f"schema-{title}",
            "title": title,
            "classifications": [],
            "metadata": {"createdAt": 1693555521104 + k, "createdBy": "labeler@example.com"},
        }
        m = k % 10
        if m < 4:
            base["bounding-box"] = {
                "x": round(cx - r, 2),
                "y": round(cy - r, 2),
                "width": round(2 * r, 2),
                "height": round(1.5 * r, 2),
            }
        elif m < 7:
            base["polygon"] = _ring(rng, cx, cy, r, 12)
            base["classifications"] = [
                {
                    "objectId": f"c{i}{k}",
                    "schemaId": "occ",
                    "tool": "radio",
                    "title": "occluded",
                    "answer": "no",
                    "classifications": [],
                }
            ]
        elif m < 9:
            zone: dict[str, Any] = {"region": _ring(rng, cx, cy, r, 16), "holes": []}
            if m == 8:
                zone["holes"] = [_ring(rng, cx, cy, r / 4, 6)]
            base["segmentation"] = {"zones": [zone]}
        else:
            base["point"] = [round(cx, 2), round(cy, 2)]
        tools.append(base)
    return {
        "asset": f"https://bucket.s3.amazonaws.com/{i}.jpg?X-Amz-Date=20260901T080000Z"
        "&X-Amz-Expires=120000&X-Amz-Signature=abc",
        "assetId": f"{i:024x}",
        "externalId": f"img_{i:07d}.jpg",
        "metadata": {"width": width, "height": height},
        "batches": ["train"],
        "task": {
            "taskId": f"t{i:023x}",
            "stage": "Complete",
            "stageId": "Complete",
            "tools": tools,
            "classifications": [],
            "relations": [],
            "brushDataUrl": "",
            "medicalBrushDataUrl": "",
            "stageHistory": [],
        },
    }


def to_coco(assets: list[dict[str, Any]]) -> dict[str, Any]:
    """The same annotations as COCO (what a user would otherwise convert to)."""
    images, anns = [], []
    cats = {c: k + 1 for k, c in enumerate(CLASSES)}
    for i, a in enumerate(assets):
        images.append(
            {
                "id": i,
                "file_name": a["externalId"],
                "width": a["metadata"]["width"],
                "height": a["metadata"]["height"],
            }
        )
        for t in a["task"]["tools"]:
            ann: dict[str, Any] = {
                "id": len(anns) + 1,
                "image_id": i,
                "category_id": cats[t["title"]],
                "iscrowd": 0,
            }
            if "bounding-box" in t:
                b = t["bounding-box"]
                ann["bbox"] = [b["x"], b["y"], b["width"], b["height"]]
                ann["segmentation"] = []
            elif "polygon" in t or "segmentation" in t:
                rings = (
                    [t["polygon"]]
                    if "polygon" in t
                    else [z["region"] for z in t["segmentation"]["zones"]]
                )
                xs = [p[0] for r in rings for p in r]
                ys = [p[1] for r in rings for p in r]
                ann["bbox"] = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
                ann["segmentation"] = [[c for p in r for c in p] for r in rings]
            else:
                ann["bbox"] = [t["point"][0], t["point"][1], 0, 0]
                ann["segmentation"] = []
            ann["area"] = ann["bbox"][2] * ann["bbox"][3]
            anns.append(ann)
    return {
        "images": images,
        "annotations": anns,
        "categories": [{"id": v, "name": k} for k, v in cats.items()],
    }


def write(folder: Path, n_assets: int, *, n_objects: int = 20, seed: int = 0) -> tuple[Path, Path]:
    """Write ``ango.json`` and ``coco.json`` into ``folder``; return their paths."""
    rng = random.Random(seed)
    assets = [make_asset(i, rng, n_objects=n_objects) for i in range(n_assets)]
    ango, coco = folder / "ango.json", folder / "coco.json"
    ango.write_text(json.dumps(assets))
    coco.write_text(json.dumps(to_coco(assets)))
    return ango, coco
