"""``inspect --volumes`` / ``validate --volumes`` on the bundled volume sample.

References: the sample's construction (examples/data/volume/make_volume.py: 24×20×16
voxels, spacing (0.8, 0.9, 1.5), a 30° rotation about S of RAS-ordered axes, ct_002's
label cropped), nibabel's ``aff2axcodes`` for the orientation codes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ango_torch.cli import main

pytest.importorskip("nrrd")
SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "volume"


def test_axcodes_agree_with_nibabel() -> None:
    nib = pytest.importorskip("nibabel")
    from ango_torch.datasets.volume_report import axcodes

    rng = np.random.default_rng(0)
    for _ in range(50):
        aff = np.eye(4)
        aff[:3, :3] = rng.normal(size=(3, 3))
        assert axcodes(aff) == "".join(nib.aff2axcodes(aff))


def test_inspect_volumes_json(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["inspect", str(SAMPLE / "export.json"), "--json", "--volumes"]
    args += ["--root", str(SAMPLE / "root"), "--ontology", str(SAMPLE / "ontology.json")]
    assert main(args) == 0
    vols = json.loads(capsys.readouterr().out)["volumes"]
    assert [v["asset"] for v in vols] == ["ct_001.nrrd", "ct_002.nrrd"]
    for v in vols:
        assert v["shape"] == [24, 20, 16] and v["spacing"] == [0.8, 0.9, 1.5]
        assert v["orientation"] == "RAS" and v["unlisted_values"] == {}
        assert [(s["label_value"], s["class"]) for s in v["segments"]] == [
            (1, "Tumour"),
            (2, "Kidney"),
        ]
    assert [v["label_grid"] for v in vols] == ["same", "cropped"]
    assert [s["layer"] for s in vols[1]["segments"]] == [0, 1]


def test_validate_volumes_names_grid_mismatch_and_unlisted_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ango_torch.assets.volume_io import write_nrrd

    root = tmp_path / "root"
    shutil.copytree(SAMPLE / "root", root)
    (root / "ct_002.nrrd").write_bytes(write_nrrd(np.zeros((8, 8, 8), np.int16), np.eye(4)))
    args = ["validate", str(SAMPLE / "export.json"), "--volumes", "--root", str(root)]
    assert main(args) == 1  # no ontology: values 1 and 2 have no class
    out = capsys.readouterr().out
    assert "volume-grid-mismatch: asset 'ct_002.nrrd' (#1):" in out
    assert "volume-unlisted-label: asset 'ct_001.nrrd' (#0): label value 1 (179 voxels)" in out
    assert "unknown-tool" not in out  # 3D boxes are understood


def test_validate_volumes_passes_the_sample_with_its_ontology(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The sample is consistent by construction (make_volume.py): with its ontology every
    # label value has a class and both grids match; volumes have no metadata.width/height
    # (their grid is the file header's), which is not a problem.
    args = ["validate", str(SAMPLE / "export.json"), "--volumes", "--root", str(SAMPLE / "root")]
    args += ["--ontology", str(SAMPLE / "ontology.json")]
    assert main(args) == 0, capsys.readouterr().out
    assert "missing-size" not in capsys.readouterr().out
