"""``ango_torch.datasets.preview`` and ``ango-torch preview``: what is drawn, and where."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from builders import H, W
from PIL import Image
from torchvision import tv_tensors

from ango_torch import AngoDataset
from ango_torch.cli import main
from ango_torch.datasets.preview import IGNORE_COLOR, draw_sample, preview, preview_name, save_png

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data"
NAMES = ["0_coins.png", "1_astronaut.png", "2_coffee.png"]


def _sample(**kw: object) -> AngoDataset:
    return AngoDataset(
        SAMPLE / "sample_export.json",
        root=SAMPLE / "images",
        ontology=SAMPLE / "ontology.json",
        **kw,  # type: ignore[arg-type]
    )


def _read(path: Path, mode: str = "RGB") -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert(mode))


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> tuple[AngoDataset, list[Path]]:
    ds = _sample(task="instance", brush_instances="components")
    return ds, preview(ds, tmp_path_factory.mktemp("preview"))


def test_one_png_per_sample_with_the_image_size(drawn: tuple[AngoDataset, list[Path]]) -> None:
    ds, paths = drawn
    assert [p.name for p in paths] == NAMES
    for i, path in enumerate(paths):
        h, w = ds.get_height_and_width(i)
        assert _read(path).shape == (h, w, 3)


def test_masks_are_drawn_and_holes_left_clear(tmp_path: Path) -> None:
    # Without brush components, the cup's hole (the coffee surface) shows the photograph.
    ds = _sample(task="instance")
    (path,) = preview(ds, tmp_path, indices=[2])
    image, target = ds[2]
    raw = image.permute(1, 2, 0).numpy()
    out = _read(path)
    changed = (out != raw).any(axis=2)
    masks = target["masks"].numpy().astype(bool)
    for k, mask in enumerate(masks):
        assert changed[mask].mean() > 0.95, ds.classes[int(target["labels"][k])]
    cup = masks[target["labels"].tolist().index(ds.classes.index("cup"))]
    filled = np.zeros_like(cup)
    ys, xs = np.nonzero(cup)
    filled[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
    # The hole: inside the cup's box, not in the cup, away from its outline and the spoon.
    hole = filled & ~cup
    hole[:, : xs.min() + 40] = hole[:, xs.max() - 80 :] = False
    hole[: ys.min() + 40] = hole[ys.max() - 120 :] = False
    assert hole.sum() > 2000
    assert changed[hole].mean() < 0.05


def test_every_kind_of_annotation_appears(drawn: tuple[AngoDataset, list[Path]]) -> None:
    ds, paths = drawn
    out = _read(paths[1])  # astronaut: boxes, segmentations, rotated box, points, polyline
    det = _sample(task="detection")
    _, target = det[1]
    labels = target["labels"].tolist()
    person = target["boxes"][labels.index(det.classes.index("person"))].tolist()
    x1, y1, _, y2 = (int(v) for v in person)
    assert tuple(out[(y1 + y2) // 2, x1]) == (0x21, 0x96, 0xF3)  # ontology's "person" blue
    export = ds.export[ds.asset_index(1)]
    points = [t.geometry for t in export.task.answer.tools if t.title == "keypoint"]
    assert len(points) == 7
    for p in points:
        assert tuple(out[int(p.y), int(p.x)]) == (0x4C, 0xAF, 0x50)  # "keypoint" green
    (strap,) = [t.geometry for t in export.task.answer.tools if t.title == "strap"]
    x, y = (int(v) for v in strap.points[len(strap.points) // 2])
    assert tuple(out[y, x]) == (0xFF, 0xEB, 0x3B)  # "strap" yellow
    raw = _sample(task="instance")[1][0].permute(1, 2, 0).numpy()
    assert (out != raw).any(axis=2).mean() > 0.2


def test_semantic_preview_draws_brush(tmp_path: Path) -> None:
    ds = _sample(task="semantic")
    (path,) = preview(ds, tmp_path, indices=[-1])
    assert path.name == "2_coffee.png"
    image, target = ds[2]
    changed = (_read(path) != image.permute(1, 2, 0).numpy()).any(axis=2)
    for title in ("coffee", "saucer"):  # brush classes
        region = target["mask"].numpy() == ds.classes.index(title)
        assert region.sum() > 1000 and changed[region].mean() > 0.95


def test_draw_sample_semantic_ignore_and_background() -> None:
    h, w = 4 * H, 4 * W  # room for the class name drawn at the region's top-left
    image = torch.full((3, h, w), 100, dtype=torch.uint8)
    mask = torch.zeros((h, w), dtype=torch.int64)
    mask[20:40, 10:60] = 1
    mask[2:8, 40:60] = 255
    out = draw_sample(
        tv_tensors.Image(image),
        {"mask": tv_tensors.Mask(mask)},
        classes=["__background__", "car"],
        colors={"car": "#ff0000"},
        alpha=0.5,
    )
    assert out.shape == (3, h, w) and out.dtype == torch.uint8
    assert out[:, 0, 0].tolist() == [100, 100, 100]  # background untouched
    assert out[:, 37, 57].tolist() == [177, 50, 50]  # inside the class, off the outline
    assert out[:, 39, 59].tolist() == [255, 0, 0]  # outline: opaque
    assert out[:, 5, 50].tolist() == [(100 + c) // 2 for c in IGNORE_COLOR]
    # The class name: text on the class colour, at the region's first pixel.
    label = out[:, 21:30, 11:30]
    assert (label == torch.tensor([255, 0, 0])[:, None, None]).all(0).any()
    assert (label == 255).all(0).any()  # white text on the dark red


def test_draw_sample_without_annotations_is_the_image() -> None:
    image = torch.randint(0, 255, (3, H, W), dtype=torch.uint8)
    empty = {
        "boxes": torch.zeros((0, 4)),
        "labels": torch.zeros(0, dtype=torch.int64),
        "masks": torch.zeros((0, H, W), dtype=torch.uint8),
    }
    assert torch.equal(draw_sample(image, empty, classes=["__background__"]), image)
    gray = image[:1]
    assert torch.equal(draw_sample(gray, {}, classes=["__background__"]), gray.expand(3, -1, -1))


def test_draw_sample_palette_without_ontology() -> None:
    image = torch.zeros((3, H, W), dtype=torch.uint8)
    target = {
        "boxes": torch.tensor([[2.0, 2.0, 12.0, 9.0]]),
        "labels": torch.tensor([2]),
        "masks": torch.zeros((1, H, W), dtype=torch.uint8),
    }
    a = draw_sample(image, target, classes=["__background__", "a", "b"], width=1)
    b = draw_sample(image, target, classes=["__background__", "a", "b"], width=1)
    assert torch.equal(a, b)
    assert a[:, 9, 12].tolist() == [60, 180, 75]  # PALETTE[1], box corner


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (torch.zeros((3, H, W), dtype=torch.float32), "uint8"),
        (torch.zeros((4, H, W), dtype=torch.uint8), r"\[3, H, W\]"),
    ],
    ids=["float", "rgba"],
)
def test_draw_sample_rejects_other_images(image: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        draw_sample(image, {}, classes=["__background__"])


@pytest.mark.parametrize(
    ("index", "external_id", "digits", "expected"),
    [
        (0, "coins.png", 1, "0_coins.png"),
        (7, "folder/sub/street 01.jpg", 3, "007_street_01.png"),
        (3, "..\\..\\evil?.png", 1, "3_evil.png"),
        (2, "", 1, "2_asset.png"),
        (1, "../..", 1, "1_asset.png"),
    ],
    ids=["plain", "folders-space", "windows-traversal", "empty", "dots"],
)
def test_preview_name(index: int, external_id: str, digits: int, expected: str) -> None:
    assert preview_name(index, external_id, digits=digits) == expected


def test_save_png_round_trip(tmp_path: Path) -> None:
    rgb = torch.randint(0, 255, (3, H, W), dtype=torch.uint8)
    path = save_png(rgb, tmp_path / "x.png")
    assert np.array_equal(_read(path), rgb.permute(1, 2, 0).numpy())
    labels = torch.randint(0, 255, (H, W), dtype=torch.uint8)
    assert np.array_equal(_read(save_png(labels, tmp_path / "l.png"), "L"), labels)
    with pytest.raises(ValueError, match="uint8"):
        save_png(rgb.float(), tmp_path / "f.png")


def test_cli_preview(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pv"
    args = ["preview", str(SAMPLE / "sample_export.json"), "--out", str(out)]
    args += ["--root", str(SAMPLE / "images"), "--ontology", str(SAMPLE / "ontology.json")]
    assert main([*args, "--limit", "2"]) == 0
    text = capsys.readouterr().out
    assert f"2 previews (instance) written to {out}" in text
    assert sorted(p.name for p in out.iterdir()) == NAMES[:2]
    assert str(out / "1_astronaut.png") in text
    assert main([*args, "--task", "semantic"]) == 0
    assert sorted(p.name for p in out.iterdir()) == NAMES


def test_brush_classes_named_by_colour_keep_it() -> None:
    image = torch.zeros((3, H, W), dtype=torch.uint8)
    mask = torch.zeros((H, W), dtype=torch.int64)
    mask[2:9, 2:15] = 1
    out = draw_sample(image, {"mask": mask}, classes=["__background__", "#795548"], alpha=1.0)
    assert out[:, 8, 14].tolist() == [0x79, 0x55, 0x48]
