"""``AngoVolumeDataset``: medical volumes (NRRD/NIfTI/DICOM) with voxel-brush labels.

One sample per volume asset, a dict that MONAI dictionary transforms and TorchIO take
without a loader step (see :class:`AngoVolumeDataset`). Reading: ``assets.volume_io``;
label decoding and grid checks: ``targets.segnrrd``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

from ..assets.expiry import expiry_report
from ..assets.fetch import AssetStore
from ..assets.layout import brush_stage_key, shared_assets
from ..assets.volume_io import VOLUME_EXTENSIONS, Volume, medical_content_key, read_volume
from ..errors import AngoTorchWarning, where
from ..export.load import AngoExport, load_export
from ..export.ontology import Ontology, load_ontology
from ..records import BoundingBox3D
from ..targets.classes import map_classes
from ..targets.segnrrd import LabelStats, Overlap, decode_labels, fit_to_grid
from ..targets.selection import DatasetReport

__all__ = ["VOLUME_EXTENSIONS", "AngoVolumeDataset", "to_torchio_subject"]

NOT_A_VOLUME = "not a volume asset"
UNLISTED_BOX = "3D box of a class not selected"
_FLIP_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


class AngoVolumeDataset(torch.utils.data.Dataset[dict[str, Any]]):
    """Volume assets of an Ango export with their voxel-brush labels and 3D boxes.

    Args:
        export: An :class:`~ango_torch.export.load.AngoExport`, a path/URL, or raw assets.
        root: Where the volumes (and ``.seg.nrrd`` files) already are (as ``AngoDataset``).
        ontology: The project's categorySchema; its ``medical-brush: true`` classes give
            the voxel values' classes (value = schemaId). Without one, label values are
            matched to ``classes`` by Slicer segment name only.
        classes: Class titles, in label order (label ``k`` = ``classes[k - 1]``... see
            :attr:`classes`, which includes ``"__background__"`` at 0). Default: the
            ontology's medical-brush classes, then the titles of 3D boxes.
        stage: Use this stage's snapshot (name or id) instead of the exported answer.
        transforms: Called with the sample dict; returns the new sample.
        orientation: World frame of ``"affine"``: ``"RAS"`` (MONAI's, TorchIO's, NIfTI's)
            or ``"LPS"`` (DICOM's, ITK's). Voxel order is the file's either way.
        overlap: Voxels of two classes: ``"last"`` (later segment wins) or ``"ignore"``
            (255).
        label_format: ``"index"``: int64 ``[1, I, J, K]``; ``"onehot"``: int64
            ``[len(classes), I, J, K]`` 0/1 channels (overlaps keep both classes).
        resample: Label grids that differ from the image's are resampled (nearest
            neighbour) instead of raising :class:`~ango_torch.errors.GridMismatchError`.
        tolerance: mm within which two grids' affines count as equal.
        metatensor: Return MONAI ``MetaTensor``s (default: when MONAI is importable).
        storage_options, cache_dir, on_error, allow_local_urls, follow_symlinks: as for
            :class:`~ango_torch.AngoDataset`.

    Each sample is a dict: ``"image"`` float32 ``[C, I, J, K]``, ``"label"`` int64
    ``[1, I, J, K]`` (0 background, ``k`` = ``classes[k]``; all 0 without a
    ``medicalBrushDataUrl``), ``"affine"`` float64 ``[4, 4]`` voxel → world,
    ``"spacing"`` float64 ``[3]`` (mm), ``"asset_id"``, ``"boxes3d"`` float32 ``[N, 6]``
    (``x1, y1, z1, x2, y2, z2`` voxel indices along ``I, J, K``), ``"labels3d"`` int64
    ``[N]`` and ``"classes"`` (the class list).

    Attributes:
        report: assets left out (not volumes, lacking the stage) and 3D boxes of classes
            not selected (``dropped_objects``).
        label_stats: voxels left at 0 because their value has no class (``unlisted``) or
            their class is not selected (``excluded``), and voxels two classes claim
            (``overlap``); counted in this process per load.
    """

    def __init__(
        self,
        export: AngoExport | str | os.PathLike[str] | Sequence[Mapping[str, Any]],
        *,
        root: str | os.PathLike[str] | None = None,
        ontology: Ontology | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        classes: Sequence[str] | Mapping[str, str | Sequence[str]] | None = None,
        stage: str | None = None,
        transforms: Callable[[dict[str, Any]], Any] | None = None,
        orientation: Literal["RAS", "LPS"] = "RAS",
        overlap: Overlap = "last",
        label_format: Literal["index", "onehot"] = "index",
        resample: bool = False,
        tolerance: float = 1e-3,
        metatensor: bool | None = None,
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        on_error: Literal["raise", "skip"] = "raise",
        allow_local_urls: bool = False,
        follow_symlinks: bool = False,
    ) -> None:
        if orientation not in ("RAS", "LPS"):
            raise ValueError(f"orientation must be 'RAS' or 'LPS', got {orientation!r}")
        if overlap not in ("last", "ignore"):
            raise ValueError(f"overlap must be 'last' or 'ignore', got {overlap!r}")
        if label_format not in ("index", "onehot"):
            raise ValueError(f"label_format must be 'index' or 'onehot', got {label_format!r}")
        self.export = load_export(
            export, storage_options=storage_options, cache_dir=cache_dir, on_error=on_error
        )
        self.ontology = (
            None if ontology is None else load_ontology(ontology, storage_options=storage_options)
        )
        self.store = AssetStore(
            root=root,
            storage_options=storage_options,
            cache_dir=cache_dir,
            allow_local_urls=allow_local_urls,
            follow_symlinks=follow_symlinks,
        )
        self.stage, self.transforms, self.orientation = stage, transforms, orientation
        self.overlap: Overlap = overlap
        self.label_format = label_format
        self.resample, self.tolerance = resample, float(tolerance)
        if metatensor is None:
            try:
                import monai.data  # noqa: F401
            except ImportError:
                metatensor = False
            else:
                metatensor = True
        self.metatensor = metatensor
        self.report = DatasetReport()
        self.label_stats = LabelStats()
        idx = self.export.index
        self._shared = shared_assets(idx)
        for s in self.export.skipped:
            self.report.skipped_assets.append((s.index, s.asset, f"unreadable: {s.reason}"))
        rows = self.export.snapshot_rows(stage)
        samples: list[tuple[int, int]] = []
        for a, s in enumerate(rows.tolist()):
            name = idx.string(idx.asset_external_id[a]) or ""
            if s < 0:
                self.report.skipped_assets.append((a, name, f"no stage: {stage!r}"))
            elif idx.snap_medical_brush[s] >= 0 or name.lower().endswith(VOLUME_EXTENSIONS):
                samples.append((a, s))
            else:
                self.report.skipped_assets.append((a, name, NOT_A_VOLUME))
        self._samples = samples
        self._boxes = {a: self._boxes3d(a, s) for a, s in samples}
        titles, self._label_of = self._resolve_classes(classes)
        self.classes: list[str] = ["__background__", *titles]
        """Label ``k`` is ``classes[k]``; 0 is the background."""
        self._classify = self._class_table()
        for a, _ in samples:
            for title, _box in self._boxes[a]:
                if title not in self._label_of:
                    self.report.dropped_objects[UNLISTED_BOX] += 1
        if root is None:  # the export's signed URLs: warn before they fail mid-epoch
            urls = [idx.string(idx.asset_url[a]) for a, _ in samples]
            urls += [idx.string(idx.snap_medical_brush[s]) for _, s in samples]
            message = expiry_report([u for u in urls if u]).message()
            if message:
                warnings.warn(message, AngoTorchWarning, stacklevel=2)
        if self.report.dropped_objects:
            warnings.warn(
                f"AngoVolumeDataset({self.export.source!r}): {self.report.summary()}",
                AngoTorchWarning,
                stacklevel=2,
            )

    # -- construction ---------------------------------------------------------------------
    def _boxes3d(self, a: int, s: int) -> list[tuple[str, BoundingBox3D]]:
        idx = self.export.index
        start, end = int(idx.snap_obj_start[s]), int(idx.snap_obj_end[s])
        if start == end:
            return []
        extras, first = idx.object_extras(a), idx.first_object(a)
        out = []
        for o in range(start, end):
            g = idx.geometry(o, extras[o - first][4])
            if isinstance(g, BoundingBox3D):
                out.append((idx.titles[int(idx.obj_title[o])], g))
        return out

    def _resolve_classes(
        self, classes: Sequence[str] | Mapping[str, str | Sequence[str]] | None
    ) -> tuple[list[str], dict[str, int]]:
        """``(class titles in label order, {source title: label})``.

        A mapping merges and renames (:func:`~ango_torch.targets.classes.map_classes`,
        as for images): sources are titles or schemaIds of the ontology's classes."""
        if isinstance(classes, Mapping):
            known = self._class_titles(None)
            ids = {}
            if self.ontology is not None:
                ids = {t.schema_id: t.title for t in self.ontology.tools if t.schema_id}
                known += [t.title for t in self.ontology.tools]
            titles, sources = map_classes(
                classes, titles=list(dict.fromkeys(known)), schema_ids=ids
            )
            label = {t: k for k, t in enumerate(titles, start=1)}
            return titles, {old: label[new] for old, new in sources.items()}
        titles = self._class_titles(classes)
        return titles, {t: k for k, t in enumerate(titles, start=1)}

    def _class_titles(self, classes: Sequence[str] | None) -> list[str]:
        if classes is not None:
            return list(dict.fromkeys(classes))
        titles: list[str] = []
        if self.ontology is not None:
            titles = [t.title for t in self.ontology.tools if t.medical_brush]
        for boxes in self._boxes.values():
            titles += [t for t, _ in boxes]
        return list(dict.fromkeys(titles))

    def _class_table(self) -> dict[str, int | str | None]:
        """schemaId or segment name → class index, or → title of a class not selected."""
        table: dict[str, int | str | None] = {}
        index = self._label_of
        if self.ontology is not None:
            for t in self.ontology.tools:
                if t.medical_brush and t.schema_id:
                    table[t.schema_id] = index.get(t.title, t.title)
        for title, k in index.items():
            table.setdefault(title, k)
        return table

    # -- samples --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._samples)

    def asset_index(self, i: int) -> int:
        """The export index of sample ``i``'s asset."""
        return self._samples[i][0]

    def _read_image(self, a: int) -> Volume:
        """Fetch and decode asset ``a``'s image volume (no transforms)."""
        idx = self.export.index
        name = idx.string(idx.asset_external_id[a]) or ""
        label = where(asset=name, index=a)
        data = self.store.fetch(
            asset_id=idx.string(idx.asset_asset_id[a]) or "",
            external_id=name,
            url=idx.string(idx.asset_url[a]),
            shared=bool(self._shared[a]),
            label=label,
        )
        return read_volume(data, name, label=label)

    def _read_segmentation(self, a: int, s: int, url: str) -> Volume:
        """Fetch and decode snapshot ``s``'s ``.seg.nrrd`` (``url``) of asset ``a``."""
        idx = self.export.index
        name = idx.string(idx.asset_external_id[a]) or ""
        seg_label = where(asset=name, index=a, field="medicalBrushDataUrl")
        seg_bytes = self.store.fetch(
            asset_id=idx.string(idx.asset_asset_id[a]) or "",
            external_id=name,
            url=url,
            kind="brush",
            stage_key=brush_stage_key(idx, s),
            content_key=medical_content_key(idx, s),
            label=seg_label,
        )
        return read_volume(seg_bytes, "label.seg.nrrd", label=seg_label)

    def read(self, i: int) -> tuple[Volume, npt.NDArray[np.int64]]:
        """Sample ``i``'s image volume (RAS affine) and its label on the image grid,
        ``[I, J, K]`` (or ``[len(classes), I, J, K]`` one-hot); no transforms."""
        idx = self.export.index
        a, s = self._samples[i]
        name = idx.string(idx.asset_external_id[a]) or ""
        image = self._read_image(a)
        grid = image.data.shape[-3:] if image.data.ndim == 3 else _spatial(image)
        onehot = len(self.classes) if self.label_format == "onehot" else None
        url = idx.string(idx.snap_medical_brush[s])
        if url is None:
            shape = (onehot, *grid) if onehot else grid
            labels = np.zeros(shape, np.int64)
            if onehot:
                labels[0] = 1
            return image, labels
        seg = self._read_segmentation(a, s, url)
        seg_label = where(asset=name, index=a, field="medicalBrushDataUrl")
        labels = decode_labels(
            seg.header,
            seg.data,
            self._classify,
            overlap=self.overlap,
            onehot=onehot,
            stats=self.label_stats,
        )
        labels = fit_to_grid(
            labels,
            seg.affine,
            grid,
            image.affine,
            resample=self.resample,
            tol=self.tolerance,
            label=seg_label,
        )
        return image, labels

    def __getitem__(self, i: int) -> dict[str, Any]:
        a, _ = self._samples[i]
        image, labels = self.read(i)
        arr = image.data
        if arr.ndim == 3:
            arr = arr[None]
        elif image.fmt == "nifti":  # [I, J, K, C]
            arr = np.moveaxis(arr, -1, 0)
        # The file's memory order is kept (pynrrd and nibabel give Fortran order): a
        # C-order copy would cost a strided pass over the volume.
        img = torch.from_numpy(arr.astype(np.float32, order="K"))
        lab = torch.from_numpy(labels if labels.ndim == 4 else labels[None])
        affine = image.affine if self.orientation == "RAS" else _FLIP_LPS @ image.affine
        aff = torch.from_numpy(np.ascontiguousarray(affine))
        idx = self.export.index
        boxes = [(t, b) for t, b in self._boxes[a] if t in self._label_of]
        sample: dict[str, Any] = {
            "image": img,
            "label": lab,
            "affine": aff,
            "spacing": torch.tensor(image.spacing, dtype=torch.float64),
            "asset_id": idx.string(idx.asset_asset_id[a]) or "",
            "boxes3d": torch.tensor([b.xyzxyz() for _, b in boxes], dtype=torch.float32).reshape(
                -1, 6
            ),
            "labels3d": torch.tensor([self._label_of[t] for t, _ in boxes], dtype=torch.int64),
            "classes": list(self.classes),
        }
        if self.metatensor:
            from monai.data.meta_tensor import MetaTensor

            meta = {
                "filename_or_obj": idx.string(idx.asset_external_id[a]) or "",
                "space": self.orientation,
            }
            sample["image"] = MetaTensor(img, affine=aff.clone(), meta=dict(meta))
            sample["label"] = MetaTensor(lab, affine=aff.clone(), meta=dict(meta))
        if self.transforms is not None:
            return self.transforms(sample)  # type: ignore[no-any-return]
        return sample


def _spatial(image: Volume) -> tuple[int, int, int]:
    shape = image.data.shape
    s = shape[:3] if image.fmt == "nifti" else shape[1:]
    return (int(s[0]), int(s[1]), int(s[2]))


def to_torchio_subject(sample: Mapping[str, Any]) -> Any:
    """A TorchIO ``Subject`` of a sample: ``image`` (ScalarImage), ``label`` (LabelMap,
    index format) with the image ``MetaTensor``'s affine (after any MONAI transforms),
    else the sample's ``"affine"`` (TorchIO wants RAS), plus ``asset_id``,
    ``boxes3d`` and ``labels3d`` as plain entries."""
    try:
        import torchio as tio
    except ImportError as exc:
        from ..errors import MissingDependencyError

        raise MissingDependencyError(f"to_torchio_subject needs torchio ({exc})") from exc
    source = getattr(sample["image"], "affine", None)  # a MetaTensor's, after transforms
    if source is None:
        source = sample["affine"]
    affine = np.asarray(torch.as_tensor(source).cpu(), np.float64)
    image = torch.as_tensor(sample["image"]).as_subclass(torch.Tensor)
    label = torch.as_tensor(sample["label"]).as_subclass(torch.Tensor)
    return tio.Subject(
        image=tio.ScalarImage(tensor=image, affine=affine),  # type: ignore[no-untyped-call]
        label=tio.LabelMap(tensor=label, affine=affine),  # type: ignore[no-untyped-call]
        asset_id=sample["asset_id"],
        boxes3d=sample["boxes3d"],
        labels3d=sample["labels3d"],
    )
