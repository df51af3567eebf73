"""Tiny PatchCore and PaDiM bundles, trained once per session and exported to ONNX."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import FAST_OPTIONS, make_mvtec

MODELS = ("patchcore", "padim")


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict[str, Path]:
    """Freshly trained bundles, without an export: copy one before changing it."""
    from defectscope.data.importers import import_mvtec
    from defectscope.training.anomaly import train_anomaly

    root = tmp_path_factory.mktemp("runtime")
    manifest = import_mvtec(make_mvtec(root / "parts")).manifest
    return {name: _train(train_anomaly, manifest, name, root / name) for name in MODELS}


def _train(train_anomaly, manifest, name: str, out: Path) -> Path:
    train_anomaly(manifest, name, out, options=FAST_OPTIONS, progress=False)
    return out


@pytest.fixture(scope="session")
def exported(trained, tmp_path_factory) -> dict[str, Path]:
    """Copies of the trained bundles with an ``onnx/`` export. Do not change them."""
    from defectscope.runtime.export import export_onnx

    root = tmp_path_factory.mktemp("exported")
    bundles = {}
    for name, path in trained.items():
        bundles[name] = shutil.copytree(path, root / name)
        export_onnx(bundles[name])
    return bundles


@pytest.fixture
def copy_of(tmp_path):
    """Copy a bundle folder somewhere this test may change it."""
    return lambda path: Path(shutil.copytree(path, tmp_path / Path(path).name))
