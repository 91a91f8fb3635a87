"""Annotations drawn over their images, for checking an export by eye.

:func:`draw_sample` draws one ``(image, target)`` pair with torchvision's drawing
utilities; :func:`preview` writes one PNG per sample of a dataset, adding the objects
its task leaves out (bounding boxes for ``instance``/``semantic``, points and
polylines always) so that every annotation with an image representation shows.

One concept, drawing a sample, a little over the ~400-line guideline: the colours, the
mask painting and the drawing of left-out objects all serve :func:`draw_sample`.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image, ImageColor, ImageDraw, ImageFont
from torchvision.utils import draw_bounding_boxes, draw_keypoints, draw_segmentation_masks

from .._progress import progress as _progress
from ..assets.decode import write_png
from ..export.ontology import Ontology
from ..records import ToolKind
from ..targets.arrays import IGNORE
from ..targets.classes import task_kinds

if TYPE_CHECKING:
    from .dataset import AngoDataset

__all__ = ["PALETTE", "class_colors", "draw_sample", "preview", "save_png"]

RGB = tuple[int, int, int]
Color = str | RGB

PALETTE: tuple[RGB, ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 250, 200),
    (128, 0, 0),
    (170, 255, 195),
    (128, 128, 0),
    (255, 215, 180),
    (0, 0, 128),
    (128, 128, 128),
)
"""Class ``k`` (``k ≥ 1``) without an ontology colour gets ``PALETTE[(k - 1) % 20]``."""

IGNORE_COLOR: RGB = (160, 160, 160)
"""Semantic pixels labelled ``IGNORE`` (255)."""

# Font files Pillow finds by name in the system font folders; without any, torchvision
# falls back to Pillow's fixed-size bitmap font.
_FONTS = ("DejaVuSans.ttf", "Arial.ttf", "LiberationSans-Regular.ttf", "Helvetica.ttc")


@functools.lru_cache(maxsize=1)
def _default_font() -> str | None:
    for name in _FONTS:
        try:
            ImageFont.truetype(name, 12)
        except OSError:
            continue
        return name
    return None


def _rgb(color: Color) -> RGB:
    if isinstance(color, str):
        value = ImageColor.getrgb(color)
        return (int(value[0]), int(value[1]), int(value[2]))
    r, g, b = color
    return (int(r), int(g), int(b))


def _text_color(background: RGB) -> RGB:
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def class_colors(ontology: Ontology | None) -> dict[str, RGB]:
    """``{title: (r, g, b)}`` of the ontology's classes that have a colour (first wins)."""
    out: dict[str, RGB] = {}
    for tool in ontology.tools if ontology is not None else ():
        if tool.color and tool.title not in out:
            try:
                out[tool.title] = _rgb(tool.color)
            except ValueError:
                continue  # a colour Pillow cannot read: the palette colours that class
    return out


_HEX_TITLE = re.compile(r"#[0-9a-fA-F]{6}")


def _color_of(title: str, classes: Sequence[str], colors: Mapping[str, Color]) -> RGB:
    if title in colors:
        return _rgb(colors[title])
    if _HEX_TITLE.fullmatch(title):
        return _rgb(title)  # a brush class named by its colour (no ontology): that colour
    if title in classes[1:]:
        return PALETTE[(list(classes).index(title) - 1) % len(PALETTE)]
    # Titles outside the class list (points, or boxes of an instance dataset): a colour
    # fixed by the title, so that it is the same in every preview.
    return PALETTE[zlib.crc32(title.encode()) % len(PALETTE)]


def _plain(t: Any) -> torch.Tensor:
    return t.as_subclass(torch.Tensor) if isinstance(t, torch.Tensor) else torch.as_tensor(t)


def _paint(image: torch.Tensor, layers: Iterable[tuple[torch.Tensor, RGB]], alpha: float) -> Any:
    """Blend ``(bool [H, W] mask, colour)`` layers, later layers over earlier ones.

    ``draw_segmentation_masks`` blacks out pixels that two of its masks share; painting
    an owner map first and passing one disjoint mask per colour avoids that.  ``layers``
    is read once, so a generator holds one mask at a time.
    """
    colors: dict[RGB, int] = {}
    owner = torch.zeros(image.shape[-2:], dtype=torch.int64)
    for mask, color in layers:
        owner[mask] = colors.setdefault(color, len(colors) + 1)
    if not colors:
        return image
    palette = list(colors)
    present = [k for k in range(1, len(palette) + 1) if bool((owner == k).any())]
    if not present:
        return image
    masks = torch.stack([owner == k for k in present])
    return draw_segmentation_masks(
        image, masks, alpha=alpha, colors=[palette[k - 1] for k in present]
    )


def _outline(mask: torch.Tensor) -> torch.Tensor:
    """The pixels of ``mask`` (bool ``[H, W]``) with a 4-neighbour outside it (holes too)."""
    inner = mask.clone()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def _labelled_boxes(
    image: torch.Tensor,
    boxes: torch.Tensor,
    names: Sequence[str],
    colors: Sequence[RGB],
    *,
    width: int,
    font: str | None,
    font_size: int,
) -> Any:
    """Boxes (``width`` 0: none, only the label at the top-left) with filled labels."""
    if len(boxes) == 0:
        return image
    options: dict[str, Any] = {
        "labels": list(names),
        "colors": list(colors),
        "width": width,
        "font": font,
        "font_size": font_size if font else None,
        "label_colors": [_text_color(c) for c in colors],
        "label_background_colors": list(colors),
        "fill_labels": True,
    }
    # Filled labels are newer than torchvision 0.16: use what this version offers.
    return draw_bounding_boxes(image, boxes, **{k: v for k, v in options.items() if k in _BOX_ARGS})


_BOX_ARGS = frozenset(inspect.signature(draw_bounding_boxes).parameters)


def draw_sample(
    image: torch.Tensor,
    target: Mapping[str, Any],
    *,
    classes: Sequence[str],
    colors: Mapping[str, Color] | None = None,
    alpha: float = 0.45,
    width: int = 2,
    font_size: int | None = None,
    font: str | None = None,
) -> torch.Tensor:
    """Draw a sample's target over its image.

    Args:
        image: ``uint8 [3, H, W]`` (or ``[1, H, W]``) RGB.
        target: a dataset target: ``masks`` (``[N, H, W]``, instance), ``mask``
            (``int64 [H, W]`` semantic map, ``255`` ignored) and/or ``boxes`` (XYXY
            pixels, ``[N, 4]``) with ``labels`` (``int64 [N]``).
        classes: the dataset's classes; label ``k`` is ``classes[k]``.
        colors: ``{title: colour}`` (``"#rrggbb"``, a colour name or an RGB tuple);
            other classes take ``PALETTE`` colours by label.
        alpha: opacity of mask fills (outlines are opaque).
        width: box line width in pixels.
        font_size: label text height in pixels (default: from the image size).
        font: a TrueType font file or name (default: DejaVu Sans or Arial when the
            system has them, else Pillow's small bitmap font).

    Returns:
        ``uint8 [3, H, W]``: masks filled with their holes left clear and outlined,
        ignored pixels grey, boxes labelled with their class names.
    """
    img = _plain(image)
    if img.dtype != torch.uint8 or img.ndim != 3 or img.shape[0] not in (1, 3):
        raise ValueError(
            f"image: expected a uint8 [3, H, W] tensor, got {img.dtype} {list(img.shape)}"
        )
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    img = img.contiguous()
    canvas = tuple(img.shape[-2:])
    colors = dict(colors or {})
    font = font if font is not None else _default_font()
    size = font_size or max(11, min(canvas) // 32)

    def color(label: int) -> RGB:
        return _color_of(classes[label], classes, colors)

    labels = [int(v) for v in _plain(target.get("labels", torch.zeros(0))).tolist()]
    # Each fill's mask is made when painted: N instance masks (or one per class) are
    # never all held as bool copies at once.
    fills: list[tuple[Callable[[], torch.Tensor], RGB]] = []
    tags: list[tuple[float, float, str, RGB]] = []
    if "masks" in target:
        masks = _plain(target["masks"])
        if tuple(masks.shape[-2:]) != canvas or len(masks) != len(labels):
            raise ValueError(
                f"target: expected masks [{len(labels)}, {canvas[0]}, {canvas[1]}], "
                f"got {list(masks.shape)}"
            )
        fills = [(m.bool, color(k)) for m, k in zip(masks, labels, strict=True)]
    if "mask" in target:
        sem = _plain(target["mask"])
        if tuple(sem.shape) != canvas:
            raise ValueError(
                f"target: expected mask [{canvas[0]}, {canvas[1]}], got {list(sem.shape)}"
            )
        for k in torch.unique(sem).tolist():
            if k == 0:
                continue
            if k == IGNORE:
                fills.append((functools.partial(torch.eq, sem, k), IGNORE_COLOR))
                continue
            fills.append((functools.partial(torch.eq, sem, k), color(k)))
            ys, xs = torch.nonzero(sem == k, as_tuple=True)
            top = int(torch.argmin(ys * canvas[1] + xs))  # the region's first pixel
            tags.append((float(xs[top]), float(ys[top]), classes[k], color(k)))
    out = _paint(img, ((mask(), c) for mask, c in fills), alpha)
    out = _paint(out, ((_outline(mask()), c) for mask, c in fills), 1.0)
    if "boxes" in target and len(labels):
        boxes = _plain(target["boxes"]).float().reshape(-1, 4)
        out = _labelled_boxes(
            out,
            boxes,
            [classes[k] for k in labels],
            [color(k) for k in labels],
            width=width,
            font=font,
            font_size=size,
        )
    if tags:
        xy = torch.tensor([[x, y, x, y] for x, y, _, _ in tags])
        names = [t[2] for t in tags]
        out = _labelled_boxes(
            out, xy, names, [t[3] for t in tags], width=0, font=font, font_size=size
        )
    return torch.as_tensor(out)


def _draw_other_objects(
    image: torch.Tensor,
    ds: AngoDataset,
    i: int,
    *,
    colors: Mapping[str, Color],
    width: int,
) -> torch.Tensor:
    """Objects of sample ``i`` that ``ds.task`` leaves out: boxes, points, polylines."""
    idx = ds.export.index
    _, page, s = ds.sample_location(i)
    rows = np.arange(int(idx.snap_obj_start[s]), int(idx.snap_obj_end[s]), dtype=np.int64)
    if page >= 0:
        rows = rows[np.maximum(idx.obj_page[rows], 0) == page]
    used = {int(k) for k in task_kinds(ds.task)}
    classes = ds.classes
    h, w = image.shape[-2:]
    font = _default_font()
    size = max(11, min(h, w) // 32)
    boxes: list[list[float]] = []
    names: list[str] = []
    box_colors: list[RGB] = []
    tags: list[tuple[list[float], str, RGB]] = []
    point_titles: set[str] = set()
    out = image
    for row in rows.tolist():
        kind = int(idx.obj_kind[row])
        if kind in used:
            continue
        title = idx.titles[int(idx.obj_title[row])]
        c = _color_of(title, classes, colors)
        if kind == ToolKind.BOUNDING_BOX:
            x1, y1, x2, y2 = (float(v) for v in idx.obj_bbox[row])
            x1, x2 = min(max(x1, 0.0), w - 1.0), min(max(x2, 0.0), w - 1.0)
            y1, y2 = min(max(y1, 0.0), h - 1.0), min(max(y2, 0.0), h - 1.0)
            boxes.append([x1, y1, x2, y2])
            names.append(title)
            box_colors.append(c)
        elif kind in (ToolKind.POINT, ToolKind.POLYLINE):
            pts = (
                idx.obj_bbox[row, :2].reshape(1, 2)
                if kind == ToolKind.POINT
                else idx.rings(row)[0][0]
            )
            if len(pts) == 0:
                continue
            if len(pts) > 1:
                # draw_keypoints draws its connections in white: the line is painted here.
                line = Image.new("1", (int(w), int(h)))
                ImageDraw.Draw(line).line([tuple(p) for p in pts.tolist()], fill=1, width=width)
                out = _paint(out, [(torch.from_numpy(np.array(line)), c)], 1.0)
            kp = torch.from_numpy(np.array(pts, np.float32)).reshape(1, -1, 2)
            out = draw_keypoints(out, kp, colors=c, radius=width + 1)
            if kind == ToolKind.POINT and title in point_titles:
                continue  # keypoints crowd: each point title is named once
            point_titles.add(title)
            x, y = (float(v) for v in pts[0])
            tags.append(([x + width + 2, y + width + 2] * 2, title, c))
    out = _labelled_boxes(
        out,
        torch.tensor(boxes).reshape(-1, 4),
        names,
        box_colors,
        width=width,
        font=font,
        font_size=size,
    )
    if tags:
        out = _labelled_boxes(
            out,
            torch.tensor([t[0] for t in tags]),
            [t[1] for t in tags],
            [t[2] for t in tags],
            width=0,
            font=font,
            font_size=max(9, size * 3 // 4),
        )
    return torch.as_tensor(out)


def save_png(image: torch.Tensor, path: str | os.PathLike[str]) -> Path:
    """Write a ``uint8 [3, H, W]`` (or ``[1, H, W]``, ``[H, W]``) tensor as a PNG."""
    t = _plain(image).detach().cpu()
    if t.dtype != torch.uint8:
        raise ValueError(f"save_png: expected a uint8 tensor, got {t.dtype}")
    return write_png(t.numpy() if t.ndim == 2 else t.permute(1, 2, 0).numpy(), path)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def preview_name(index: int, external_id: str, *, digits: int = 1) -> str:
    """``<index>_<externalId stem>.png``, the stem reduced to ``[A-Za-z0-9._-]``."""
    stem = Path(external_id.replace("\\", "/")).stem if external_id else ""
    stem = _UNSAFE.sub("_", stem).strip("._") or "asset"
    return f"{index:0{digits}d}_{stem[:100]}.png"


def preview(
    ds: AngoDataset,
    out_dir: str | os.PathLike[str],
    *,
    indices: Iterable[int] | None = None,
    progress: bool | None = None,
) -> list[Path]:
    """Write ``ds``'s samples with their annotations drawn as PNGs into ``out_dir``.

    Draws what the dataset's targets hold (instance masks and boxes, or the semantic
    map) and, from the export's index, the objects of the sample that the task leaves
    out: axis-aligned boxes (``instance``/``semantic``), points and polylines.  Those
    extra objects are left out when ``ds`` has ``transforms`` (their coordinates would
    not match the transformed image).  For every kind at once, use
    ``task="instance", brush_instances="components"``.

    Args:
        ds: the dataset; colours come from its ontology where it has one.
        out_dir: created if needed; files are named ``<index>_<externalId stem>.png``.
        indices: the samples to draw (default: all).
        progress: show a progress bar (default: when stderr is a terminal).

    Returns:
        The paths written, in ``indices`` order.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    colors = class_colors(ds.ontology)
    picks = list(range(len(ds))) if indices is None else [int(i) for i in indices]
    digits = len(str(max(len(ds) - 1, 0)))
    idx = ds.export.index
    written = []
    for i in _progress(picks, desc="preview", total=len(picks), enabled=progress):
        i = range(len(ds))[i]  # IndexError when out of range; negative indices count back
        image, target = ds[i]
        drawn = draw_sample(image, target, classes=ds.classes, colors=colors)
        if ds.transforms is None:
            drawn = _draw_other_objects(drawn, ds, i, colors=colors, width=2)
        name = idx.string(idx.asset_external_id[ds.asset_index(i)]) or ds.asset_id(i)
        written.append(save_png(drawn, out / preview_name(i, name, digits=digits)))
    return written
