"""Volume readers: voxel order and the RAS voxel → world affine against references.

References: hand-written NRRD headers with hand-computed affines (LPS/LAS → RAS negates
the world axes named L/P), SimpleITK's direction/origin/spacing for the same files
(LPS, converted by hand), nibabel's own affine for NIfTI, SimpleITK for pydicom's
bundled CT_small.dcm.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ango_torch.assets.volume_io import read_volume, write_nrrd
from ango_torch.errors import DecodeError

pytest.importorskip("nrrd")


def _nrrd(space: str, directions: str, origin: str, *, data: bytes = bytes(range(24))) -> bytes:
    head = (
        "NRRD0004\ntype: uint8\ndimension: 3\n"
        f"space: {space}\nsizes: 4 3 2\nspace directions: {directions}\n"
        f"kinds: domain domain domain\nencoding: raw\nspace origin: {origin}\n\n"
    )
    return head.encode() + data


# (space, hand-computed RAS affine for directions (0,1,0) (-2,0,0) (0,0,3), origin (10,20,30))
CASES = [
    (
        "left-posterior-superior",
        [[0, 2, 0, -10], [-1, 0, 0, -20], [0, 0, 3, 30], [0, 0, 0, 1]],
    ),
    (
        "right-anterior-superior",
        [[0, -2, 0, 10], [1, 0, 0, 20], [0, 0, 3, 30], [0, 0, 0, 1]],
    ),
    (
        "left-anterior-superior",
        [[0, 2, 0, -10], [1, 0, 0, 20], [0, 0, 3, 30], [0, 0, 0, 1]],
    ),
]


@pytest.mark.parametrize(("space", "expected"), CASES, ids=["LPS", "RAS", "LAS"])
def test_nrrd_affine_is_hand_computed_ras(space: str, expected: list[list[float]]) -> None:
    vol = read_volume(_nrrd(space, "(0,1,0) (-2,0,0) (0,0,3)", "(10,20,30)"), "a.nrrd")
    np.testing.assert_allclose(vol.affine, expected)
    assert vol.spacing == (1.0, 2.0, 3.0)
    # Voxel order: byte n is voxel (i, j, k) with n = i + 4 j + 12 k (sizes 4 3 2).
    assert vol.data.shape == (4, 3, 2)
    for i, j, k in [(0, 0, 0), (3, 0, 0), (1, 2, 0), (2, 1, 1)]:
        assert vol.data[i, j, k] == i + 4 * j + 12 * k


def test_nrrd_affine_matches_simpleitk(tmp_path: Path) -> None:
    sitk = pytest.importorskip("SimpleITK")
    data = _nrrd("left-posterior-superior", "(0.6,0.8,0) (-1.6,1.2,0) (0,0,2.5)", "(1,-2,3)")
    path = tmp_path / "a.nrrd"
    path.write_bytes(data)
    img = sitk.ReadImage(str(path))
    direction = np.array(img.GetDirection()).reshape(3, 3)  # LPS, columns = axes
    lps = np.eye(4)
    lps[:3, :3] = direction @ np.diag(img.GetSpacing())
    lps[:3, 3] = img.GetOrigin()
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    np.testing.assert_allclose(read_volume(data, "a.nrrd").affine, ras, atol=1e-9)
    # And the same voxel values in the same order (SimpleITK arrays are [k, j, i]).
    np.testing.assert_array_equal(
        read_volume(data).data, sitk.GetArrayFromImage(img).transpose(2, 1, 0)
    )


def test_write_nrrd_round_trips_through_simpleitk(tmp_path: Path) -> None:
    """The sample generator's writer: SimpleITK reads back the affine it was given."""
    sitk = pytest.importorskip("SimpleITK")
    aff = np.array([[0.0, -2, 0, 10], [1.5, 0, 0, -5], [0, 0, 3, 7], [0, 0, 0, 1]])
    arr = np.arange(60, dtype=np.int16).reshape(5, 4, 3)
    path = tmp_path / "w.nrrd"
    path.write_bytes(write_nrrd(arr, aff))
    img = sitk.ReadImage(str(path))
    point = np.array(img.TransformIndexToPhysicalPoint((1, 2, 1)))  # LPS
    np.testing.assert_allclose(point * [-1, -1, 1], (aff @ [1, 2, 1, 1])[:3])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img).transpose(2, 1, 0), arr)


@pytest.mark.parametrize("gz", [False, True])
def test_nifti_affine_and_voxels_are_nibabels(gz: bool) -> None:
    nib = pytest.importorskip("nibabel")
    aff = np.array([[0.0, -0.9, 0.1, 5], [0.8, 0, 0, -7], [0, 0.2, 1.5, 2], [0, 0, 0, 1]])
    arr = np.arange(24, dtype=np.float32).reshape(4, 3, 2)
    raw = nib.Nifti1Image(arr, aff).to_bytes()
    data = gzip.compress(raw) if gz else raw
    vol = read_volume(data, "x.nii.gz" if gz else "x.nii")
    ref = nib.Nifti1Image.from_bytes(raw)
    np.testing.assert_allclose(vol.affine, ref.affine)
    np.testing.assert_array_equal(vol.data, np.asarray(ref.dataobj))


def test_dicom_geometry_matches_simpleitk() -> None:
    sitk = pytest.importorskip("SimpleITK")
    pydicom_data = pytest.importorskip("pydicom.data")
    path = pydicom_data.get_testdata_file("CT_small.dcm")
    vol = read_volume(Path(path).read_bytes(), "CT_small.dcm")
    img = sitk.ReadImage(path)
    assert vol.data.shape == img.GetSize()  # (cols, rows, frames)
    np.testing.assert_array_equal(vol.data[..., 0].T, sitk.GetArrayFromImage(img)[0])
    direction = np.array(img.GetDirection()).reshape(3, 3)
    lps = direction @ np.diag(img.GetSpacing())
    flip = np.diag([-1.0, -1.0, 1.0])
    # In-plane axes and origin (a single slice's k step is a convention: not compared).
    np.testing.assert_allclose(vol.affine[:3, :2], (flip @ lps)[:, :2], atol=1e-6)
    np.testing.assert_allclose(vol.affine[:3, 3], flip @ np.array(img.GetOrigin()), atol=1e-6)


def test_zip_holding_one_nrrd_reads_as_the_nrrd() -> None:
    data = _nrrd("left-posterior-superior", "(1,0,0) (0,1,0) (0,0,1)", "(0,0,0)")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("Segmentation.seg.nrrd", data)
    vol = read_volume(buf.getvalue(), "x.zip")
    np.testing.assert_array_equal(vol.data, read_volume(data).data)


def test_unreadable_volume_names_the_asset() -> None:
    with pytest.raises(DecodeError, match=r"asset 'ct\.nrrd' \(#3\).*not an NRRD"):
        read_volume(b"hello", "ct.bin", label="asset 'ct.nrrd' (#3)")
    with pytest.raises(DecodeError, match=r"asset 'x' \(#0\).*NRRD space 'scanner-xyz'"):
        read_volume(
            _nrrd("scanner-xyz", "(1,0,0) (0,1,0) (0,0,1)", "(0,0,0)"), label="asset 'x' (#0)"
        )


def _dicom(path: Path, frames: int, position: list[float], series: str = "") -> None:
    """An oblique 16-bit MR DICOM of ``frames`` frames of 4×5 pixels, written by pydicom."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, generate_uid()
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = series or generate_uid()
    ds.Modality, ds.PatientName = "MR", "x"
    ds.Rows, ds.Columns, ds.NumberOfFrames = 4, 5, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    ds.ImagePositionPatient = position
    ds.PixelSpacing = [0.5, 0.7]
    ds.SpacingBetweenSlices = ds.SliceThickness = 2.0
    start = int(abs(position[0]) * 10)
    ds.PixelData = np.arange(start, start + 20 * frames, dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def _sitk_ras(img: Any) -> np.ndarray:
    lps = np.eye(4)
    lps[:3, :3] = np.array(img.GetDirection()).reshape(3, 3) @ np.diag(img.GetSpacing())
    lps[:3, 3] = img.GetOrigin()
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def test_multiframe_dicom_geometry_and_frames_match_simpleitk(tmp_path: Path) -> None:
    """A 3-frame oblique DICOM written with pydicom; SimpleITK (GDCM) is the reference
    for the frame order and the k step (the cross product of IOP's directions times
    SpacingBetweenSlices)."""
    sitk = pytest.importorskip("SimpleITK")
    pytest.importorskip("pydicom")
    path = tmp_path / "mf.dcm"
    _dicom(path, 3, [10, -20, 30])
    vol = read_volume(path.read_bytes(), "mf.dcm")
    img = sitk.ReadImage(str(path))
    np.testing.assert_array_equal(vol.data, sitk.GetArrayFromImage(img).transpose(2, 1, 0))
    np.testing.assert_allclose(vol.affine, _sitk_ras(img), atol=1e-9)


def test_zipped_dicom_series_matches_simpleitk_series_reader(tmp_path: Path) -> None:
    """Three single-slice files, stored out of order; SimpleITK's series reader (GDCM
    sorts by position) is the reference for order, voxels and affine."""
    sitk = pytest.importorskip("SimpleITK")
    pytest.importorskip("pydicom")
    folder = tmp_path / "series"
    folder.mkdir()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, x in enumerate([12.0, 8.0, 10.0]):  # the slice normal is −x (LPS)
            _dicom(folder / f"s{n}.dcm", 1, [x, -20, 30], series="1.2.3.4.5")
            zf.write(folder / f"s{n}.dcm", f"s{n}.dcm")
    vol = read_volume(buf.getvalue(), "series.zip")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    img = reader.Execute()
    np.testing.assert_array_equal(vol.data, sitk.GetArrayFromImage(img).transpose(2, 1, 0))
    np.testing.assert_allclose(vol.affine, _sitk_ras(img), atol=1e-6)
