"""ango_torch: Ango Hub annotation exports as PyTorch / torchvision training data."""

from .errors import (
    AngoTorchError,
    AssetFetchError,
    DecodeError,
    ExpiredURLError,
    ExportFormatError,
    OntologyError,
    StageNotFoundError,
    UnsafePathError,
)
from .export import AngoExport, Skipped, load_export
from .ontology import Ontology, OntologyClass, load_ontology
from .records import Asset, ToolKind, ToolObject

__version__ = "0.1.0"

__all__ = [
    "AngoExport",
    "AngoTorchError",
    "Asset",
    "AssetFetchError",
    "DecodeError",
    "ExpiredURLError",
    "ExportFormatError",
    "Ontology",
    "OntologyClass",
    "OntologyError",
    "Skipped",
    "StageNotFoundError",
    "ToolKind",
    "ToolObject",
    "UnsafePathError",
    "__version__",
    "load_export",
    "load_ontology",
]
