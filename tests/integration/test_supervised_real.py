"""The classifier on a slice of real NEU-DET images, with an accuracy floor (skipped if absent).

A slice (3 classes x 20 images, 64 px, 3 epochs) keeps it to a minute on 2 CPU cores; the full
figures come from ``benchmarks/supervised.py``.
"""

from __future__ import annotations

import pytest

from defectscope.data.images.importers import import_dataset
from defectscope.evaluation.supervised import evaluate_supervised
from defectscope.bundle import load_bundle
from defectscope.training.supervised import train_supervised

from tests.conftest import shared_data_dir

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_neu_slice_classifier_beats_the_floor(tmp_path):
    root = shared_data_dir() / "neu-det"
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set DEFECTSCOPE_SHARED_DATA)")
    manifest = import_dataset(root, "yolo", label_rule="prefix").manifest
    keep = {"crazing", "patches", "scratches"}
    samples = [s for s in sorted(manifest.samples, key=lambda s: s.path) if s.label in keep]
    picked = []
    for label in sorted(keep):
        picked += [s for s in samples if s.label == label][:20]
    manifest = manifest.with_samples(picked)
    train_supervised(manifest, "classifier", tmp_path / "model", progress=False,
                     options={"image_size": 64, "epochs": 3, "warmup_epochs": 1})
    bundle = load_bundle(tmp_path / "model")
    report, _ = evaluate_supervised(bundle, manifest, "test", progress=False)
    assert report["n_images"] == 9  # 3 per class: the bundle's own test split
    assert report["accuracy"] >= 0.66
