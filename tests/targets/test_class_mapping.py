"""``classes=`` as a mapping that merges and renames: by title, schemaId and brush colour.

Every expected label, pixel and count is hand-computed from the shapes each test draws on
the 17×11 canvas of ``builders`` (a square covering x 2..7, y 2..6 is 6 × 5 = 30 pixels;
the brush rectangles are listed next to their colours), never taken from the package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from builders import H, W, make_asset, make_polygon, write_images
from PIL import Image

from ango_torch import AngoDataset, to_coco
from ango_torch.errors import OntologyError
from ango_torch.targets.arrays import IGNORE
from ango_torch.targets.classes import map_classes

SQUARE = [[2, 2], [8, 2], [8, 7], [2, 7]]  # pixels x 2..7, y 2..6
TRI = [[10, 1], [16, 1], [16, 9]]
CAR = [[10, 0], [17, 0], [17, 11], [10, 11]]  # x 10..16, every row: 77 px
ROAD = (slice(0, 3), slice(0, 4))  # 12 px of #f44336
GRASS = (slice(5, 8), slice(0, 3))  # 9 px of #00ff00
ONTOLOGY = {
    "tools": [
        {"title": "car", "tool": "polygon", "schemaId": "s-car"},
        {"title": "truck", "tool": "polygon", "schemaId": "s-truck"},
        {"title": "pedestrian", "tool": "polygon", "schemaId": "s-pedestrian"},
        {"title": "bike", "tool": "polygon", "schemaId": "s-bike"},
        {"title": "road", "tool": "brush", "color": "#F44336", "schemaId": "s-road"},
        {"title": "grass", "tool": "brush", "color": "#00ff00", "schemaId": "s-grass"},
    ]
}


def _street() -> list[dict[str, Any]]:
    """Four objects in export order: car, truck, pedestrian, bike."""
    return [
        make_asset(
            [
                make_polygon(SQUARE, "car"),
                make_polygon(TRI, "truck"),
                make_polygon(SQUARE, "pedestrian"),
                make_polygon(TRI, "bike"),
            ]
        )
    ]


@pytest.mark.parametrize("ontology", [None, ONTOLOGY])
def test_mapping_merges_renames_and_counts_the_unmapped(
    tmp_path: Path, ontology: dict[str, Any] | None
) -> None:
    assets = _street()
    root = write_images(tmp_path, assets)
    ds = AngoDataset(
        assets,
        root=root,
        ontology=ontology,
        task="detection",
        classes={"vehicle": ["car", "truck"], "person": ["pedestrian"]},
    )
    assert ds.classes == ["__background__", "vehicle", "person"]
    _, target = ds[0]
    # car, truck → vehicle (1); pedestrian → person (2); bike unmapped: left out, counted
    assert target["labels"].tolist() == [1, 1, 2]
    assert ds.report.ignored_objects["other classes"] == 1
    coco = to_coco(ds)
    assert [(c["id"], c["name"]) for c in coco["categories"]] == [(1, "vehicle"), (2, "person")]
    assert [a["category_id"] for a in coco["annotations"]] == [1, 1, 2]


def test_mapping_by_schema_id_and_a_single_source(tmp_path: Path) -> None:
    assets = _street()
    root = write_images(tmp_path, assets)
    ds = AngoDataset(
        assets,
        root=root,
        ontology=ONTOLOGY,
        task="instance",
        classes={"wheels": ["s-bike", "s-car"], "walker": "s-pedestrian"},
    )
    assert ds.classes == ["__background__", "wheels", "walker"]
    _, target = ds[0]
    assert target["labels"].tolist() == [1, 2, 1]  # car, pedestrian, bike; truck left out
    assert target["masks"][0].sum() == 30 and target["masks"][1].sum() == 30
    assert ds.report.ignored_objects["other classes"] == 1


def _brush_asset(tmp_path: Path) -> tuple[list[dict[str, Any]], Path]:
    asset = make_asset([make_polygon(CAR, "car")])
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[ROAD] = (244, 67, 54, 255)
    rgba[GRASS] = (0, 255, 0, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "brush.png")
    asset["task"]["brushDataUrl"] = str(tmp_path / "brush.png")
    return [asset], write_images(tmp_path / "images", [asset])


@pytest.mark.parametrize(
    "ground", [["road", "grass"], ["s-road", "s-grass"], ["#f44336", "#00FF00"]]
)
def test_brush_classes_merge_by_title_schema_id_or_colour(
    tmp_path: Path, ground: list[str]
) -> None:
    assets, images = _brush_asset(tmp_path)
    ds = AngoDataset(
        assets,
        root=images,
        allow_local_urls=True,
        ontology=ONTOLOGY,
        task="semantic",
        classes={"vehicle": "car", "ground": ground},
    )
    assert ds.classes == ["__background__", "vehicle", "ground"]
    expected = torch.zeros(H, W, dtype=torch.int64)
    expected[ROAD] = 2
    expected[GRASS] = 2
    expected[:, 10:17] = 1
    assert torch.equal(ds[0][1]["mask"], expected)
    assert ds.report.brush_excluded_pixels == 0


def test_unmapped_brush_class_is_excluded_and_counted(tmp_path: Path) -> None:
    assets, images = _brush_asset(tmp_path)
    ds = AngoDataset(
        assets,
        root=images,
        allow_local_urls=True,
        ontology=ONTOLOGY,
        task="semantic",
        classes={"ground": ["road"]},
    )
    expected = torch.zeros(H, W, dtype=torch.int64)
    expected[ROAD] = 1
    expected[GRASS] = IGNORE  # grass unmapped: ignored, never the nearest kept class
    _, target = ds[0]
    assert torch.equal(target["mask"], expected)
    assert ds.report.brush_excluded_pixels == 9
    assert ds.report.brush_excluded_classes == {"grass": 9}
    assert ds.report.ignored_objects["other classes"] == 1  # the car polygon


def test_map_classes_is_a_pure_resolver() -> None:
    names, sources = map_classes(
        {"vehicle": ["car", "s-truck"], "ground": "#F44336"},
        titles=["car", "truck", "road"],
        schema_ids={"s-truck": "truck"},
        colors={"#f44336": "road"},
    )
    assert names == ["vehicle", "ground"]
    assert sources == {"car": "vehicle", "truck": "vehicle", "road": "ground"}


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        ({"vehicle": ["car", "plane"]}, "'plane' is no class title"),
        ({"a": ["car"], "b": ["s-car"]}, "'car' is mapped to both 'a' and 'b'"),
        ({"vehicle": []}, "maps no class"),
        ({"__background__": ["car"]}, "reserved"),
    ],
)
def test_bad_mappings_raise(tmp_path: Path, classes: dict[str, Any], message: str) -> None:
    assets = _street()
    with pytest.raises(OntologyError, match=message):
        AngoDataset(assets, root=write_images(tmp_path, assets), ontology=ONTOLOGY, classes=classes)
