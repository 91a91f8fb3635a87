"""What ``inspect --volumes`` / ``validate --volumes`` say about each volume asset.

Reads every volume of an :class:`~ango_torch.datasets.volume.AngoVolumeDataset` (image
and ``.seg.nrrd``) and reports its shape, spacing, orientation, segments and their
classes, how the label grid relates to the image's, and label values with no class.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import AngoTorchError, GridMismatchError, where
from ..targets.segnrrd import LabelStats, decode_labels, fit_to_grid, segments
from .volume import AngoVolumeDataset

__all__ = ["axcodes", "volume_problems", "volume_reports"]

_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


def axcodes(affine: npt.NDArray[np.float64]) -> str:
    """The RAS+ direction each voxel axis points to, e.g. ``"LPS"``: nibabel's
    ``aff2axcodes`` rule (the nearest orthonormal matrix, axes assigned greedily, the
    most certain first, so no two voxel axes share a world axis)."""
    rzs = np.asarray(affine, np.float64)[:3, :3]
    u, _, vt = np.linalg.svd(rzs / np.linalg.norm(rzs, axis=0))
    r = u @ vt
    codes = [""] * 3
    for c in np.argsort(-np.max(r**2, axis=0), kind="stable").tolist():
        ax = int(np.argmax(np.abs(r[:, c])))
        codes[c] = _LABELS[ax][1] if r[ax, c] > 0 else _LABELS[ax][0]
        r[ax, :] = 0
    return "".join(codes)


def volume_reports(ds: AngoVolumeDataset) -> list[dict[str, Any]]:
    """One dict per volume sample: ``asset``, ``index``, ``format``, ``shape`` (I, J, K),
    ``channels``, ``spacing``, ``orientation`` (axis codes), ``segments`` (number, name,
    label value, layer, class title or ``None``), ``label_grid`` (``"same"``,
    ``"cropped"``, ``"none"`` or ``"mismatch: ..."``), ``unlisted_values`` (value →
    voxels) and ``error`` (a fetch/decode error's message, else ``None``)."""
    idx = ds.export.index
    titles = {k: t for k, t in enumerate(ds.classes)}
    out = []
    for i in range(len(ds)):
        a, s = ds._samples[i]
        name = idx.string(idx.asset_external_id[a]) or ""
        rec: dict[str, Any] = {
            "asset": name,
            "index": a,
            "error": None,
            "segments": [],
            "label_grid": "none",
            "unlisted_values": {},
        }
        out.append(rec)
        try:
            img = ds._read_image(a)
            spatial = img.data.shape[:3] if img.fmt == "nifti" else img.data.shape[-3:]
            channels = (
                1
                if img.data.ndim == 3
                else int(img.data.shape[3] if img.fmt == "nifti" else img.data.shape[0])
            )
            rec |= {
                "format": img.fmt,
                "shape": [int(v) for v in spatial],
                "channels": channels,
                "spacing": [round(v, 6) for v in img.spacing],
                "orientation": axcodes(img.affine),
            }
            url = idx.string(idx.snap_medical_brush[s])
            if url is None:
                continue
            seg = ds._read_segmentation(a, s, url)
        except AngoTorchError as exc:
            rec["error"] = str(exc)
            continue
        for seg_info in segments(seg.header, seg.data):
            cls = ds._classify.get(str(seg_info.label_value))
            if cls is None and seg_info.name is not None:
                cls = ds._classify.get(seg_info.name)
            rec["segments"].append(
                {
                    "number": seg_info.number,
                    "name": seg_info.name,
                    "label_value": seg_info.label_value,
                    "layer": seg_info.layer,
                    "class": titles.get(cls) if isinstance(cls, int) else cls,
                }
            )
        stats = LabelStats()
        labels = decode_labels(seg.header, seg.data, ds._classify, stats=stats)
        rec["unlisted_values"] = {int(k): int(v) for k, v in stats.unlisted.items()}
        same = labels.shape == tuple(spatial) and np.allclose(
            seg.affine, img.affine, atol=ds.tolerance
        )
        if same:
            rec["label_grid"] = "same"
        else:
            try:
                fit_to_grid(labels, seg.affine, spatial, img.affine, tol=ds.tolerance)
                rec["label_grid"] = "cropped"
            except GridMismatchError as exc:
                rec["label_grid"] = f"mismatch: {str(exc).split(': ', 1)[-1]}"
    return out


def volume_problems(reports: list[dict[str, Any]]) -> list[str]:
    """One line per problem: unreadable volumes, label grids that do not fit, label
    values with no class."""
    lines = []
    for r in reports:
        at = where(asset=r["asset"], index=r["index"])
        if r["error"]:
            lines.append(f"volume-unreadable: {r['error']}")
        if str(r["label_grid"]).startswith("mismatch"):
            lines.append(f"volume-grid-mismatch: {at}: {r['label_grid'][10:]}")
        for value, n in r["unlisted_values"].items():
            lines.append(
                f"volume-unlisted-label: {at}: label value {value} ({n} voxels) has no class"
            )
    return lines
