"""Benchmark: loading a volume and its label, AngoVolumeDataset vs MONAI ``LoadImaged``.

(a) ``AngoVolumeDataset[i]`` (fetch from ``root``, read the gzip NRRD image and its
    gzip ``.seg.nrrd``, decode labels to class indices, check the grids, wrap both in
    MONAI ``MetaTensor``s) vs MONAI's ``LoadImaged(keys=["image", "label"],
    image_only=True, ensure_channel_first=True)`` on the same two files (its NRRD reader,
    pynrrd, with no class mapping or grid check). Passes over all volumes alternate
    (ours, MONAI, ours, ...); min / median / max per pass are printed and the headline
    ratio is MONAI's median / ours (> 1: ours is faster).
(b) The layered 4D ``.seg.nrrd`` that 3D Slicer writes for overlapping segments: whether
    ``LoadImaged`` loads it and with what shape (MONAI issue 8653), and ours.

Run::

    python benchmarks/volumes.py            # 6 volumes 192x192x128 int16, 5 passes
    python benchmarks/volumes.py --smoke    # 2 volumes 32x32x24, 2 passes (the test suite)
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def make(folder: Path, n: int, shape: tuple[int, int, int]) -> tuple[Path, Path, list[Path]]:
    """n volumes with a sphere label each, a layered 4D label for volume 0; paths."""
    from ango_torch.assets.fetch import asset_path
    from ango_torch.assets.volume_io import medical_content_key, write_nrrd
    from ango_torch.export.load import load_export

    rng = np.random.default_rng(0)
    aff = np.diag([0.7, 0.7, 1.2, 1.0])
    i, j, k = np.indices(shape)
    c = np.array(shape) / 2
    sphere = ((i - c[0]) ** 2 + (j - c[1]) ** 2 + (k - c[2]) ** 2) <= (min(shape) / 4) ** 2
    box = np.zeros(shape, bool)
    box[: shape[0] // 2, : shape[1] // 2, : shape[2] // 2] = True
    label = (sphere * 1).astype(np.uint8)
    root = folder / "root"
    (root / "_brush").mkdir(parents=True)
    assets = []
    for a in range(n):
        assets.append(
            {
                "assetId": f"a{a:023d}",
                "externalId": f"v{a}.nrrd",
                "asset": f"https://example.invalid/v{a}.nrrd",
                "metadata": {},
                "task": {
                    "taskId": f"t{a}",
                    "tools": [],
                    "medicalBrushDataUrl": f"https://example.invalid/v{a}.seg.nrrd",
                },
            }
        )
    index = load_export(assets).index
    labels = []
    for a, raw in enumerate(assets):
        img = (rng.normal(0, 100, shape) + 300 * sphere).astype(np.int16)
        (root / raw["externalId"]).write_bytes(write_nrrd(img, aff))
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
        path.write_bytes(write_nrrd(label, aff))
        # The same bytes under a .seg.nrrd name for MONAI (it picks readers by suffix).
        named = folder / f"v{a}.seg.nrrd"
        named.write_bytes(path.read_bytes())
        labels.append(named)
    # Slicer's layered form for overlapping segments (sphere and box overlap).
    layered = folder / "layered.seg.nrrd"
    fields = {
        "Segment0_LabelValue": "1",
        "Segment0_Layer": "0",
        "Segment1_LabelValue": "2",
        "Segment1_Layer": "1",
    }
    layered.write_bytes(
        write_nrrd(np.stack([sphere * 1, box * 2]).astype(np.uint8), aff, fields=fields)
    )
    export = folder / "export.json"
    export.write_text(json.dumps(assets))
    ontology = folder / "ontology.json"
    ontology.write_text(
        json.dumps(
            {
                "tools": [
                    {"title": "Sphere", "schemaId": "1", "tool": "brush", "medical-brush": True},
                    {"title": "Box", "schemaId": "2", "tool": "brush", "medical-brush": True},
                ]
            }
        )
    )
    return export, ontology, labels


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--volumes", type=int, default=6)
    ap.add_argument("--passes", type=int, default=5)
    args = ap.parse_args()
    n, passes, shape = args.volumes, args.passes, (192, 192, 128)
    if args.smoke:
        n, passes, shape = 2, 2, (32, 32, 24)
    from monai.transforms import LoadImaged

    from ango_torch import AngoVolumeDataset

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        export, ontology, labels = make(folder, n, shape)
        ds = AngoVolumeDataset(export, root=folder / "root", ontology=ontology)
        images = [folder / "root" / f"v{a}.nrrd" for a in range(n)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MONAI's own deprecation notices
            loader = LoadImaged(keys=["image", "label"], image_only=True, ensure_channel_first=True)

            def ours() -> None:
                for i in range(len(ds)):
                    s = ds[i]
                    assert s["label"].shape[0] == 1

            def monai() -> None:
                for img, lab in zip(images, labels, strict=True):
                    d = loader({"image": str(img), "label": str(lab)})
                    assert d["label"].shape[0] == 1

            ours(), monai()  # warm-up (imports, caches)
            t_ours, t_monai = [], []
            for _ in range(passes):
                t_ours.append(timed(ours))
                t_monai.append(timed(monai))
            print(
                f"volumes: {n} × {shape} int16 gzip NRRD + uint8 .seg.nrrd, {passes} passes "
                "(alternating); seconds per pass min / median / max"
            )
            for name, t in (
                ("AngoVolumeDataset", t_ours),
                ("MONAI LoadImaged (baseline)", t_monai),
            ):
                print(f"  {name:<30}{min(t):8.3f}{statistics.median(t):8.3f}{max(t):8.3f}")
            ratio = statistics.median(t_monai) / statistics.median(t_ours)
            print(f"(a) image + label load vs MONAI LoadImaged   →   {ratio:.2f}× faster")
            layered = folder / "layered.seg.nrrd"
            try:
                d = loader({"image": str(images[0]), "label": str(layered)})
                outcome = f"loads, label shape {tuple(d['label'].shape)} (layers not decoded)"
            except Exception as exc:  # what MONAI raises is the finding
                outcome = f"fails: {type(exc).__name__}: {str(exc)[:120]}"
            print(f"(b) layered 4D .seg.nrrd: MONAI LoadImaged {outcome}")
            from ango_torch.assets.volume_io import read_volume
            from ango_torch.targets.segnrrd import decode_labels

            vol = read_volume(layered.read_bytes())
            dec = decode_labels(vol.header, vol.data, {"1": 1, "2": 2})
            print(
                f"    ango_torch decodes it to {dec.shape} with classes "
                f"{sorted(np.unique(dec).tolist())}"
            )


if __name__ == "__main__":
    main()
