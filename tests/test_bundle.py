"""Bundles: what is saved comes back the same, and a changed or newer bundle is refused."""

from __future__ import annotations

import json

import pytest

from defectscope.bundle import check_references, load_bundle, read_bundle_info, save_bundle
from defectscope.data.images.importers import import_mvtec
from defectscope.errors import BundleError
from defectscope.training.anomaly import train_anomaly

from tests.conftest import FAST_OPTIONS


@pytest.fixture
def trained(tiny_mvtec, tmp_path):
    manifest = import_mvtec(tiny_mvtec).manifest
    return train_anomaly(manifest, "patchcore", tmp_path / "model", options=FAST_OPTIONS,
                         progress=False)


def test_bundle_records_what_a_reviewer_needs(trained):
    info = read_bundle_info(trained.out_dir)
    assert info["model"]["name"] == "patchcore"
    assert info["weights"]["sha256"] == (
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db")
    assert info["dataset"]["version_id"] == trained.manifest.version_id
    assert info["threshold"] == pytest.approx(trained.calibration.threshold)
    assert info["calibration"]["rule"] == "synthetic_balanced"  # no real defect in validation
    assert info["calibration"]["n_synthetic"] >= 24
    assert info["preprocess"]["image_size"] == 64
    assert len(info["references"]) == 2  # the validation split of this tiny set holds 2 images
    assert not list(trained.out_dir.rglob("*.pkl")) and not list(trained.out_dir.rglob("*.pt"))


def test_loaded_bundle_scores_its_references_identically(trained):
    bundle = load_bundle(trained.out_dir)
    assert bundle.references
    assert check_references(bundle, tolerance=0.0) == []


def test_tampered_tensor_file_is_refused(trained):
    path = trained.out_dir / "tensors.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="content changed"):
        load_bundle(trained.out_dir)


def test_missing_file_and_missing_folder_are_clear_errors(trained, tmp_path):
    (trained.out_dir / "manifest.json").unlink()
    with pytest.raises(BundleError, match="missing from the bundle"):
        load_bundle(trained.out_dir)
    with pytest.raises(BundleError, match="no such model folder"):
        load_bundle(tmp_path / "nowhere")


def test_bundle_from_a_newer_version_is_refused(trained):
    path = trained.out_dir / "bundle.json"
    info = json.loads(path.read_text())
    info["format_version"] = 99
    info["library_version"] = "9.0.0"
    path.write_text(json.dumps(info))
    with pytest.raises(BundleError, match="newer.*upgrade"):
        load_bundle(trained.out_dir)


def test_invalid_json_is_refused(trained):
    (trained.out_dir / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(trained.out_dir)


def test_save_refuses_to_overwrite_unless_asked(trained):
    model = load_bundle(trained.out_dir).model
    with pytest.raises(BundleError, match="already exists"):
        save_bundle(model, trained.out_dir)
    save_bundle(model, trained.out_dir, overwrite=True)
    assert load_bundle(trained.out_dir).model.threshold == model.threshold
