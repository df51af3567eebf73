"""A tiny PatchCore bundle trained once per session and exported to ONNX, images on disk, and a
small real local Ray instance per test (loopback, no dashboard, 2 CPUs), always shut down."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import FAST_OPTIONS, defective_part, good_part, make_mvtec, save

pytest.importorskip("ray")


@pytest.fixture(scope="session")
def exported_patchcore(tmp_path_factory) -> Path:
    from defectscope.data.images.importers import import_mvtec
    from defectscope.export import export_onnx
    from defectscope.training.anomaly import train_anomaly

    root = tmp_path_factory.mktemp("distributed")
    manifest = import_mvtec(make_mvtec(root / "parts")).manifest
    out = root / "patchcore"
    train_anomaly(manifest, "patchcore", out, options=FAST_OPTIONS, progress=False)
    export_onnx(out)
    return out


@pytest.fixture(scope="session")
def second_patchcore(tmp_path_factory) -> Path:
    """Another PatchCore (fitted on fewer parts): another model version to compare with."""
    from defectscope.data.images.importers import import_mvtec
    from defectscope.export import export_onnx
    from defectscope.training.anomaly import train_anomaly

    root = tmp_path_factory.mktemp("distributed_b")
    manifest = import_mvtec(make_mvtec(root / "parts", n_train=8)).manifest
    out = root / "patchcore_b"
    train_anomaly(manifest, "patchcore", out, options=FAST_OPTIONS, progress=False)
    export_onnx(out)
    return out


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    for i in range(40):
        save(root / "good" / f"{i:03d}.png", good_part(2000 + i))
    for i in range(8):
        save(root / "blob" / f"{i:03d}.png", defective_part(3000 + i)[0])
    return root


@pytest.fixture
def copy_of(tmp_path):
    return lambda path: Path(shutil.copytree(path, tmp_path / Path(path).name))
