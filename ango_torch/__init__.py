"""ango_torch: Ango Hub annotation exports as PyTorch / torchvision training data."""

from typing import TYPE_CHECKING, Any

from .errors import (
    AngoTorchError,
    AngoTorchWarning,
    AssetFetchError,
    DecodeError,
    EvaluationError,
    ExpiredURLError,
    ExportFormatError,
    MissingDependencyError,
    OntologyError,
    SizeMismatchError,
    StageNotFoundError,
    UnsafePathError,
)
from .export.load import AngoExport, Skipped, load_export
from .export.ontology import Ontology, OntologyClass, load_ontology
from .records import Asset, ToolKind, ToolObject

if TYPE_CHECKING:
    from .datasets.batching import collate_fn
    from .datasets.dataset import AngoDataset, DatasetReport
    from .datasets.packed import unpack_masks
    from .datasets.shard_writer import write_shards
    from .datasets.shards import AngoShards
    from .datasets.video import AngoVideoDataset
    from .datasets.volume import AngoVolumeDataset, to_torchio_subject
    from .evaluation.coco import to_coco, write_coco
    from .evaluation.distributed import EvalSampler, gather_predictions
    from .evaluation.evaluate import CocoMetrics, evaluate_coco, predictions_to_coco
    from .evaluation.metrics import SegmentationMeter, SegmentationMetrics
    from .training.samplers import GroupedBatchSampler, RepeatFactorSampler
    from .training.sanitize import sanitize_labels_getter
    from .training.splits import split

# Names whose modules import torch are loaded on first use (PEP 562), so that reading,
# indexing and validating an export, the CLI's inspect/validate and the parallel
# indexing workers start without paying for `import torch`.
_LAZY = {
    "to_coco": ".evaluation.coco",
    "write_coco": ".evaluation.coco",
    "AngoDataset": ".datasets.dataset",
    "AngoShards": ".datasets.shards",
    "write_shards": ".datasets.shard_writer",
    "AngoVolumeDataset": ".datasets.volume",
    "to_torchio_subject": ".datasets.volume",
    "AngoVideoDataset": ".datasets.video",
    "DatasetReport": ".datasets.dataset",
    "collate_fn": ".datasets.batching",
    "unpack_masks": ".datasets.packed",
    "EvalSampler": ".evaluation.distributed",
    "gather_predictions": ".evaluation.distributed",
    "CocoMetrics": ".evaluation.evaluate",
    "evaluate_coco": ".evaluation.evaluate",
    "predictions_to_coco": ".evaluation.evaluate",
    "SegmentationMeter": ".evaluation.metrics",
    "SegmentationMetrics": ".evaluation.metrics",
    "sanitize_labels_getter": ".training.sanitize",
    "GroupedBatchSampler": ".training.samplers",
    "RepeatFactorSampler": ".training.samplers",
    "split": ".training.splits",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ango_torch' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__version__ = "0.1.0"

__all__ = [
    "AngoDataset",
    "AngoExport",
    "AngoShards",
    "AngoTorchError",
    "AngoTorchWarning",
    "AngoVideoDataset",
    "AngoVolumeDataset",
    "Asset",
    "AssetFetchError",
    "CocoMetrics",
    "DatasetReport",
    "DecodeError",
    "EvalSampler",
    "EvaluationError",
    "ExpiredURLError",
    "ExportFormatError",
    "GroupedBatchSampler",
    "MissingDependencyError",
    "Ontology",
    "OntologyClass",
    "OntologyError",
    "RepeatFactorSampler",
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
    "sanitize_labels_getter",
    "split",
    "to_coco",
    "to_torchio_subject",
    "unpack_masks",
    "write_coco",
    "write_shards",
]
