"""Make the bundled volume sample: two CT-like NRRD volumes and their voxel-brush labels.

Writes, next to this file: ``export.json`` (two assets), ``ontology.json`` (two
``medical-brush`` classes, schemaIds ``1`` and ``2``, and a 3D box class) and ``root/``
(``ct_001.nrrd``, ``ct_002.nrrd`` and the ``.seg.nrrd`` files at the brush layout's
``_brush/<assetId>.<key>.png`` names, where ``AngoVolumeDataset(root=...)`` reads them).

The volume: 24 × 20 × 16 voxels, spacing (0.8, 0.9, 1.5) mm, rotated 30° about the
superior axis (a non-diagonal direction matrix), stored in LPS space. Labels, known by
construction: a sphere of radius 3.5 voxels centred on voxel ``SPHERE_CENTRE`` (class
``Tumour``, value 1) and the box of voxels ``BOX`` (class ``Kidney``, value 2).
``ct_001`` carries the SDK's plain 3D label map; ``ct_002`` the same labels as a 3D
Slicer layered 4D file (one layer per segment, ``SegmentN_*`` fields), cropped to the
segments' extent (its origin moves accordingly). Run: ``python make_volume.py [--out DIR]``
(the output is byte-for-byte reproducible; tests/datasets/test_volume.py checks it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHAPE = (24, 20, 16)
SPACING = (0.8, 0.9, 1.5)
ORIGIN_RAS = (-10.0, 12.0, 30.0)
ANGLE = math.radians(30)
SPHERE_CENTRE = (8, 10, 8)
SPHERE_RADIUS = 3.5
BOX = ((15, 20), (3, 8), (2, 6))  # inclusive voxel ranges along i, j, k


def affine() -> np.ndarray:
    """RAS voxel → world: rotation about z by ANGLE, then the spacing, then ORIGIN."""
    c, s = math.cos(ANGLE), math.sin(ANGLE)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    out = np.eye(4)
    out[:3, :3] = rot @ np.diag(SPACING)
    out[:3, 3] = ORIGIN_RAS
    return out


def masks() -> tuple[np.ndarray, np.ndarray]:
    """(sphere, box) boolean ``[I, J, K]`` masks."""
    i, j, k = np.indices(SHAPE)
    ci, cj, ck = SPHERE_CENTRE
    sphere = (i - ci) ** 2 + (j - cj) ** 2 + (k - ck) ** 2 <= SPHERE_RADIUS**2
    (i0, i1), (j0, j1), (k0, k1) = BOX
    box = np.zeros(SHAPE, bool)
    box[i0 : i1 + 1, j0 : j1 + 1, k0 : k1 + 1] = True
    return sphere, box


def image() -> np.ndarray:
    """int16 intensities: a gradient, the sphere bright, the box brighter."""
    i, j, k = np.indices(SHAPE)
    sphere, box = masks()
    return (i + 2 * j + 3 * k + 200 * sphere + 400 * box).astype(np.int16)


def _extent(mask: np.ndarray, offset: np.ndarray) -> str:
    nz = np.argwhere(mask)
    lo, hi = nz.min(0) - offset, nz.max(0) - offset
    return " ".join(f"{a} {b}" for a, b in zip(lo.tolist(), hi.tolist(), strict=True))


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE, help="folder to write (default: here)")
    out = ap.parse_args(argv).out
    from ango_torch.assets.fetch import asset_path
    from ango_torch.assets.volume_io import medical_content_key, write_nrrd
    from ango_torch.export.load import load_export

    sphere, box = masks()
    plain = (sphere * 1 + box * 2).astype(np.uint8)
    # Slicer's layered form, cropped to the union of the segments (with a 1-voxel margin).
    nz = np.argwhere(sphere | box)
    lo, hi = nz.min(0) - 1, nz.max(0) + 2
    crop = tuple(slice(a, b) for a, b in zip(lo.tolist(), hi.tolist(), strict=True))
    layers = np.stack([sphere[crop] * 1, box[crop] * 2]).astype(np.uint8)
    crop_affine = affine().copy()
    crop_affine[:3, 3] = (affine() @ np.array([*lo.tolist(), 1.0]))[:3]
    fields = {"Segmentation_MasterRepresentation": "Binary labelmap"}
    for n, (name, value, mask, colour) in enumerate(
        [("Tumour", 1, sphere, "0.9 0.2 0.2"), ("Kidney", 2, box, "0.2 0.5 0.9")]
    ):
        fields |= {
            f"Segment{n}_ID": f"Segment_{n + 1}",
            f"Segment{n}_Name": name,
            f"Segment{n}_LabelValue": str(value),
            f"Segment{n}_Layer": str(n),
            f"Segment{n}_Color": colour,
            f"Segment{n}_Extent": _extent(mask, lo),
        }
    ontology = {
        "tools": [
            {
                "title": "Tumour",
                "schemaId": "1",
                "tool": "brush",
                "medical-brush": True,
                "classifications": [],
            },
            {
                "title": "Kidney",
                "schemaId": "2",
                "tool": "brush",
                "medical-brush": True,
                "classifications": [],
            },
            {"title": "Kidney box", "schemaId": "box3d", "tool": "bounding-box"},
        ],
        "classifications": [],
        "relations": [],
    }
    (i0, i1), (j0, j1), (k0, k1) = BOX
    assets = []
    for n in (1, 2):
        aid = f"6a1f00000000000000000{n:03d}"
        assets.append(
            {
                "assetId": aid,
                "externalId": f"ct_00{n}.nrrd",
                "asset": f"https://example.invalid/volumes/ct_00{n}.nrrd",
                "metadata": {},
                "task": {
                    "taskId": f"7b2e00000000000000000{n:03d}",
                    "stage": "Complete",
                    "updatedAt": "2026-11-30T10:00:00.000Z",
                    "tools": [
                        {
                            "bounding-box": {
                                "x1": i0,
                                "y1": j0,
                                "z1": k0,
                                "x2": i1,
                                "y2": j1,
                                "z2": k1,
                            },
                            "objectId": f"box{n}",
                            "schemaId": "box3d",
                            "title": "Kidney box",
                            "classifications": [],
                        }
                    ],
                    "classifications": [],
                    "relations": [],
                    "brushDataUrl": "",
                    "medicalBrushDataUrl": f"https://example.invalid/seg/ct_00{n}.seg.nrrd",
                },
            }
        )
    root = out / "root"
    root.mkdir(parents=True, exist_ok=True)
    (out / "export.json").write_text(json.dumps(assets, indent=1) + "\n")
    (out / "ontology.json").write_text(json.dumps(ontology, indent=1) + "\n")
    vol = write_nrrd(image(), affine())
    segs = [write_nrrd(plain, affine()), write_nrrd(layers, crop_affine, fields=fields)]
    index = load_export(assets).index
    for a, (raw, seg) in enumerate(zip(assets, segs, strict=True)):
        (root / raw["externalId"]).write_bytes(vol)
        s = int(index.asset_snap_start[a])
        path = Path(
            asset_path(
                str(root),
                asset_id=raw["assetId"],
                external_id=raw["externalId"],
                kind="brush",
                content_key=medical_content_key(index, s),
            )
        )
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(seg)


if __name__ == "__main__":
    main()
