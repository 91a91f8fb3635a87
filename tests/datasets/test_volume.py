"""AngoVolumeDataset on the bundled volume sample (examples/data/volume), MONAI and TorchIO.

References: the sample's construction constants (examples/data/volume/make_volume.py:
sphere centre voxel (8, 10, 8), radius 3.5 voxels; box voxels i 15..20, j 3..8, k 2..6;
RAS affine = R_z(30°) · diag(0.8, 0.9, 1.5) with origin (-10, 12, 30)), the world
coordinate of the sphere centre worked out by hand, voxel counts from plain Python
loops, and SimpleITK's physical point for the same voxel of the same file.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ango_torch.datasets.volume import AngoVolumeDataset, to_torchio_subject
from ango_torch.errors import GridMismatchError

pytest.importorskip("nrrd")

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "volume"
# R_z(30°) diag(0.8, 0.9, 1.5) (8, 10, 8) + (-10, 12, 30), by hand:
# x = 0.8660254·6.4 − 0.5·9.0 − 10 = −8.9574374; y = 0.5·6.4 + 0.8660254·9.0 + 12 = 22.9942286
SPHERE_WORLD = np.array([-8.9574374, 22.9942286, 42.0])
SPHERE_VOXELS = sum(
    1
    for a in range(-4, 5)
    for b in range(-4, 5)
    for c in range(-4, 5)
    if a * a + b * b + c * c <= 3.5**2
)
BOX_VOXELS = 6 * 6 * 5


def _dataset(**kw: Any) -> AngoVolumeDataset:
    return AngoVolumeDataset(
        SAMPLE / "export.json",
        root=SAMPLE / "root",
        ontology=SAMPLE / "ontology.json",
        **kw,
    )


def _centre(label: np.ndarray, affine: np.ndarray, value: int) -> np.ndarray:
    ijk = np.argwhere(label == value).mean(axis=0)
    return (affine @ np.array([*ijk, 1.0]))[:3]


def test_sample_dict_shapes_classes_boxes_and_the_sphere_centre() -> None:
    ds = _dataset(metatensor=False)
    assert len(ds) == 2
    assert ds.classes == ["__background__", "Tumour", "Kidney", "Kidney box"]
    s = ds[0]
    assert s["image"].dtype == torch.float32 and tuple(s["image"].shape) == (1, 24, 20, 16)
    assert s["label"].dtype == torch.int64 and tuple(s["label"].shape) == (1, 24, 20, 16)
    assert s["asset_id"] == "6a1f00000000000000000001"
    np.testing.assert_allclose(s["spacing"].numpy(), [0.8, 0.9, 1.5])
    assert s["boxes3d"].tolist() == [[15.0, 3.0, 2.0, 20.0, 8.0, 6.0]]
    assert s["labels3d"].tolist() == [3]
    label = s["label"][0].numpy()
    assert np.bincount(label.ravel()).tolist() == [24 * 20 * 16 - 179 - 180, 179, 180]
    assert (SPHERE_VOXELS, BOX_VOXELS) == (179, 180)
    np.testing.assert_allclose(_centre(label, s["affine"].numpy(), 1), SPHERE_WORLD, atol=1e-6)
    # The sphere's image intensity is +200 over the gradient: image and label agree.
    image = s["image"][0].numpy()
    assert image[8, 10, 8] == 8 + 2 * 10 + 3 * 8 + 200


def test_sphere_centre_agrees_with_simpleitk() -> None:
    sitk = pytest.importorskip("SimpleITK")
    img = sitk.ReadImage(str(SAMPLE / "root" / "ct_001.nrrd"))
    lps = np.array(img.TransformIndexToPhysicalPoint((8, 10, 8)))
    np.testing.assert_allclose(lps * [-1, -1, 1], SPHERE_WORLD, atol=1e-6)
    lps_ds = _dataset(metatensor=False, orientation="LPS")[0]["affine"].numpy()
    np.testing.assert_allclose((lps_ds @ [8, 10, 8, 1])[:3], lps, atol=1e-6)


def test_layered_4d_cropped_labels_equal_the_3d_labels() -> None:
    ds = _dataset(metatensor=False)
    np.testing.assert_array_equal(ds[1]["label"].numpy(), ds[0]["label"].numpy())
    assert not ds.label_stats.unlisted and ds.label_stats.overlap == 0


def test_zip_variant_and_grid_mismatch(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(SAMPLE / "root", root)
    (seg,) = [p for p in (root / "_brush").iterdir() if p.name.startswith("6a1f" + "0" * 19 + "1")]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ct_001.seg.nrrd", seg.read_bytes())
    seg.write_bytes(buf.getvalue())
    ds = AngoVolumeDataset(
        SAMPLE / "export.json", root=root, ontology=SAMPLE / "ontology.json", metatensor=False
    )
    np.testing.assert_array_equal(ds[0]["label"].numpy(), ds[1]["label"].numpy())
    # An image of another shape: the label no longer fits its grid.
    from ango_torch.assets.volume_io import write_nrrd

    (root / "ct_001.nrrd").write_bytes(write_nrrd(np.zeros((10, 10, 10), np.int16), np.eye(4)))
    with pytest.raises(GridMismatchError, match=r"asset 'ct_001\.nrrd' \(#0\).*shape"):
        ds[0]


def test_unselected_classes_and_non_volume_assets_are_counted(tmp_path: Path) -> None:
    raws = json.loads((SAMPLE / "export.json").read_text())
    raws.append({**raws[0], "assetId": "x", "externalId": "photo.jpg"})
    raws[-1]["task"] = {**raws[0]["task"], "medicalBrushDataUrl": "", "tools": []}
    with pytest.warns(UserWarning, match="3D box of a class not selected"):
        ds = AngoVolumeDataset(
            raws,
            root=SAMPLE / "root",
            ontology=SAMPLE / "ontology.json",
            classes=["Tumour"],
            metatensor=False,
        )
    assert len(ds) == 2
    assert ds.report.skipped_assets == [(2, "photo.jpg", "not a volume asset")]
    assert ds.report.dropped_objects["3D box of a class not selected"] == 2
    label = ds[0]["label"].numpy()
    assert np.bincount(label.ravel()).tolist() == [24 * 20 * 16 - 179, 179]
    assert ds.label_stats.excluded == {"Kidney": 180}
    assert ds[0]["boxes3d"].shape == (0, 6)


def test_monai_dictionary_pipeline_and_unet_step() -> None:
    monai = pytest.importorskip("monai")
    from monai import transforms as mt
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet

    keys = ["image", "label"]
    pipeline = mt.Compose(
        [
            mt.Orientationd(keys=keys, axcodes="RAS", labels=None),
            mt.Spacingd(keys=keys, pixdim=(1.0, 1.0, 1.0), mode=("bilinear", "nearest")),
        ]
    )
    ds = _dataset(transforms=pipeline)
    s = ds[0]
    assert isinstance(s["image"], monai.data.MetaTensor)
    # After reorientation and resampling to 1 mm the sphere is still where it was
    # (within the 1 mm voxel of nearest-neighbour resampling).
    label, affine = s["label"][0].numpy(), s["label"].affine.numpy()
    np.testing.assert_allclose(_centre(label, affine, 1), SPHERE_WORLD, atol=1.0)
    crop = mt.RandCropByPosNegLabeld(
        keys=keys, label_key="label", spatial_size=(16, 16, 16), pos=1, neg=1, num_samples=2
    )
    crop.set_random_state(0)
    patches = crop(s)
    assert len(patches) == 2
    image = torch.stack([p["image"].as_tensor() for p in patches])
    target = torch.stack([p["label"].as_tensor() for p in patches])
    assert image.shape == (2, 1, 16, 16, 16) and target.shape == (2, 1, 16, 16, 16)
    torch.manual_seed(0)
    net = UNet(spatial_dims=3, in_channels=1, out_channels=4, channels=(4, 8), strides=(2,))
    loss = DiceCELoss(to_onehot_y=True, softmax=True)(net(image), target)
    loss.backward()
    assert math.isfinite(loss.item())
    assert all(p.grad is not None for p in net.parameters())


def test_torchio_subject_through_a_queue() -> None:
    tio = pytest.importorskip("torchio")
    ds = _dataset(metatensor=False)
    subject = to_torchio_subject(ds[0])
    # TorchIO reads the affine's orientation and voxel size as given.
    assert subject["image"].spacing == pytest.approx((0.8, 0.9, 1.5))
    np.testing.assert_allclose(subject["label"].affine @ [8, 10, 8, 1], [*SPHERE_WORLD, 1])
    queue = tio.Queue(
        tio.SubjectsDataset([subject, to_torchio_subject(ds[1])]),
        max_length=4,
        samples_per_volume=2,
        sampler=tio.LabelSampler(patch_size=8, label_name="label"),
        num_workers=0,
        shuffle_subjects=False,
        shuffle_patches=False,
    )
    loader = torch.utils.data.DataLoader(queue, batch_size=2, num_workers=0)
    batch = next(iter(loader))
    assert batch["image"][tio.DATA].shape == (2, 1, 8, 8, 8)
    assert batch["label"][tio.DATA].dtype == torch.int64


def test_torchio_subject_takes_the_transformed_affine() -> None:
    """After MONAI's Spacingd the image MetaTensor's affine changes (1 mm voxels); the
    subject must carry that one, not the sample's stale "affine" entry."""
    pytest.importorskip("torchio")
    from monai import transforms as mt

    keys = ["image", "label"]
    ds = _dataset(
        transforms=mt.Spacingd(keys=keys, pixdim=(1.0, 1.0, 1.0), mode=("bilinear", "nearest"))
    )
    subject = to_torchio_subject(ds[0])
    assert subject["image"].spacing == pytest.approx((1.0, 1.0, 1.0))


def test_slices_for_2d_models() -> None:
    """Slices across k of the sample: labelled k are 2..6 (box) and 5..11 (sphere, |dk| ≤ 3
    around 8), i.e. 2..11; a slice is [C, J, I] (y = j, x = i), all by hand."""
    from ango_torch.datasets.volume_slices import AngoVolumeSlices

    vol = _dataset(metatensor=False)
    sem = AngoVolumeSlices(vol, axis=2)
    assert len(sem) == 2 * 10
    assert [sem._index[n][1] for n in range(10)] == list(range(2, 12))
    image, target = sem[6]  # volume 0, k = 8
    assert target["slice"] == 8 and tuple(image.shape) == (1, 20, 24)
    assert image.dtype == torch.float32
    assert image[0, 10, 8] == 8 + 2 * 10 + 3 * 8 + 200  # the sphere centre's intensity
    mask = target["mask"]
    assert mask.dtype == torch.int64 and mask[10, 8] == 1 and int((mask == 2).sum()) == 0
    inst = AngoVolumeSlices(vol, axis=2, task="instance", window=(0, 1000))
    image, target = inst[2]  # volume 0, k = 4: the box only
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 20, 24)
    assert target["labels"].tolist() == [2]
    assert target["boxes"].tolist() == [[15.0, 3.0, 21.0, 9.0]]
    assert target["area"].tolist() == [36.0] and target["masks"].shape == (1, 20, 24)


def test_prefetch_copies_volumes_and_seg_nrrd_where_the_dataset_reads_them(
    tmp_path: Path,
) -> None:
    """Before: prefetch skipped medicalBrushDataUrl and verified .nrrd files as images."""
    from ango_torch.assets.prefetch import prefetch, prefetch_items
    from ango_torch.export.load import load_export

    reference = _dataset(metatensor=False)
    raws = json.loads((SAMPLE / "export.json").read_text())
    for a, raw in enumerate(raws):
        seg = reference.store.fetch(  # the sample's .seg.nrrd bytes, by the dataset's rule
            asset_id=raw["assetId"],
            external_id=raw["externalId"],
            url=raw["task"]["medicalBrushDataUrl"],
            kind="brush",
            content_key=_medical_key(reference, a),
        )
        (tmp_path / f"seg{a}.bin").write_bytes(seg)
        raw["asset"] = str(SAMPLE / "root" / raw["externalId"])
        raw["task"]["medicalBrushDataUrl"] = str(tmp_path / f"seg{a}.bin")
    report = prefetch(
        prefetch_items(load_export(raws)), to=tmp_path / "dest", allow_local_urls=True
    )
    assert (report.fetched, report.failed) == (4, [])
    ds = AngoVolumeDataset(
        raws, root=tmp_path / "dest", ontology=SAMPLE / "ontology.json", metatensor=False
    )
    for i in range(2):
        np.testing.assert_array_equal(ds[i]["label"].numpy(), reference[i]["label"].numpy())
    (tmp_path / "seg0.bin").write_bytes(b"not a volume")
    report = prefetch(
        prefetch_items(load_export(raws)), to=tmp_path / "dest2", allow_local_urls=True
    )
    assert len(report.failed) == 1 and "not an NRRD" in report.failed[0][1]


def _medical_key(ds: AngoVolumeDataset, a: int) -> str:
    from ango_torch.assets.volume_io import medical_content_key

    idx = ds.export.index
    return medical_content_key(idx, int(idx.asset_snap_start[a]))


def test_slices_draw_2d_polygons_of_their_page() -> None:
    """A polygon on page (= k) 8 and one on page 14 (no voxel label there): pixel
    centres inside [2, 6] × [2, 5] are x 2..5, y 2..4 = 12 pixels (by hand)."""
    from ango_torch.datasets.volume_slices import AngoVolumeSlices

    raws = json.loads((SAMPLE / "export.json").read_text())
    square = [[2, 2], [6, 2], [6, 5], [2, 5]]
    for page, oid in ((8, "p8"), (14, "p14")):
        raws[0]["task"]["tools"].append(
            {
                "polygon": square,
                "objectId": oid,
                "title": "Lesion",
                "page": page,
                "schemaId": "les",
                "classifications": [],
            }
        )
    vol = AngoVolumeDataset(
        raws, root=SAMPLE / "root", ontology=SAMPLE / "ontology.json", metatensor=False
    )
    sem = AngoVolumeSlices(vol, axis=2)
    assert sem.classes == [*vol.classes, "Lesion"]
    assert [z for v, z in sem._index if v == 0] == [*range(2, 12), 14]
    _, target = sem[6]  # volume 0, k = 8
    mask = target["mask"]
    assert int((mask == 4).sum()) == 12 and bool((mask[2:5, 2:6] == 4).all())
    assert mask[10, 8] == 1  # the voxel brush's sphere is still there
    inst = AngoVolumeSlices(vol, axis=2, task="instance")
    _, target = inst[10]  # volume 0, k = 14: the polygon only
    assert target["slice"] == 14 and target["labels"].tolist() == [4]
    assert target["boxes"].tolist() == [[2.0, 2.0, 6.0, 5.0]] and target["area"].tolist() == [12.0]


def test_the_bundled_sample_is_what_its_generator_writes(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = SAMPLE / "make_volume.py"
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], check=True)
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    shipped = sorted(
        p.relative_to(SAMPLE) for p in SAMPLE.rglob("*") if p.is_file() and p.suffix != ".py"
    )
    assert made == shipped
    for rel in made:
        assert (tmp_path / rel).read_bytes() == (SAMPLE / rel).read_bytes(), rel


def test_expired_signed_urls_warn_without_root() -> None:
    """As AngoDataset: X-Amz-Date 2026-09-01 + 1 h is long past (datetime.now is later)."""
    raws = json.loads((SAMPLE / "export.json").read_text())
    signed = "?X-Amz-Date=20260901T080000Z&X-Amz-Expires=3600&X-Amz-Signature=ab"
    raws[0]["task"]["medicalBrushDataUrl"] += signed
    with pytest.warns(UserWarning, match=r"1 of 1 signed asset URLs have expired"):
        AngoVolumeDataset(raws, metatensor=False)


def test_dataloader_worker_batches_the_sample() -> None:
    """The dataset pickles into a worker; both samples have one box, so the default
    collate stacks everything (labels summed by hand: 179 + 2 · 180 voxels each)."""
    ds = _dataset(metatensor=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1)
    batch = next(iter(loader))
    assert tuple(batch["image"].shape) == (2, 1, 24, 20, 16)
    assert batch["label"].sum(dim=(1, 2, 3, 4)).tolist() == [539, 539]
    assert tuple(batch["boxes3d"].shape) == (2, 1, 6)


def test_classes_mapping_merges_voxel_classes_and_3d_boxes() -> None:
    # Issue 15's class mapping on volumes: "organ" merges Kidney (by title) and the
    # "Kidney box" 3D boxes (by schemaId "box3d"); "lesion" renames Tumour (schemaId "1").
    # Expected voxel counts are the sample's construction constants (module docstring):
    # sphere 179 voxels, box 6·6·5 = 180.
    ds = _dataset(metatensor=False, classes={"lesion": "1", "organ": ["Kidney", "box3d"]})
    assert ds.classes == ["__background__", "lesion", "organ"]
    s = ds[0]
    label = s["label"][0].numpy()
    assert np.bincount(label.ravel()).tolist() == [24 * 20 * 16 - 179 - 180, 179, 180]
    assert s["labels3d"].tolist() == [2]
    assert s["classes"] == ["__background__", "lesion", "organ"]
    # Unmapped classes are left out and counted, as with a list.
    with pytest.warns(UserWarning, match="3D box of a class not selected"):
        only = _dataset(metatensor=False, classes={"lesion": ["Tumour"]})
    assert only.classes == ["__background__", "lesion"]
    assert only.report.dropped_objects["3D box of a class not selected"] == 2
    assert np.bincount(only[0]["label"].numpy().ravel()).tolist() == [24 * 20 * 16 - 179, 179]
    assert only.label_stats.excluded == {"Kidney": 180}
