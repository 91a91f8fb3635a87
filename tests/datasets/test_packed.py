"""Packed instance masks (``AngoDataset(masks="packed")``, ``ango_torch.unpack_masks``).

Reference throughout: the same dataset with packing off (``masks="full"``), whose masks
the raster tests check against pycocotools; unpacking must give them back bit for bit.
Hand-made masks and hand-computed pixel ranges where stated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from builders import make_asset, make_box, make_polygon, sample_dataset, write_images
from torchvision import tv_tensors
from torchvision.transforms import v2

import ango_torch
from ango_torch.datasets.packed import PackedMasks, pack_masks


def _border_export(folder: Path) -> tuple[list[dict[str, Any]], Path]:
    """17×11 canvases: masks on every border, a fractional box, an image without masks."""
    assets = [
        make_asset(
            [
                make_polygon([[0, 0], [6, 0], [0, 5]]),  # top-left corner
                make_polygon([[12, 4], [17, 4], [17, 11], [12, 11]]),  # bottom-right corner
                make_polygon([[2.3, 1.6], [7.7, 1.6], [7.7, 5.4], [2.3, 5.4]], "person"),
                make_polygon([[-3, 6], [20, 6], [20, 8], [-3, 8]], "person"),  # full width
            ]
        ),
        make_asset([make_box(2, 2, 4, 3)]),  # a box only: no instance masks
        make_asset([make_polygon([[1, 1], [9, 1], [5, 8]])], width=13, height=19),
    ]
    return assets, write_images(folder / "images", assets)


def _pair(tmp_path: Path, **kw: Any) -> tuple[Any, Any]:
    assets, root = _border_export(tmp_path)
    full = ango_torch.AngoDataset(assets, task="instance", root=root, **kw)
    packed = ango_torch.AngoDataset(assets, task="instance", root=root, masks="packed", **kw)
    return full, packed


def _assert_same_targets(full: dict[str, Any], got: dict[str, Any]) -> None:
    assert isinstance(got["masks"], tv_tensors.Mask)
    assert got["masks"].dtype == full["masks"].dtype
    assert got["masks"].shape == full["masks"].shape
    assert torch.equal(got["masks"], full["masks"])
    for key in ("boxes", "labels", "area", "iscrowd"):
        assert torch.equal(got[key], full[key]), key


def test_packed_without_transforms_unpacks_to_the_full_masks(tmp_path: Path) -> None:
    full, packed = _pair(tmp_path)
    for i in range(len(full)):
        _, t_full = full[i]
        _, t_packed = packed[i]
        assert isinstance(t_packed["masks"], PackedMasks)
        [unpacked] = ango_torch.unpack_masks([t_packed], "cpu")
        _assert_same_targets(t_full, unpacked)
    # Sample 1 has no instance mask (a box only): every key zero-length, as unpacked.
    _, zero = packed[1]
    assert len(zero["masks"]) == 0 and zero["masks"].shape == (0, 11, 17)


def test_the_crop_is_the_nonzero_pixel_range_not_the_rounded_box(tmp_path: Path) -> None:
    _, packed = _pair(tmp_path)
    _, target = packed[0]
    # Hand-computed (a pixel is in when its centre (x+0.5, y+0.5) is inside the shape):
    # triangle (0,0)-(6,0)-(0,5), x/6 + y/5 < 1: row 0 has centres 0.5..4.5 (5.5 is out),
    # row 4 (y 4.5) column 0 only → (0, 0, 5, 5), while its box is (0, 0, 6, 5).
    # square 12..17 × 4..11 → (12, 4, 17, 11), touching the right and bottom borders.
    # (2.3,1.6)-(7.7,5.4): centres 2.5..7.5 and 2.5..4.5 → (2, 2, 8, 5), while the box
    # rounded outward would be (2, 1, 8, 6).
    # band y 6..8 over the full width, clipped: (0, 6, 17, 8).
    assert target["masks"].rects.tolist() == [
        [0, 0, 5, 5],
        [12, 4, 17, 11],
        [2, 2, 8, 5],
        [0, 6, 17, 8],
    ]
    assert target["boxes"][2].tolist() == pytest.approx([2.3, 1.6, 7.7, 5.4])


@pytest.mark.parametrize(
    "transform",
    [
        v2.RandomHorizontalFlip(p=1.0),
        v2.Compose([v2.RandomVerticalFlip(p=1.0), v2.Resize((23, 31))]),
        v2.Resize((7, 9)),  # shrinking: the resized boxes and masks may disagree by a pixel
    ],
    ids=["hflip", "vflip+resize-up", "resize-down"],
)
def test_packed_after_v2_transforms_equals_transformed_full_masks(
    tmp_path: Path, transform: Any
) -> None:
    seen: list[Any] = []

    def spy(image: Any, target: dict[str, Any]) -> Any:
        seen.append(type(target["masks"]))  # the transforms see full masks
        return transform(image, target)

    full, packed = _pair(tmp_path, transforms=spy)
    for i in range(len(full)):
        _, t_full = full[i]
        _, t_packed = packed[i]
        assert isinstance(t_packed["masks"], PackedMasks)
        _assert_same_targets(t_full, ango_torch.unpack_masks([t_packed])[0])
    assert set(seen) == {tv_tensors.Mask}


def test_a_batch_of_mixed_canvases_through_workers(tmp_path: Path) -> None:
    full, packed = _pair(tmp_path)
    loader = torch.utils.data.DataLoader(
        packed, batch_size=3, num_workers=1, collate_fn=ango_torch.collate_fn
    )
    [(_images, targets)] = list(loader)
    got = ango_torch.unpack_masks(targets, torch.device("cpu"))
    assert [tuple(t["masks"].shape) for t in got] == [(4, 11, 17), (0, 11, 17), (1, 19, 13)]
    for i, t in enumerate(got):
        _assert_same_targets(full[i][1], t)
        assert t["image_id"] == i and t["asset_id"] == full[i][1]["asset_id"]
    # The inputs are left packed; full-mask targets pass through unpack_masks unchanged.
    assert isinstance(targets[0]["masks"], PackedMasks)
    again = ango_torch.unpack_masks([full[0][1]])
    assert torch.equal(again[0]["masks"], full[0][1]["masks"])


def test_the_bundled_sample_packs_exactly() -> None:
    full, packed = sample_dataset(), sample_dataset(masks="packed")
    targets = [packed[i][1] for i in range(len(packed))]
    for i, t in enumerate(ango_torch.unpack_masks(targets)):
        _assert_same_targets(full[i][1], t)
    crops = sum(t["masks"].nbytes for t in targets)
    assert crops < sum(full[i][1]["masks"].nbytes for i in range(len(full)))


def test_pack_masks_of_hand_made_masks() -> None:
    # Reference: the hand-made masks themselves (values kept, dtype kept).
    masks = torch.zeros((4, 5, 6), dtype=torch.uint8)
    masks[0, 0, :] = 1  # the whole top row
    masks[1, 2:5, 5] = 7  # right border, a non-0/1 value
    masks[3] = 1  # everything
    # masks[2] stays empty: a 0×0 crop
    packed = pack_masks(masks)
    assert packed.rects.tolist() == [[0, 0, 6, 1], [5, 2, 6, 5], [0, 0, 0, 0], [0, 0, 6, 5]]
    assert packed.data.numel() == 6 + 3 + 0 + 30
    assert torch.equal(packed.unpack(), masks)
    bools = masks.bool()
    assert torch.equal(pack_masks(bools).unpack(), bools)
    empty = pack_masks(torch.zeros((0, 5, 6), dtype=torch.uint8)).unpack()
    assert empty.shape == (0, 5, 6)


def test_inconsistent_packs_and_bad_options_are_refused(tmp_path: Path) -> None:
    bad = PackedMasks(torch.zeros(5, dtype=torch.uint8), torch.tensor([[0, 0, 2, 2]]), (3, 3))
    with pytest.raises(ValueError, match="4"):
        bad.unpack()
    outside = PackedMasks(torch.zeros(4, dtype=torch.uint8), torch.tensor([[2, 0, 4, 2]]), (3, 3))
    with pytest.raises(ValueError, match="outside"):
        outside.unpack()
    assets, root = _border_export(tmp_path)
    with pytest.raises(ValueError, match="packed"):
        ango_torch.AngoDataset(assets, task="detection", root=root, masks="packed")


@pytest.mark.parametrize("shape", [(2, 0, 5), (2, 5, 0), (0, 4, 4)])
def test_empty_canvases_pack_and_unpack(shape: tuple[int, int, int]) -> None:
    # Reference: the input itself (all-zero masks of that shape); a 0-pixel canvas made
    # argmax fail on an empty dimension.
    masks = torch.zeros(shape, dtype=torch.uint8)
    packed = pack_masks(masks)
    assert packed.rects.tolist() == [[0, 0, 0, 0]] * shape[0]
    out = packed.unpack()
    assert out.shape == masks.shape and out.dtype == masks.dtype and torch.equal(out, masks)


def _u8(n: int) -> torch.Tensor:
    return torch.ones(n, dtype=torch.uint8)


_ONE = torch.tensor([[0, 0, 2, 2]])  # one 2×2 crop at the origin (4 pixels)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("data", torch.ones(2, 2, dtype=torch.uint8), "data must be a 1-D tensor"),
        ("data", [1, 1, 1, 1], "data must be a 1-D tensor"),
        ("rects", torch.tensor([0, 0, 2, 2]), r"rects must be an integer tensor \[N, 4\]"),
        ("rects", torch.tensor([[0, 0, 2]]), r"rects must be an integer tensor \[N, 4\]"),
        ("rects", torch.tensor([[0.5, 0, 2.5, 2]]), r"rects must be an integer tensor"),
        ("rects", torch.tensor([[True, False, True, True]]), r"rects must be an integer"),
        ("rects", [[0, 0, 2, 2]], r"rects must be an integer tensor"),
        ("canvas_size", (3.5, 3.0), "canvas_size must be two integers"),
        ("canvas_size", (3, 3, 3), "canvas_size must be two integers"),
        ("canvas_size", None, "canvas_size must be two integers"),
        ("canvas_size", "33", "canvas_size must be two integers"),
        ("canvas_size", (True, False), "canvas_size must be two integers"),
        ("canvas_size", (torch.tensor(True), 3), "canvas_size must be two integers"),
        ("canvas_size", b"33", "canvas_size must be two integers"),
        ("canvas_size", (-3, 4), r"canvas_size must be in \[0, 2\*\*31\) each"),
        ("canvas_size", (0, 2**70), r"canvas_size must be in \[0, 2\*\*31\) each"),
        ("canvas_size", (2**62 + 1, 4), r"canvas_size must be in \[0, 2\*\*31\) each"),
    ],
)
def test_malformed_packed_masks_are_refused_by_name(field: str, value: Any, match: str) -> None:
    """Found by fuzzing (issue 14): these raised RuntimeError/TypeError/AttributeError
    from deep inside the scatter, or (a float canvas) were silently truncated to 3×3.
    Refused when built, and again by ``unpack_masks`` for one that skipped the check (as
    an unpickled one does), naming the target."""
    good = {"data": _u8(4), "rects": _ONE, "canvas_size": (3, 3)}
    with pytest.raises(ValueError, match=match):
        PackedMasks(**{**good, field: value})
    sneaked = PackedMasks(**good)
    object.__setattr__(sneaked, field, value)
    with pytest.raises(ValueError, match=r"targets\[1\]\['masks'\]: " + match):
        ango_torch.unpack_masks([{}, {"masks": sneaked}], "cpu")


def test_int32_rects_and_numpy_canvas_sizes_unpack() -> None:
    # Reference: a hand-made 3×3 canvas with a 2×2 crop of ones at the origin.
    import numpy as np

    packed = PackedMasks(_u8(4), _ONE.to(torch.int32), (np.int64(3), np.int32(3)))
    assert packed.canvas_size == (3, 3) and type(packed.canvas_size[0]) is int
    expected = torch.zeros((1, 3, 3), dtype=torch.uint8)
    expected[0, :2, :2] = 1
    assert torch.equal(packed.unpack("cpu"), expected)


def test_claims_beyond_int64_offsets_are_refused_before_allocating() -> None:
    """Found by fuzzing (issue 14): a canvas of (2**62 + 1, 4) made N·H·W = 2**64 + 4,
    which wraps to 4 in int64, so the rectangle check passed and the scatter indexed
    outside its buffer (an IndexError on the CPU, a device-side assert on CUDA). Sides
    are now at most 2**31 - 1 (above), and a batch's claimed pixels below 2**62, counted
    in Python ints (reference: Python's unbounded integers)."""
    side = 2**31 - 1
    two = PackedMasks(_u8(0), torch.zeros((2, 4), dtype=torch.int64), (side, side))
    assert 2 * side * side >= 2**62
    with pytest.raises(ValueError, match=r"targets\[0\]\['masks'\].*2\*\*62"):
        ango_torch.unpack_masks([{"masks": two}], "cpu")
    one = PackedMasks(_u8(0), torch.zeros((1, 4), dtype=torch.int64), (side, side))
    with pytest.raises(ValueError, match=r"targets\[1\]\['masks'\].*2\*\*62"):
        ango_torch.unpack_masks([{"masks": one}, {"masks": one}], "cpu")


def test_unpacking_does_not_apply_the_limits_in_force_at_the_call(tmp_path: Path) -> None:
    """The dataset bounds its masks by the limits it was created under (raised, maybe);
    the training loop's unpack_masks runs outside that override and must not refuse
    them. Reference: the same dataset's full masks."""
    full, packed = _pair(tmp_path)
    targets = [packed[0][1]]
    with ango_torch.limits.override(max_canvas_pixels=1, max_mask_bytes=1):
        (got,) = ango_torch.unpack_masks(targets, "cpu")
    _assert_same_targets(full[0][1], got)


def test_a_target_that_is_not_a_mapping_is_named() -> None:
    with pytest.raises(TypeError, match=r"targets\[0\] must be a mapping"):
        ango_torch.unpack_masks([[1, 2]], "cpu")  # type: ignore[list-item]
