"""Medical volumes from bytes: NRRD (and ``.seg.nrrd``), NIfTI, DICOM (the ``medical`` extra).

Readers (chosen by the file's magic bytes, then its name):

- NRRD: ``pynrrd`` (it keeps Slicer's ``SegmentN_*`` header fields, which SimpleITK and
  MONAI's reader do not hand back for layered files); also a ``.zip`` holding one
  ``.nrrd`` (older medical-brush exports).
- NIfTI (``.nii``, ``.nii.gz``): ``nibabel``.
- DICOM (single- or multi-frame, one file; or a ``.zip`` of a series, one slice per
  file): ``pydicom``.

Every reader returns a :class:`Volume`: the array indexed ``[I, J, K]`` (or ``[L, I, J, K]``
for a layered NRRD / ``[I, J, K, C]`` NIfTI, see ``Volume.data``) and the 4×4 voxel → world
affine in RAS (x = left → **R**ight, y = posterior → **A**nterior, z = inferior →
**S**uperior; NRRD ``space`` LPS/LAS and DICOM's LPS are converted by negating the
world axes that differ).
"""

from __future__ import annotations

import gzip
import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..errors import DecodeError, MissingDependencyError
from ..records import VOLUME_EXTENSIONS
from .layout import content_key

if TYPE_CHECKING:
    from ..export.index import ExportIndex

__all__ = [
    "VOLUME_EXTENSIONS",
    "Volume",
    "medical_content_key",
    "nrrd_affine",
    "read_volume",
    "space_flip",
    "write_nrrd",
]


_SPACES = {  # NRRD ``space`` → the world axes to negate to reach RAS
    "right-anterior-superior": (1.0, 1.0, 1.0),
    "ras": (1.0, 1.0, 1.0),
    "left-posterior-superior": (-1.0, -1.0, 1.0),
    "lps": (-1.0, -1.0, 1.0),
    "left-anterior-superior": (-1.0, 1.0, 1.0),
    "las": (-1.0, 1.0, 1.0),
}


@dataclass(frozen=True)
class Volume:
    """A decoded volume.

    Attributes:
        data: The voxels, ``[I, J, K]`` (index ``i`` runs along the file's fastest axis),
            ``[L, I, J, K]`` for a layered (4D, ``kinds: list``) NRRD, or
            ``[I, J, K, C]`` for a 4D NIfTI; the file's dtype.
        affine: float64 ``[4, 4]`` voxel index ``(i, j, k, 1)`` → RAS world (mm).
        header: The NRRD header (``SegmentN_*`` fields included); ``{}`` for others.
        fmt: ``"nrrd"``, ``"nifti"`` or ``"dicom"``.
    """

    data: npt.NDArray[Any]
    affine: npt.NDArray[np.float64]
    header: Mapping[str, Any] = field(default_factory=dict)
    fmt: str = "nrrd"

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along ``i, j, k`` (column norms of the affine)."""
        s = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(s[0]), float(s[1]), float(s[2]))


def medical_content_key(index: ExportIndex, row: int) -> str:
    """What names snapshot row ``row``'s ``.seg.nrrd`` in the cache and under ``root``
    (``_brush/<assetId>.<key>.png``, the brush layout; the bytes are the NRRD's): the
    URL without its query, ``"medical"``, and the brush version (task id and update
    time, or stage and completion time)."""
    url = index.string(index.snap_medical_brush[row])
    return content_key(url, "medical", *index.brush_version(row))


def _need(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"reading medical volumes needs {module} ({exc}); pip install 'ango_torch[medical]'"
        ) from exc


def space_flip(space: str | None, label: str = "") -> npt.NDArray[np.float64]:
    """The diagonal that takes NRRD ``space`` world coordinates to RAS.

    Raises:
        DecodeError: a space other than RAS/LPS/LAS (e.g. scanner-xyz).
    """
    if space is None:
        return np.ones(3)
    key = space.strip().lower()
    if key not in _SPACES:
        raise DecodeError(f"{label}: NRRD space {space!r} is not RAS, LPS or LAS")
    return np.array(_SPACES[key])


def nrrd_affine(header: Mapping[str, Any], label: str = "") -> npt.NDArray[np.float64]:
    """The RAS voxel → world affine of an NRRD header (the spatial axes only).

    ``space directions`` row ``n`` is axis ``n``'s step vector in ``space``; a list
    axis (``none``, read as NaNs) is skipped. Without ``space directions`` the affine
    is the identity (``spacings`` scale it when given).
    """
    dirs = header.get("space directions")
    origin = header.get("space origin")
    flip = space_flip(header.get("space"), label)
    aff = np.eye(4)
    if dirs is not None:
        d = np.asarray(dirs, np.float64)
        rows = [r for r in d if np.isfinite(r).all()]
        if len(rows) != 3 or d.shape[1] != 3:
            raise DecodeError(f"{label}: NRRD 'space directions' is not three 3-vectors")
        aff[:3, :3] = np.stack(rows, axis=1)
    elif header.get("spacings") is not None:
        sp = [float(s) for s in header["spacings"] if np.isfinite(s)][-3:]
        aff[:3, :3] = np.diag(sp)
    if origin is not None:
        aff[:3, 3] = np.asarray(origin, np.float64)
    aff[:3] *= flip[:, None]
    return aff


def _is_gzip(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b"


def read_volume(data: bytes, name: str = "", *, label: str = "") -> Volume:
    """Decode one volume file.

    Args:
        data: The file's bytes.
        name: Its file name (decides between NIfTI and others when the magic does not).
        label: Who it is, for error messages (``errors.where(...)``).

    Raises:
        DecodeError: not a readable NRRD/NIfTI/DICOM/zip, or a geometry it cannot state.
        MissingDependencyError: the reader's package is missing (``ango_torch[medical]``).
    """
    lower = name.lower()
    try:
        if data[:4] == b"NRRD":
            return _read_nrrd(data, label)
        if data[:2] == b"PK":
            return _read_zip(data, label)
        if data[128:132] == b"DICM" or lower.endswith((".dcm", ".dicom")):
            return _read_dicom(data, label)
        raw = gzip.decompress(data) if _is_gzip(data) else data
        if raw[344:348] in (b"n+1\x00", b"ni1\x00") or lower.endswith((".nii", ".nii.gz")):
            return _read_nifti(raw, label)
    except (DecodeError, MissingDependencyError):
        raise
    except Exception as exc:  # the readers' own errors: a broken file
        raise DecodeError(f"{label}: cannot read {name or 'the volume'}: {exc}") from exc
    raise DecodeError(f"{label}: {name or 'the file'} is not an NRRD, NIfTI, DICOM or zip")


def _read_nrrd(data: bytes, label: str) -> Volume:
    nrrd = _need("nrrd")
    fh = io.BytesIO(data)
    header = nrrd.read_header(fh)
    arr = nrrd.read_data(header, fh, index_order="F")
    if arr.ndim not in (3, 4):
        raise DecodeError(f"{label}: NRRD has {arr.ndim} dimensions, expected 3 or 4")
    if arr.ndim == 4:
        kinds = [str(k).lower() for k in header.get("kinds", [])]
        if kinds and kinds[0] not in ("list", "vector", "none", "complex", "rgb-color"):
            raise DecodeError(f"{label}: a 4D NRRD must have its list axis first")
    return Volume(np.asarray(arr), nrrd_affine(header, label), dict(header), "nrrd")


def _read_zip(data: bytes, label: str) -> Volume:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = [n for n in zf.namelist() if n.lower().endswith(".nrrd")]
        if len(names) == 1:
            return _read_nrrd(zf.read(names[0]), label)
        files = [n for n in zf.namelist() if not n.endswith("/")]
        if not names and files:  # a DICOM series: one slice per file
            return _read_dicom_series([zf.read(n) for n in files], label)
        raise DecodeError(f"{label}: the zip holds {len(names)} .nrrd files, expected 1")


def _read_dicom_series(files: list[bytes], label: str) -> Volume:
    """Single-frame DICOM slices → one volume, ordered along the slice normal by
    ImagePositionPatient; the k step is the distance between the first two slices."""
    pydicom = _need("pydicom")
    slices = []
    for data in files:
        ds = pydicom.dcmread(io.BytesIO(data))
        if int(getattr(ds, "NumberOfFrames", 1) or 1) != 1:
            raise DecodeError(f"{label}: a series file holds several frames")
        slices.append(ds)
    iop, _, _ = _dicom_geometry(slices[0])
    if iop is None or any(getattr(d, "ImagePositionPatient", None) is None for d in slices):
        raise DecodeError(f"{label}: a DICOM series needs ImageOrientation/PositionPatient")
    normal = np.cross(np.asarray(iop[:3], float), np.asarray(iop[3:], float))
    slices.sort(key=lambda d: float(np.dot(normal, np.asarray(d.ImagePositionPatient, float))))
    vols = [_read_dicom_one(d, label) for d in slices]
    if len({v.data.shape for v in vols}) != 1:
        raise DecodeError(f"{label}: the series' slices differ in size")
    arr = np.concatenate([v.data for v in vols], axis=2)
    aff = vols[0].affine.copy()
    if len(vols) > 1:
        aff[:3, 2] = vols[1].affine[:3, 3] - vols[0].affine[:3, 3]
    return Volume(arr, aff, {}, "dicom")


def _read_nifti(raw: bytes, label: str) -> Volume:
    nib = _need("nibabel")
    img = nib.Nifti1Image.from_bytes(raw)
    arr = np.asanyarray(img.dataobj)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim not in (3, 4):
        raise DecodeError(f"{label}: NIfTI has {arr.ndim} dimensions, expected 3 or 4")
    return Volume(np.asarray(arr), np.asarray(img.affine, np.float64), {}, "nifti")


def _read_dicom(data: bytes, label: str) -> Volume:
    pydicom = _need("pydicom")
    return _read_dicom_one(pydicom.dcmread(io.BytesIO(data)), label)


def _read_dicom_one(ds: Any, label: str) -> Volume:
    px = np.asarray(ds.pixel_array)
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:  # stored values → e.g. HU
        px = np.asarray(_need("pydicom.pixels").apply_modality_lut(px, ds))
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if px.ndim == 2:
        px = px[None]
    if px.ndim != 3 or px.shape[0] != frames:
        raise DecodeError(f"{label}: DICOM pixels {px.shape} are not (frames, rows, cols)")
    arr = np.ascontiguousarray(px.transpose(2, 1, 0))  # (cols=i, rows=j, frame=k)
    return Volume(arr, _dicom_affine(ds, frames), {}, "dicom")


def _dicom_geometry(ds: Any) -> tuple[Any, Any, Any]:
    """(ImageOrientationPatient, ImagePositionPatient, PixelSpacing) of frame 0."""
    iop, ipp, ps = (
        getattr(ds, k, None)
        for k in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing")
    )
    for seq in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        groups = getattr(ds, seq, None)
        if not groups:
            continue
        g = groups[0]
        if iop is None and "PlaneOrientationSequence" in g:
            iop = g.PlaneOrientationSequence[0].ImageOrientationPatient
        if ipp is None and "PlanePositionSequence" in g:
            ipp = g.PlanePositionSequence[0].ImagePositionPatient
        if ps is None and "PixelMeasuresSequence" in g:
            ps = g.PixelMeasuresSequence[0].PixelSpacing
    return iop, ipp, ps


def _dicom_affine(ds: Any, frames: int) -> npt.NDArray[np.float64]:
    """LPS patient geometry → RAS affine; the identity where the file states none.

    Column ``i`` steps along IOP's row direction by the column spacing, ``j`` along its
    column direction by the row spacing, ``k`` (frames) along their cross product by
    ``SpacingBetweenSlices`` (else ``SliceThickness``, else 1).
    """
    iop, ipp, ps = _dicom_geometry(ds)
    aff = np.eye(4)
    if iop is None or ps is None:
        return aff
    row = np.asarray(iop[:3], np.float64)
    col = np.asarray(iop[3:], np.float64)
    step = float(getattr(ds, "SpacingBetweenSlices", 0) or getattr(ds, "SliceThickness", 0) or 1)
    aff[:3, 0] = row * float(ps[1])
    aff[:3, 1] = col * float(ps[0])
    aff[:3, 2] = np.cross(row, col) * step
    if ipp is not None:
        aff[:3, 3] = np.asarray(ipp, np.float64)
    aff[:2] *= -1.0  # LPS → RAS
    return aff


def write_nrrd(
    data: npt.NDArray[Any],
    affine: npt.NDArray[np.float64],
    *,
    space: str = "left-posterior-superior",
    fields: Mapping[str, str] | None = None,
    encoding: str = "gzip",
) -> bytes:
    """An NRRD file's bytes (pynrrd), the inverse of :func:`read_volume` for NRRD.

    Args:
        data: ``[I, J, K]``, or ``[L, I, J, K]`` (a layered file: ``kinds: list`` first).
        affine: RAS voxel → world; written in ``space`` (``space directions``/``origin``).
        space: The NRRD ``space`` to write in (RAS, LPS or LAS, long or short name).
        fields: Extra key/value fields (Slicer's ``SegmentN_*``), written as strings.
        encoding: ``"gzip"`` or ``"raw"``.
    """
    nrrd = _need("nrrd")
    flip = space_flip(space)
    world = np.asarray(affine, np.float64)[:3] * flip[:, None]  # RAS → space
    dirs = world[:, :3].T  # row n: axis n's step
    header: dict[str, Any] = {"space": space, "encoding": encoding, "space origin": world[:, 3]}
    if data.ndim == 4:
        header["kinds"] = ["list", "domain", "domain", "domain"]
        header["space directions"] = np.vstack([np.full(3, np.nan), dirs])
    else:
        header["kinds"] = ["domain", "domain", "domain"]
        header["space directions"] = dirs
    custom = {}
    for k, v in (fields or {}).items():
        header[k] = str(v)
        custom[k] = "string"
    buf = io.BytesIO()
    nrrd.write(buf, np.asarray(data), header, custom_field_map=custom, index_order="F")
    head, sep, body = buf.getvalue().partition(b"\n\n")
    lines = [ln for ln in head.split(b"\n") if not ln.startswith(b"#")]  # no timestamp
    return b"\n".join(lines) + sep + body
