"""Packed instance masks: each mask as its crop, pasted back full-size on the device.

Mask R-CNN needs ``[N, H, W]`` masks, but a mask is mostly zeros outside its object: 12
masks of 1024×768 are 9.4 MB per image, which the main process receives, pins and
copies to the GPU every batch. ``AngoDataset(..., masks="packed")`` instead hands over
:class:`PackedMasks`: every mask's crop (the tight pixel rectangle of its nonzero
pixels), concatenated into one flat tensor, plus the rectangles. :func:`unpack_masks`
moves a batch of targets to the device and pastes all crops of the batch into full
masks there in one vectorized scatter, bit-exact with the full masks.

The crop is the integer range of the mask's *nonzero pixels*, not the box rounded
outward: after a v2 resize the box (scaled as floats) and the mask (resized
nearest-neighbour) can disagree by a pixel, and only the nonzero range is exact by
construction. An empty mask has a ``0×0`` crop.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torchvision import tv_tensors

from .batching import shared_views

__all__ = ["PackedMasks", "pack_masks", "pack_target", "unpack_masks"]


@dataclass(eq=False, slots=True)
class PackedMasks:
    """``N`` instance masks of one image, as crops.

    Attributes:
        data: 1-D tensor of the masks' dtype (``uint8`` from ``AngoDataset``): each
            crop's pixels, row-major, crops in instance order.
        rects: integer ``[N, 4]`` (``int64`` from ``AngoDataset``): each crop's pixel
            range ``(x0, y0, x1, y1)`` on the canvas, end exclusive (``x1 - x0``
            columns, ``y1 - y0`` rows; ``0×0`` for an empty mask).
        canvas_size: ``(H, W)`` of the full masks.
    """

    data: torch.Tensor
    rects: torch.Tensor
    canvas_size: tuple[int, int]

    def __post_init__(self) -> None:
        self.canvas_size = _form(self, "PackedMasks")

    def __len__(self) -> int:
        return int(self.rects.shape[0])

    @property
    def shape(self) -> torch.Size:
        """``(N, H, W)``: the shape of the full masks."""
        return torch.Size((len(self), *self.canvas_size))

    @property
    def nbytes(self) -> int:
        """Bytes of the crops and rectangles (what pinning and copying move)."""
        return int(self.data.nbytes + self.rects.nbytes)

    def pin_memory(self) -> PackedMasks:
        """Crops and rectangles in pinned memory (``DataLoader(pin_memory=True)`` calls it)."""
        return PackedMasks(self.data.pin_memory(), self.rects.pin_memory(), self.canvas_size)

    def unpack(self, device: torch.device | str | None = None) -> tv_tensors.Mask:
        """The full ``[N, H, W]`` masks on ``device`` (default: where ``data`` is)."""
        [target] = unpack_masks([{"masks": self}], device)
        return target["masks"]


def _rects(nonzero_rows: torch.Tensor, nonzero_cols: torch.Tensor) -> torch.Tensor:
    """``int64 [N, 4]`` pixel ranges from per-mask "row/column has a pixel" flags."""
    n, h = nonzero_rows.shape
    w = nonzero_cols.shape[1]
    rows, cols = nonzero_rows.to(torch.uint8), nonzero_cols.to(torch.uint8)
    y0 = rows.argmax(1)
    y1 = h - rows.flip(1).argmax(1)
    x0 = cols.argmax(1)
    x1 = w - cols.flip(1).argmax(1)
    rects = torch.stack([x0, y0, x1, y1], 1).to(torch.int64)
    rects[~nonzero_rows.bool().any(1)] = 0  # empty mask: a 0×0 crop at (0, 0)
    return rects.reshape(n, 4)


Specs = Sequence[tuple[tuple[int, ...], torch.dtype]]


def _fill(
    crops: Sequence[Any],
    rects: torch.Tensor,
    dtype: torch.dtype,
    canvas: tuple[int, int],
    extra: Specs = (),
) -> tuple[PackedMasks, list[torch.Tensor]]:
    """Copy each ``crops[k](x0, y0, x1, y1)`` (``[h, w]``) into one flat tensor.

    The crops, the rectangles and the ``extra`` tensors are views of one buffer (in
    shared memory in a DataLoader worker: one segment for the main process to map).
    """
    listed = rects.tolist()
    sizes = [(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in listed]
    *others, table, data = shared_views(
        [*extra, ((len(listed), 4), torch.int64), ((sum(sizes),), dtype)]
    )
    table.copy_(rects)
    start = 0
    for crop, size, (x0, y0, x1, y1) in zip(crops, sizes, listed, strict=True):
        if size:
            data[start : start + size].view(y1 - y0, x1 - x0).copy_(crop(x0, y0, x1, y1))
        start += size
    return PackedMasks(data, table, canvas), others


def pack_masks(masks: torch.Tensor) -> PackedMasks:
    """Pack full masks ``[N, H, W]`` (any dtype; nonzero is foreground) into crops.

    Exact: ``pack_masks(m).unpack()`` equals ``m``, values and dtype.
    """
    if masks.ndim != 3:
        raise ValueError(f"masks must be [N, H, W], got shape {tuple(masks.shape)}")
    n, h, w = masks.shape
    m = torch.as_tensor(masks)  # a plain tensor view of a tv_tensors.Mask
    empty = torch.zeros((n, 4), dtype=torch.int64)  # no pixels (0-sized canvas): 0×0 crops
    rects = _rects(m.any(2), m.any(1)) if n and h and w else empty
    crops = [lambda x0, y0, x1, y1, k=k: m[k, y0:y1, x0:x1] for k in range(n)]
    return _fill(crops, rects, m.dtype, (int(h), int(w)))[0]


def pack_crops(
    crops: Sequence[npt.NDArray[np.bool_]],
    offsets: Sequence[tuple[int, int]],
    canvas_size: tuple[int, int],
    extra: Specs = (),
) -> tuple[PackedMasks, list[torch.Tensor]]:
    """:class:`PackedMasks` (``uint8``) straight from rasterized crops at ``(y0, x0)``.

    Same result as ``pack_masks`` of the assembled ``uint8`` masks, without building
    them; also returns zeroed tensors of the ``extra`` ``(shape, dtype)`` specs, in the
    same buffer as the crops.
    """
    rects, trimmed = [], []
    for crop, (y, x) in zip(crops, offsets, strict=True):
        rows, cols = np.flatnonzero(crop.any(1)), np.flatnonzero(crop.any(0))
        if len(rows) == 0:
            rects.append((0, 0, 0, 0))
            trimmed.append(crop[:0, :0])
            continue
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        rects.append((x + c0, y + r0, x + c1, y + r1))
        trimmed.append(crop[r0:r1, c0:c1])
    table = torch.tensor(rects, dtype=torch.int64).reshape(-1, 4)
    pieces = [
        lambda *_, c=c: torch.from_numpy(np.ascontiguousarray(c).view(np.uint8)) for c in trimmed
    ]
    return _fill(pieces, table, torch.uint8, (int(canvas_size[0]), int(canvas_size[1])), extra)


def pack_target(target: Mapping[str, Any]) -> dict[str, Any]:
    """``target`` with its ``"masks"`` (``[N, H, W]``) as :class:`PackedMasks`."""
    out = dict(target)
    masks = out.get("masks")
    if isinstance(masks, torch.Tensor):
        out["masks"] = pack_masks(masks)
    return out


def _form(p: PackedMasks, label: str) -> tuple[int, int]:
    """``p.canvas_size`` as two ints, once ``p``'s tensors have the documented form.

    Raises:
        ValueError: ``data`` not a 1-D tensor, ``rects`` not an integer ``[N, 4]``
            tensor, or ``canvas_size`` not two integers in ``[0, 2**31)`` (a float or a
            bool is refused, not truncated or read as 0/1).
    """
    data, rects, canvas = p.data, p.rects, p.canvas_size
    if not isinstance(data, torch.Tensor) or data.ndim != 1:
        shape = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
        raise ValueError(f"{label}: data must be a 1-D tensor, got {shape}")
    if (
        not isinstance(rects, torch.Tensor)
        or rects.ndim != 2
        or rects.shape[1] != 4
        or rects.dtype.is_floating_point
        or rects.dtype.is_complex
        or rects.dtype == torch.bool
    ):
        got = (
            f"{rects.dtype} {tuple(rects.shape)}"
            if isinstance(rects, torch.Tensor)
            else type(rects).__name__
        )
        raise ValueError(f"{label}: rects must be an integer tensor [N, 4], got {got}")
    try:
        if isinstance(canvas, (str, bytes)) or any(_is_bool(v) for v in canvas):
            raise TypeError
        h, w = (operator.index(v) for v in canvas)
    except (TypeError, ValueError):
        raise ValueError(
            f"{label}: canvas_size must be two integers (height, width), got {canvas!r}"
        ) from None
    if not (0 <= h < _SIDE and 0 <= w < _SIDE):
        raise ValueError(f"{label}: canvas_size must be in [0, 2**31) each, got {(h, w)}")
    return h, w


def _is_bool(value: object) -> bool:
    return isinstance(value, (bool, np.bool_)) or (
        isinstance(value, torch.Tensor) and value.dtype == torch.bool
    )


_SIDE = 2**31  # (far beyond any image; H·W of two such sides still fits in int64)
# Pixels of full masks one unpack_masks call may address: with the offsets below in
# int64, a batch claiming more would wrap around (and index outside the buffer).
_ADDRESSABLE = 2**62


def _move(value: Any, device: torch.device | None, non_blocking: bool) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=non_blocking)
    return value


def unpack_masks(
    targets: Sequence[Mapping[str, Any]],
    device: torch.device | str | None = None,
    *,
    non_blocking: bool = True,
) -> list[dict[str, Any]]:
    """Move a batch of targets to ``device``, with packed masks pasted full-size there.

    Every tensor of every target is moved (``non_blocking``: overlapped with the host
    when it is pinned); ``"masks"`` given as :class:`PackedMasks` become
    ``tv_tensors.Mask`` ``[N, H, W]`` of the packed dtype, equal to the masks before
    packing. All crops of the batch are copied (one copy per image) and pasted by one
    scatter over the batch: the per-instance bookkeeping is a few small tensor
    operations on the host, never a Python loop over pixels. Targets with full masks
    (or none) are only moved, so the same training loop works with either layout.

    Args:
        targets: the targets of a batch (e.g. the second half of ``collate_fn``'s output).
        device: where to put them (``None``: where each tensor is).
        non_blocking: passed to every ``Tensor.to``.

    Returns:
        New target dicts (the inputs are not modified). The masks of a batch are views
        of one buffer on ``device``.
    """
    dev = None if device is None else torch.device(device)
    for i, t in enumerate(targets):
        if not isinstance(t, Mapping):
            raise TypeError(f"targets[{i}] must be a mapping (a target dict), got {type(t)}")
    out = [{k: _move(v, dev, non_blocking) for k, v in t.items()} for t in targets]
    packed = [
        (o, m, i)
        for i, (o, t) in enumerate(zip(out, targets, strict=True))
        if isinstance(m := t.get("masks"), PackedMasks)
    ]
    if not packed:
        return out
    masks = [p for _, p, _ in packed]
    # Checked before anything is allocated or indexed (a PackedMasks may come from a
    # pickle, which skips __post_init__): the form, then the sizes in Python ints, so
    # that no claimed canvas can overflow the int64 offsets below. Memory is bounded
    # where the masks are made (the dataset's max_canvas_pixels and max_mask_bytes), not
    # here: the limits in force now need not be the ones the dataset was created under.
    total, canvases = 0, []
    for _, p, i in packed:
        h, w = _form(p, f"targets[{i}]['masks']")
        canvases.append((h, w))
        total += len(p) * h * w
        if total >= _ADDRESSABLE:
            raise ValueError(
                f"targets[{i}]['masks']: the batch's packed masks claim {total:,} pixels "
                f"up to this target, more than 2**62 (int64 offsets would wrap)"
            )
    where = dev if dev is not None else masks[0].data.device
    dtype = masks[0].data.dtype
    if any(p.data.dtype != dtype for p in masks):
        raise ValueError(
            f"packed masks of one batch differ in dtype: {[p.data.dtype for p in masks]}"
        )
    # Per-instance bookkeeping on the host (M instances, a few small tensor ops).
    rects = torch.cat([p.rects.cpu().to(torch.int64) for p in masks]).reshape(-1, 4)
    counts = torch.tensor([len(p) for p in masks], dtype=torch.int64)
    hw = torch.tensor(canvases, dtype=torch.int64).reshape(-1, 2)
    planes = hw[:, 0] * hw[:, 1]
    sample_end = torch.cumsum(counts * planes, 0)
    sample_base = sample_end - counts * planes
    sample = torch.repeat_interleave(torch.arange(len(masks)), counts)
    first = torch.cumsum(counts, 0) - counts
    k_in_sample = torch.arange(len(rects)) - first[sample]
    width = hw[sample, 1]
    x0, y0, x1, y1 = rects.unbind(1)
    cols, size = x1 - x0, (x1 - x0) * (y1 - y0)
    bad = (x0 < 0) | (y0 < 0) | (cols < 0) | (y1 < y0) | (x1 > width) | (y1 > hw[sample, 0])
    if bool(bad.any()):
        raise ValueError(f"packed mask rectangles outside their canvas: {rects[bad].tolist()}")
    lengths = [int(p.data.numel()) for p in masks]
    per_sample = torch.zeros(len(masks), dtype=torch.int64).index_add_(0, sample, size)
    if per_sample.tolist() != lengths:
        raise ValueError(
            f"packed mask data of {lengths} pixels, rectangles of {per_sample.tolist()}"
        )
    total_pixels = sum(lengths)
    flat = torch.zeros(int(sample_end[-1]) if len(masks) else 0, dtype=dtype, device=where)
    if total_pixels:
        src_start = torch.cumsum(size, 0) - size
        dst_start = sample_base[sample] + k_in_sample * planes[sample] + y0 * width + x0
        table = torch.stack([src_start, cols.clamp(min=1), dst_start, width])
        table = table.to(where, non_blocking=non_blocking)
        data = torch.cat([p.data.to(where, non_blocking=non_blocking) for p in masks])
        # Device side: one index per crop pixel, then one scatter for the whole batch.
        inst = torch.repeat_interleave(
            torch.arange(len(rects), device=where), size.to(where), output_size=total_pixels
        )
        local = torch.arange(total_pixels, device=where) - table[0, inst]
        row = torch.div(local, table[1, inst], rounding_mode="floor")
        dest = table[2, inst] + row * table[3, inst] + (local - row * table[1, inst])
        flat.index_put_((dest,), data)
    for (o, p, _), base, (h, w) in zip(packed, sample_base.tolist(), hw.tolist(), strict=True):
        n = len(p)
        o["masks"] = tv_tensors.Mask(flat[base : base + n * h * w].view(n, h, w))
    return out
