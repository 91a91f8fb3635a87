"""Voxel-brush labels (``.seg.nrrd``) → class-index volumes, and label/image grid checks.

Pure numpy (the bytes are read by :mod:`ango_torch.assets.volume_io`). A label file is
either the SDK's plain 3D map (voxel value = the medical-brush class's schemaId, 0 =
background) or a 3D Slicer segmentation: ``SegmentN_LabelValue`` (the voxel value, =
schemaId), ``SegmentN_Layer`` (which layer of a 4D file, first axis ``kinds: list``,
holds it), ``SegmentN_Name`` and ``SegmentN_Extent`` (``i0 i1 j0 j1 k0 k1``, inclusive:
voxels outside it are not the segment's).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..errors import GridMismatchError
from .arrays import IGNORE

__all__ = [
    "LabelStats",
    "Segment",
    "decode_labels",
    "fit_to_grid",
    "segments",
]

Overlap = Literal["last", "ignore"]
_SEGMENT = re.compile(r"^Segment(\d+)_(\w+)$")


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment of a label file: its voxels are ``layer == label_value`` (in extent)."""

    number: int
    label_value: int
    layer: int = 0
    name: str | None = None
    extent: tuple[int, int, int, int, int, int] | None = None


@dataclass
class LabelStats:
    """What decoding left out: voxels of values with no class (``unlisted``: value →
    voxels), of classes not selected (``excluded``: title → voxels), and voxels two
    classes claim (``overlap``; IGNORE under ``overlap="ignore"``)."""

    unlisted: Counter[int] = field(default_factory=Counter)
    excluded: Counter[str] = field(default_factory=Counter)
    overlap: int = 0


def segments(header: Mapping[str, Any], data: npt.NDArray[Any]) -> list[Segment]:
    """The segments of a label file, in file order (``SegmentN`` by ``N``).

    Without Slicer ``SegmentN_*`` fields every distinct non-zero voxel value of the
    (3D) map is one segment (the SDK's plain label map).
    """
    fields: dict[int, dict[str, str]] = {}
    for key, value in header.items():
        m = _SEGMENT.match(str(key))
        if m:
            fields.setdefault(int(m.group(1)), {})[m.group(2)] = str(value)
    if not fields:
        small = data.dtype.kind in "ui" and data.itemsize <= 2 and data.size > 0
        if small and (data.dtype.kind == "u" or int(data.min()) >= 0):
            found = np.flatnonzero(np.bincount(data.ravel(order="K")))
            values = found[found != 0]
        else:
            uniq = np.unique(data)
            values = uniq[uniq != 0]
        return [Segment(k, int(v)) for k, v in enumerate(values.tolist())]
    out = []
    for n in sorted(fields):
        f = fields[n]
        extent = None
        if f.get("Extent"):
            parts = [int(float(p)) for p in f["Extent"].split()]
            if len(parts) == 6:
                extent = (parts[0], parts[1], parts[2], parts[3], parts[4], parts[5])
        out.append(
            Segment(
                n,
                int(float(f.get("LabelValue", n + 1))),
                int(float(f.get("Layer", 0))),
                f.get("Name"),
                extent,
            )
        )
    return out


def _segment_mask(seg: Segment, data: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    layer = data if data.ndim == 3 else data[seg.layer]
    mask: npt.NDArray[np.bool_] = np.asarray(layer == seg.label_value)
    if seg.extent is not None:
        i0, i1, j0, j1, k0, k1 = seg.extent
        keep = np.zeros_like(mask)
        keep[max(i0, 0) : i1 + 1, max(j0, 0) : j1 + 1, max(k0, 0) : k1 + 1] = True
        mask &= keep
    return mask


def decode_labels(
    header: Mapping[str, Any],
    data: npt.NDArray[Any],
    classify: Mapping[str, int | str | None],
    *,
    overlap: Overlap = "last",
    onehot: int | None = None,
    stats: LabelStats | None = None,
) -> npt.NDArray[np.int64]:
    """Class indices per voxel.

    Args:
        header: The label file's header (``SegmentN_*`` fields, if any).
        data: Its voxels, ``[I, J, K]`` or layered ``[L, I, J, K]``.
        classify: schemaId (the label value as text) or segment name → class index
            (1-based), or → a title string for a class left out by ``classes=``
            (counted in ``stats.excluded``). Values found in neither are counted in
            ``stats.unlisted``. Both stay 0 (background).
        overlap: ``"last"``: a later segment paints over earlier ones; ``"ignore"``:
            voxels claimed by two different classes become ``IGNORE`` (255).
        onehot: The number of classes incl. background: return ``[onehot, I, J, K]``
            0/1 channels instead (overlaps keep every class; ``overlap`` unused).

    Returns:
        int64 ``[I, J, K]`` (or ``[onehot, I, J, K]``).
    """
    stats = stats if stats is not None else LabelStats()
    segs = segments(header, data)
    if not onehot and data.ndim == 3 and data.dtype.kind in "ui" and data.itemsize <= 2:
        fast = _by_table(segs, data, classify, stats)
        if fast is not None:
            return fast
    shape = data.shape[-3:]
    out = np.zeros((onehot, *shape) if onehot else shape, np.int64)
    claimed = np.zeros(shape, np.int64)  # last class per voxel, for overlap accounting
    for seg in segs:
        mask = _segment_mask(seg, data)
        n = int(mask.sum())
        if n == 0:
            continue
        cls = classify.get(str(seg.label_value))
        if cls is None and seg.name is not None:
            cls = classify.get(seg.name)
        if cls is None:
            stats.unlisted[seg.label_value] += n
            continue
        if isinstance(cls, str):
            stats.excluded[cls] += n
            continue
        clash = mask & (claimed != 0) & (claimed != cls)
        stats.overlap += int(clash.sum())
        claimed[mask] = cls
        if onehot:
            out[cls][mask] = 1
        elif overlap == "ignore":
            out[mask & ~clash & (out != IGNORE)] = cls
            out[clash] = IGNORE
        else:
            out[mask] = cls
    if onehot:
        out[0] = (out[1:].sum(axis=0) == 0).astype(np.int64)
    return out


def _by_table(
    segs: list[Segment],
    data: npt.NDArray[Any],
    classify: Mapping[str, int | str | None],
    stats: LabelStats,
) -> npt.NDArray[np.int64] | None:
    """One 3D layer without extents: a lookup table over the voxel values (one pass over
    the volume instead of one per segment); ``None`` where that does not apply."""
    if any(s.extent is not None or s.layer != 0 or s.label_value < 0 for s in segs):
        return None
    flat = data.ravel(order="K")  # no copy for the F-ordered arrays pynrrd returns
    if flat.size and int(flat.min()) < 0:
        return None
    counts = np.bincount(flat)
    table = np.zeros(len(counts), np.int64)
    for seg in segs:
        v = seg.label_value
        n = int(counts[v]) if v < len(counts) else 0
        if n == 0:
            continue
        cls = classify.get(str(v))
        if cls is None and seg.name is not None:
            cls = classify.get(seg.name)
        if cls is None:
            stats.unlisted[v] += n
        elif isinstance(cls, str):
            stats.excluded[cls] += n
        else:
            table[v] = cls
    order: Literal["C", "F"] = (
        "F" if data.flags.f_contiguous and not data.flags.c_contiguous else "C"
    )
    out: npt.NDArray[np.int64] = table[data.ravel(order=order)].reshape(data.shape, order=order)
    return out


def fit_to_grid(
    labels: npt.NDArray[np.int64],
    label_affine: npt.NDArray[np.float64],
    image_shape: tuple[int, int, int],
    image_affine: npt.NDArray[np.float64],
    *,
    resample: bool = False,
    tol: float = 1e-3,
    label: str = "",
) -> npt.NDArray[np.int64]:
    """Place a label volume on the image's voxel grid.

    Equal grids (shape, and affine within ``tol`` mm) return ``labels`` as is. A label
    grid with the image's directions and spacing whose origin is a whole number of
    voxels away (Slicer crops segmentations to their extent) is pasted into a zero
    volume at that offset. Anything else raises, or with ``resample=True`` is resampled
    by nearest neighbour (each image voxel centre takes the label voxel it falls in).

    Args:
        labels: ``[..., I', J', K']`` (leading channel axes allowed).
        label_affine, image_affine: float64 ``[4, 4]`` voxel → world.

    Raises:
        GridMismatchError: the grids differ and ``resample`` is false; the message gives
            both shapes, spacings and origins.
    """
    lshape = labels.shape[-3:]
    same_axes = np.allclose(label_affine[:3, :3], image_affine[:3, :3], atol=tol)
    if (
        same_axes
        and lshape == image_shape
        and np.allclose(label_affine[:3, 3], image_affine[:3, 3], atol=tol)
    ):
        return labels
    if same_axes:
        shift = np.linalg.solve(image_affine[:3, :3], label_affine[:3, 3] - image_affine[:3, 3])
        whole = np.round(shift)
        if np.allclose(shift, whole, atol=1e-3) and (whole >= 0).all():
            o = whole.astype(int)
            if all(o[d] + lshape[d] <= image_shape[d] for d in range(3)):
                out = np.zeros((*labels.shape[:-3], *image_shape), labels.dtype)
                out[
                    ..., o[0] : o[0] + lshape[0], o[1] : o[1] + lshape[1], o[2] : o[2] + lshape[2]
                ] = labels
                return out
    if not resample:
        raise GridMismatchError(
            f"{label}: the label grid differs from the image's: shape {lshape} vs {image_shape}, "
            f"spacing {_fmt(np.linalg.norm(label_affine[:3, :3], axis=0))} vs "
            f"{_fmt(np.linalg.norm(image_affine[:3, :3], axis=0))}, origin "
            f"{_fmt(label_affine[:3, 3])} vs {_fmt(image_affine[:3, 3])} (pass "
            "resample=True to resample the label by nearest neighbour)"
        )
    m = np.linalg.solve(label_affine, image_affine)  # image voxel → label voxel
    out = np.zeros((*labels.shape[:-3], *image_shape), labels.dtype)
    ii, jj = np.meshgrid(np.arange(image_shape[0]), np.arange(image_shape[1]), indexing="ij")
    for k in range(image_shape[2]):
        pts = np.stack([ii, jj, np.full_like(ii, k), np.ones_like(ii)]).reshape(4, -1)
        src = np.floor(m @ pts + 0.5)[:3].astype(np.int64)  # halves round up
        ok = ((src >= 0) & (src < np.array(lshape)[:, None])).all(axis=0)
        flat = np.zeros(ii.size, labels.dtype) if labels.ndim == 3 else None
        if flat is not None:
            flat[ok] = labels[src[0, ok], src[1, ok], src[2, ok]]
            out[:, :, k] = flat.reshape(ii.shape)
        else:
            vals = np.zeros((*labels.shape[:-3], ii.size), labels.dtype)
            vals[..., ok] = labels[..., src[0, ok], src[1, ok], src[2, ok]]
            out[..., k] = vals.reshape(*labels.shape[:-3], *ii.shape)
    return out


def _fmt(v: npt.NDArray[np.float64]) -> str:
    return "(" + ", ".join(f"{float(x):.4g}" for x in v) + ")"
