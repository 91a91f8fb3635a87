"""The curated public namespace: what `import ango_torch` offers, pinned (httpx style)."""

from __future__ import annotations

import ango_torch

EXPECTED = {
    "AngoDataset",
    "AngoShards",
    "write_shards",
    "AngoExport",
    "AngoVolumeDataset",
    "to_torchio_subject",
    "AngoVideoDataset",
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
    "unpack_masks",
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


def test_import_ango_torch_and_the_cli_load_no_torch() -> None:
    """Reading, indexing, inspect and validate start without torch (PEP 562 lazy names)."""
    import subprocess
    import sys

    code = (
        "import sys, ango_torch, ango_torch.cli, ango_torch.export.validate; "
        "ango_torch.load_export; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # expected: no torch import on these paths


def test_every_module_path_the_readme_names_resolves() -> None:
    """Each dotted ``ango_torch.…`` name in README.md is a module or an attribute of one,
    and the console script ``ango_torch.cli:main`` (pyproject) is callable."""
    import importlib
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    names = set(re.findall(r"ango_torch(?:\.[A-Za-z_]\w*)+", (root / "README.md").read_text()))
    assert "ango_torch.export.index.ExportIndex" in names  # the README names stage paths
    unresolved = []
    for name in sorted(names):
        parts = name.split(".")
        for k in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:k]))
                break
            except ImportError:
                continue
        for attr in parts[k:]:
            obj = getattr(obj, attr, None)
        if obj is None:
            unresolved.append(name)
    assert unresolved == []
    script = re.search(r'ango-torch = "([\w.]+):(\w+)"', (root / "pyproject.toml").read_text())
    assert script is not None
    assert callable(getattr(importlib.import_module(script.group(1)), script.group(2)))
