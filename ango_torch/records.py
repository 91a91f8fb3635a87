"""Typed, read-only records of an Ango export.

The parser (:mod:`ango_torch.export._parse`) turns raw JSON into these; nothing after it
sees a raw dict.  Coordinates are float pixels, origin top-left, as in the export.
Point arrays are read-only ``float32`` numpy arrays of shape ``[N, 2]`` holding
``(x, y)`` pairs.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = [
    "VOLUME_EXTENSIONS",
    "Asset",
    "BoundingBox",
    "BoundingBox3D",
    "Classification",
    "Geometry",
    "Ner",
    "ObjectMeta",
    "OtherGeometry",
    "Pdf",
    "Point",
    "Points",
    "Polygon",
    "Polyline",
    "Relation",
    "RotatedBox",
    "Segmentation",
    "Snapshot",
    "Task",
    "ToolKind",
    "ToolObject",
    "Zone",
]

Points: TypeAlias = npt.NDArray[np.float32]
"""``float32 [N, 2]`` array of ``(x, y)`` vertices, read-only."""


class ToolKind(enum.IntEnum):
    """The tool type of an object; the value is stored in the index (uint8)."""

    BOUNDING_BOX = 0
    ROTATED_BOUNDING_BOX = 1
    POLYGON = 2
    POLYLINE = 3
    POINT = 4
    SEGMENTATION = 5
    NER = 6
    PDF = 7
    OTHER = 8

    @property
    def key(self) -> str:
        """The export's geometry key, e.g. ``"bounding-box"`` (``"other"`` for OTHER)."""
        return _KIND_KEYS[self]

    @property
    def has_area(self) -> bool:
        """Whether objects of this kind are area shapes (instances with a mask)."""
        return self in (
            ToolKind.BOUNDING_BOX,
            ToolKind.ROTATED_BOUNDING_BOX,
            ToolKind.POLYGON,
            ToolKind.SEGMENTATION,
        )

    @classmethod
    def from_key(cls, key: str) -> ToolKind:
        """The kind for a geometry key; unknown keys give :attr:`OTHER`."""
        return _KEY_KINDS.get(key, cls.OTHER)


_KIND_KEYS = {
    ToolKind.BOUNDING_BOX: "bounding-box",
    ToolKind.ROTATED_BOUNDING_BOX: "rotated-bounding-box",
    ToolKind.POLYGON: "polygon",
    ToolKind.POLYLINE: "polyline",
    ToolKind.POINT: "point",
    ToolKind.SEGMENTATION: "segmentation",
    ToolKind.NER: "ner",
    ToolKind.PDF: "pdf",
    ToolKind.OTHER: "other",
}
_KEY_KINDS = {v: k for k, v in _KIND_KEYS.items() if k is not ToolKind.OTHER}


VOLUME_EXTENSIONS = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".dcm", ".dicom")
"""File names read as volumes (besides any asset with a ``medicalBrushDataUrl``)."""


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """An axis-aligned box, normalized so that ``width`` and ``height`` are ``>= 0``."""

    x: float
    y: float
    width: float
    height: float

    def xyxy(self) -> tuple[float, float, float, float]:
        """``(x1, y1, x2, y2)``."""
        return (self.x, self.y, self.x + self.width, self.y + self.height)

    def corners(self) -> Points:
        """The box as a 4-vertex polygon, clockwise from the top-left."""
        x1, y1, x2, y2 = self.xyxy()
        return _frozen(np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32))


@dataclass(frozen=True, slots=True)
class RotatedBox:
    """A rotated box; ``corners`` (``[4, 2]``) is authoritative, the rest informative."""

    corners: Points
    x: float | None = None
    y: float | None = None
    width: float | None = None
    height: float | None = None
    rotation: float | None = None


@dataclass(frozen=True, slots=True)
class Polygon:
    """A closed polygon given as an open ring (the first vertex is not repeated)."""

    points: Points


@dataclass(frozen=True, slots=True)
class Polyline:
    """An open line in placement order; not an area."""

    points: Points


@dataclass(frozen=True, slots=True)
class Point:
    """A single point (keypoints are plain points)."""

    x: float
    y: float


@dataclass(frozen=True, slots=True)
class Zone:
    """One zone of a segmentation: an outer ring and the holes cut from it."""

    region: Points
    holes: tuple[Points, ...] = ()


@dataclass(frozen=True, slots=True)
class Segmentation:
    """One instance made of several zones; holes are not part of it."""

    zones: tuple[Zone, ...]


@dataclass(frozen=True, slots=True)
class Ner:
    """A text span (text and audio projects; not used for images)."""

    start: int | None
    end: int | None
    selection: str | None


@dataclass(frozen=True, slots=True)
class Pdf:
    """A PDF highlight; ``bounding_rect`` is ``(x1, y1, x2, y2)`` when present."""

    page_number: int | None
    bounding_rect: tuple[float, float, float, float] | None
    raw: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class BoundingBox3D:
    """A 3D box in voxel indices (medical volumes), normalized so ``x1 <= x2`` etc.

    Exported as ``bounding-box: {x1, y1, z1, x2, y2, z2}``; its object's kind is
    :attr:`ToolKind.OTHER` (image datasets leave it out and count it).
    """

    x1: float
    y1: float
    z1: float
    x2: float
    y2: float
    z2: float

    def xyzxyz(self) -> tuple[float, float, float, float, float, float]:
        """``(x1, y1, z1, x2, y2, z2)``."""
        return (self.x1, self.y1, self.z1, self.x2, self.y2, self.z2)


@dataclass(frozen=True, slots=True)
class OtherGeometry:
    """A tool this version does not understand, kept verbatim and counted."""

    key: str
    raw: Any


Geometry: TypeAlias = (
    BoundingBox
    | RotatedBox
    | Polygon
    | Polyline
    | Point
    | Segmentation
    | Ner
    | Pdf
    | BoundingBox3D
    | OtherGeometry
)


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """Object metadata; ``created_at`` parsed from an ISO string or epoch ms.

    ``raw`` is the metadata as exported (checked to be plain JSON at load), which is what
    the index stores; it takes no part in comparisons.
    """

    created_at: datetime | None = None
    created_by: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Classification:
    """A classification answer, possibly nested.

    ``answer`` is a ``str`` (radio, dropdown, text), a ``tuple[str, ...]`` (checkbox,
    multi-dropdown, tree-dropdown, rank), a ``bool``, a number, or ``None``; shapes
    the format does not document are kept as they came.
    """

    object_id: str | None
    schema_id: str | None
    tool: str | None
    title: str | None
    answer: Any
    classifications: tuple[Classification, ...] = ()
    page: int | None = None
    metadata: ObjectMeta | None = None
    interpolation_stopped: bool = False  # video: the answer ends on ``page``

    def flat(self) -> dict[str, Any]:
        """``{title: answer}`` of this classification and every nested one."""
        out: dict[str, Any] = {}
        if self.title is not None:
            out[self.title] = self.answer
        for child in self.classifications:
            out.update(child.flat())
        return out


@dataclass(frozen=True, slots=True)
class Relation:
    """A single (``from``/``to``/``direction``) or group (``group``) relation."""

    object_id: str | None
    schema_id: str | None
    title: str | None
    from_id: str | None = None
    to_id: str | None = None
    direction: str | None = None
    group: tuple[str, ...] | None = None
    page: int | None = None


@dataclass(frozen=True, slots=True)
class ToolObject:
    """One annotation object: one instance of class ``title``."""

    object_id: str
    schema_id: str | None
    title: str
    kind: ToolKind
    geometry: Geometry
    classifications: tuple[Classification, ...] = ()
    page: int | None = None
    interpolation_stopped: bool = False
    metadata: ObjectMeta | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The annotations of one stage: the exported answer, or one stageHistory entry."""

    stage: str | None
    stage_id: str | None
    tools: tuple[ToolObject, ...] = ()
    classifications: tuple[Classification, ...] = ()
    relations: tuple[Relation, ...] = ()
    brush_url: str | None = None
    medical_brush_url: str | None = None
    completed_at: datetime | None = None
    completed_by: str | None = None


@dataclass(frozen=True, slots=True)
class Task:
    """An asset's task: the exported answer and its stage history (oldest first)."""

    task_id: str | None
    answer: Snapshot
    history: tuple[Snapshot, ...] = ()
    type: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None


@dataclass(frozen=True, slots=True)
class Asset:
    """One exported asset (an image, or a multi-page asset whose pages are ``pages``).

    ``width``/``height`` come from the export's metadata and may be ``None``.
    ``asset_id`` falls back to ``external_id`` where the export has none.
    """

    index: int
    asset_id: str
    external_id: str
    url: str | None
    task: Task
    width: int | None = None
    height: int | None = None
    batches: tuple[str, ...] = ()
    pages: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    generation: int = 3

    @property
    def name(self) -> str:
        """The externalId, or the assetId where there is none (for messages)."""
        return self.external_id or self.asset_id


def _frozen(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    a.flags.writeable = False
    return a
