"""The curated public namespace: what `import ango_torch` offers, pinned (httpx style)."""

from __future__ import annotations

import ango_torch

EXPECTED = {
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
    "write_coco",
}


def test_all_is_pinned_and_importable() -> None:
    assert set(ango_torch.__all__) == EXPECTED
    for name in ango_torch.__all__:
        assert hasattr(ango_torch, name), name


def test_every_error_is_an_ango_torch_error_and_a_builtin() -> None:
    errors = {
        ango_torch.ExportFormatError: ValueError,
        ango_torch.OntologyError: ValueError,
        ango_torch.StageNotFoundError: LookupError,
        ango_torch.SizeMismatchError: ValueError,
        ango_torch.AssetFetchError: OSError,
        ango_torch.ExpiredURLError: OSError,
        ango_torch.UnsafePathError: OSError,
        ango_torch.DecodeError: OSError,
        ango_torch.EvaluationError: ValueError,
        ango_torch.MissingDependencyError: ImportError,
    }
    for cls, builtin in errors.items():
        assert issubclass(cls, ango_torch.AngoTorchError) and issubclass(cls, builtin), cls


def test_a_missing_filesystem_package_names_the_extra() -> None:
    import importlib.util

    import pytest

    if importlib.util.find_spec("s3fs") is not None:
        pytest.skip("s3fs is installed here")
    with pytest.raises(ango_torch.MissingDependencyError, match=r"ango_torch\[s3\]"):
        ango_torch.load_export("s3://bucket/export.json")
