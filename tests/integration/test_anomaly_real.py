"""PatchCore and PaDiM on a slice of the real magnetic-tile data, with accuracy floors.

The slice follows the benchmark split (MT_Free sorted by name: first 70% may train, the rest is
test; defective images only in test), subsampled so the test stays under a minute on 2 cores.
The floors sit below what the slice measured when written (see each assert), so a real
regression fails while run-to-run noise does not. The slice inherits that split's leak: nearly
every good test image has a re-shot of the same spot among the training images (Magnetic Tile
holds ~6 exposures per spot), so these floors guard against regressions; they do not measure
accuracy on unseen parts (``benchmarks/anomaly_magnetic_tile.py --split grouped`` does).
"""

from __future__ import annotations

import dataclasses

import pytest

from defectscope.bundle import load_bundle
from defectscope.data import import_folder
from defectscope.evaluation.run import evaluate_bundle
from defectscope.training.anomaly import train_anomaly

from tests.conftest import shared_data_dir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tile_slice():
    root = shared_data_dir() / "magnetic-tile"
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set DEFECTSCOPE_SHARED_DATA)")
    manifest = import_folder(root).manifest
    good = sorted(manifest.select(label="good"), key=lambda s: s.path)
    cut = int(len(good) * 0.7)
    splits = {}
    for i, sample in enumerate(good[:cut:5]):
        splits[sample.path] = "val" if i % 6 == 5 else "train"
    for sample in good[cut::10]:
        splits[sample.path] = "test"
    defects = sorted(manifest.select(good=False), key=lambda s: s.path)
    for i, sample in enumerate(defects[::8]):
        splits[sample.path] = "val" if i % 4 == 0 else "test"
    chosen = [dataclasses.replace(s, split=splits[s.path]) for s in manifest.samples
              if s.path in splits]
    return manifest.with_samples(chosen)


@pytest.mark.parametrize("model_name, image_floor, pixel_floor", [
    ("patchcore", 0.88, 0.86),  # measured 0.930 / 0.892 on this slice
    # measured 0.925 / 0.884 with 128 px; self-tuning picks 256 px here (0.89 / 0.847), which
    # the anomaly suite's mean over datasets favours (bsdata, battery-weld): see the README
    ("padim", 0.87, 0.82),
])
def test_real_defects_are_found(tile_slice, tmp_path, model_name, image_floor, pixel_floor):
    result = train_anomaly(tile_slice, model_name, tmp_path / "model", progress=False)
    bundle = load_bundle(result.out_dir)
    report, _ = evaluate_bundle(bundle, tile_slice, "test", progress=False)
    assert report["n_images"] == len(tile_slice.select(split="test"))
    assert report["image_auroc"] >= image_floor, report["image_auroc"]
    assert report["pixel_auroc"] >= pixel_floor, report["pixel_auroc"]
    assert report["recall"] == pytest.approx(report["confusion_matrix"]["tp"] / report["n_defect"])


@pytest.fixture(scope="module")
def battery_weld():
    from defectscope.data import import_mvtec

    root = shared_data_dir() / "battery-weld"
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set DEFECTSCOPE_SHARED_DATA)")
    return import_mvtec(root).manifest


def test_defaults_tune_and_calibrate_from_good_images_only(battery_weld, tmp_path):
    """Battery weld (37 good training images, no defect in validation): self-tuning picks a
    setting from synthetic defects and the threshold catches real ones (measured image AUROC
    0.952, recall 0.935, F1 0.946 of F1-max 0.954 when written)."""
    result = train_anomaly(battery_weld, "patchcore", tmp_path / "model", progress=False)
    assert result.tuning is not None and len(result.tuning.rows) >= 2
    assert result.calibration.rule == "synthetic_balanced" and result.calibration.n_synthetic >= 24
    bundle = load_bundle(result.out_dir)
    assert bundle.info["tuning"]["chosen"] == result.tuning.chosen.name
    report, _ = evaluate_bundle(bundle, result.manifest, "test", progress=False)
    assert report["image_auroc"] >= 0.90, report["image_auroc"]
    assert report["f1"] >= 0.8 * report["f1_max"], (report["f1"], report["f1_max"])
