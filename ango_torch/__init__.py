"""ango_torch: Ango Hub annotation exports as PyTorch / torchvision training data."""

from .coco import to_coco, write_coco
from .dataset import AngoDataset, DatasetReport, collate_fn
from .errors import (
    AngoTorchError,
    AngoTorchWarning,
    AssetFetchError,
    DecodeError,
    ExpiredURLError,
    ExportFormatError,
    OntologyError,
    SizeMismatchError,
    StageNotFoundError,
    UnsafePathError,
)
from .export import AngoExport, Skipped, load_export
from .ontology import Ontology, OntologyClass, load_ontology
from .records import Asset, ToolKind, ToolObject

__version__ = "0.1.0"

__all__ = [
    "AngoDataset",
    "AngoExport",
    "AngoTorchError",
    "AngoTorchWarning",
    "Asset",
    "AssetFetchError",
    "DatasetReport",
    "DecodeError",
    "ExpiredURLError",
    "ExportFormatError",
    "Ontology",
    "OntologyClass",
    "OntologyError",
    "SizeMismatchError",
    "Skipped",
    "StageNotFoundError",
    "ToolKind",
    "ToolObject",
    "UnsafePathError",
    "__version__",
    "collate_fn",
    "load_export",
    "load_ontology",
    "to_coco",
    "write_coco",
]
