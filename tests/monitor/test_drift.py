"""Drift statistics against hand-computed cases, and the ok/warn/alarm status."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from defectscope.errors import ConfigError, DataError
from defectscope.monitor import DriftThresholds, drift_report, ks, psi
from defectscope.monitor.drift import feature_shift, image_features, load_reference


def test_psi_by_hand():
    # reference bins (median 2.5): [0.5, 0.5]; current [1, 1, 1, 4]: [0.75, 0.25]
    expected = 0.25 * math.log(1.5) + (-0.25) * math.log(0.5)
    assert psi([1, 2, 3, 4], [1, 1, 1, 4], bins=2) == pytest.approx(expected)
    assert psi([1, 2, 3, 4], [4, 3, 2, 1], bins=2) == pytest.approx(0.0)


def test_ks_by_hand():
    d, p = ks([1, 2, 3, 4], [5, 6, 7, 8])
    assert d == 1.0 and p == pytest.approx(2 / 70)  # exact: 2 of C(8, 4) orderings


def test_feature_shift_in_reference_standard_deviations():
    assert feature_shift(np.array([[0.0], [2.0]]), np.array([[4.0]])) == pytest.approx(
        3 / math.sqrt(2))
    with pytest.raises(ConfigError):
        feature_shift(np.zeros((3, 2)), np.zeros((3, 3)))


def test_status_ok_warn_alarm():
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, 500)
    assert drift_report(reference, rng.normal(0, 1, 500)).status == "ok"
    moved = drift_report(reference, rng.normal(1.0, 1, 500))
    assert moved.status == "alarm" and moved.psi > 0.25 and moved.ks_pvalue < 1e-6
    slight = drift_report(reference, rng.normal(0.3, 1, 2000))
    assert slight.status == "warn", slight.reasons


def test_feature_shift_raises_the_status():
    rng = np.random.default_rng(1)
    scores = rng.normal(0, 1, 200)
    ref_features = rng.normal(0, 1, (50, 3))
    report = drift_report(scores, scores, DriftThresholds(), ref_features,
                          rng.normal(0, 1, (50, 3)) + [0, 0, 5])
    assert report.status == "alarm" and report.feature_shift > 2


def test_too_few_scores_is_ok_with_a_reason():
    report = drift_report([0.1] * 5, [0.9] * 5)
    assert report.status == "ok" and report.psi is None and "not enough" in report.reasons[0]


def test_image_features_and_reference_file(tmp_path):
    image = np.zeros((4, 6, 3), np.uint8)
    image[:, 3:] = 200
    features = image_features(image)
    assert features[0] == pytest.approx(100) and features[4] == pytest.approx(200 / 5)
    path = tmp_path / "ref.json"
    path.write_text(json.dumps({"scores": [0.1, 0.2], "features": [[1, 2], [3, 4]]}))
    scores, feats = load_reference(path)
    assert scores.tolist() == [0.1, 0.2] and feats.shape == (2, 2)
    path.write_text("{}")
    with pytest.raises(DataError, match="drift reference"):
        load_reference(path)
    with pytest.raises(DataError, match="does not exist"):
        load_reference(tmp_path / "missing.json")
