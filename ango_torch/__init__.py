"""ango_torch: Ango Hub annotation exports as PyTorch / torchvision training data."""

from .coco import to_coco, write_coco
from .dataset import AngoDataset, DatasetReport, collate_fn
from .distributed import EvalSampler, gather_predictions
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
from .evaluate import CocoMetrics, evaluate_coco, predictions_to_coco
from .export import AngoExport, Skipped, load_export
from .metrics import SegmentationMeter, SegmentationMetrics
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
    "CocoMetrics",
    "DatasetReport",
    "DecodeError",
    "EvalSampler",
    "ExpiredURLError",
    "ExportFormatError",
    "Ontology",
    "OntologyClass",
    "OntologyError",
    "SegmentationMeter",
    "SegmentationMetrics",
    "SizeMismatchError",
    "Skipped",
    "StageNotFoundError",
    "ToolKind",
    "ToolObject",
    "UnsafePathError",
    "__version__",
    "collate_fn",
    "evaluate_coco",
    "gather_predictions",
    "load_export",
    "load_ontology",
    "predictions_to_coco",
    "to_coco",
    "write_coco",
]
