"""``ango-torch convert``: COCO JSON, semantic label PNGs and YOLO labels."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builders import SAMPLE_ARGS as SOURCE
from builders import H, W, make_asset, make_box, make_polygon, sample_dataset, write_images
from PIL import Image

from ango_torch import AngoDataset, to_coco
from ango_torch.cli import main


def _sample(**kw: Any) -> AngoDataset:
    ds: AngoDataset = sample_dataset(**kw)
    return ds


@pytest.mark.parametrize(
    ("flags", "task", "brush"),
    [
        ([], "instance", None),
        (["--task", "detection"], "detection", None),
        (["--task", "instance", "--brush-components"], "instance", "components"),
    ],
    ids=["default-instance", "detection", "instance-brush"],
)
def test_coco_equals_to_coco_and_loads_in_pycocotools(
    tmp_path: Path, flags: list[str], task: str, brush: str | None
) -> None:
    out = tmp_path / "sub" / "gt.json"
    assert main(["convert", *SOURCE, "--to", "coco", "--out", str(out), *flags]) == 0
    written = json.loads(out.read_text())
    expected = to_coco(_sample(task=task, brush_instances=brush))
    assert written == json.loads(json.dumps(expected))
    assert len(written["images"]) == 3 and written["annotations"]

    from pycocotools.coco import COCO

    with warnings.catch_warnings():
        # pycocotools under numpy 2 (its own code, not ours).
        warnings.filterwarnings(
            "ignore",
            message=".*__array__ implementation doesn't accept a copy keyword",
            category=DeprecationWarning,
        )
        coco = COCO(str(out))
        for ann in coco.loadAnns(coco.getAnnIds()):
            image = coco.imgs[ann["image_id"]]
            mask = coco.annToMask(ann)
            assert mask.shape == (image["height"], image["width"]) and mask.any()
    assert sorted(coco.getCatIds()) == list(range(1, len(expected["categories"]) + 1))


def test_masks_equal_the_semantic_targets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "masks"
    assert main(["convert", *SOURCE, "--to", "masks", "--out", str(out)]) == 0
    assert "3 label PNGs" in capsys.readouterr().out
    ds = _sample(task="semantic")
    assert sorted(p.name for p in out.iterdir()) == [
        "astronaut.png",
        "classes.json",
        "coffee.png",
        "coins.png",
    ]
    for i, name in enumerate(["coins", "astronaut", "coffee"]):
        with Image.open(out / f"{name}.png") as im:
            assert im.mode == "L"
            labels = np.asarray(im)
        assert np.array_equal(labels, ds[i][1]["mask"].numpy())
    assert len(np.unique(labels)) == 6  # coffee: background, cup, spoon, handle + 2 brush
    meta = json.loads((out / "classes.json").read_text())
    assert meta == {"classes": ds.classes, "background": 0, "ignore_index": 255}


@pytest.mark.parametrize("brush", [False, True], ids=["boxes", "with-brush-components"])
def test_yolo_lines_match_the_detection_boxes(tmp_path: Path, brush: bool) -> None:
    out = tmp_path / "yolo"
    flags = ["--brush-components"] if brush else []
    assert main(["convert", *SOURCE, "--to", "yolo", "--out", str(out), *flags]) == 0
    ds = _sample(task="detection", brush_instances="components" if brush else None)
    names = (out / "classes.txt").read_text().splitlines()
    assert names == ds.classes[1:]
    yaml = (out / "data.yaml").read_text()
    assert f"nc: {len(names)}" in yaml and f'  0: "{names[0]}"' in yaml
    for i, name in enumerate(["coins", "astronaut", "coffee"]):
        image, target = ds[i]
        h, w = image.shape[-2:]
        rows = np.loadtxt(out / "labels" / f"{name}.txt", ndmin=2)
        assert rows.shape == (len(target["labels"]), 5)
        assert np.array_equal(rows[:, 0], target["labels"].numpy() - 1)
        cx, cy, bw, bh = rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h
        xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        np.testing.assert_allclose(xyxy, target["boxes"].numpy(), atol=1e-3)
    if brush:
        assert {"coffee", "saucer"} <= set(names)


def test_names_keep_folders_and_disambiguate_stems(tmp_path: Path) -> None:
    assets = [
        make_asset([make_box(2, 2, 4, 3)], external_id="a.jpg"),
        make_asset([make_polygon([[1, 1], [9, 1], [5, 8]])], external_id="a.png"),
        make_asset([], external_id="b.jpg"),
    ]
    nested = make_asset([make_box(1, 1, 3, 3)], external_id="b.png")
    nested["externalId"] = "dir/c.jpeg"
    assets.append(nested)
    export = tmp_path / "e.json"
    export.write_text(json.dumps(assets))
    root = write_images(tmp_path / "images", assets[:3])
    (root / "dir").mkdir()
    Image.new("RGB", (W, H)).save(root / "dir" / "c.jpeg", format="PNG")
    source = [str(export), "--root", str(root)]
    assert main(["convert", *source, "--to", "yolo", "--out", str(tmp_path / "y")]) == 0
    labels = tmp_path / "y" / "labels"
    found = sorted(str(p.relative_to(labels)) for p in labels.rglob("*.txt"))
    assert found == ["a.jpg.txt", "a.png.txt", "b.txt", "dir/c.txt"]
    assert (labels / "b.txt").read_text() == ""  # an image without objects: empty labels
    assert main(["convert", *source, "--to", "masks", "--out", str(tmp_path / "m")]) == 0
    with Image.open(tmp_path / "m" / "a.png.png") as im:
        assert im.size == (W, H) and np.asarray(im).any()


def test_unsafe_external_id_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    asset = make_asset([make_box(2, 2, 4, 3)], external_id="../escape.jpg")
    export = tmp_path / "e.json"
    export.write_text(json.dumps([asset]))
    args = ["convert", str(export), "--root", str(tmp_path), "--to", "yolo"]
    assert main([*args, "--out", str(tmp_path / "y")]) == 2
    assert "'..'" in capsys.readouterr().err
    assert not (tmp_path / "escape.txt").exists()


def test_task_only_applies_to_coco(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["convert", *SOURCE, "--to", "masks", "--out", str(tmp_path), "--task", "detection"]
    assert main(args) == 2
    assert "--task applies to --to coco only" in capsys.readouterr().err


def test_help_names_every_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["convert", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert all(word in text for word in ("coco", "masks", "yolo", "--brush-components"))
