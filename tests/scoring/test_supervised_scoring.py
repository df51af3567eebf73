"""The supervised models' decision after the network (classification, segmentation), in numpy."""

from __future__ import annotations

import numpy as np
import pytest

from defectscope.scoring import (
    area_score,
    class_probabilities,
    classification_result,
    defect_probabilities,
    not_good_score,
    probabilities_by_class,
    probability_map,
    segmentation_output,
    segmentation_result,
    sigmoid,
)
from defectscope.values import Verdict

CLASSES = ("good", "blob", "scratch")


def test_class_probabilities_are_a_stable_softmax():
    logits = np.array([[2.0, 0.0, 1.0], [1000.0, 0.0, -1000.0]], np.float32)
    p = class_probabilities(logits)
    assert p.dtype == np.float64 and np.allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[0], np.exp([2, 0, 1]) / np.exp([2, 0, 1]).sum())
    np.testing.assert_array_equal(p[1], [1.0, 0.0, 0.0])
    assert probabilities_by_class(p[0], CLASSES) == {"good": p[0, 0], "blob": p[0, 1],
                                                     "scratch": p[0, 2]}


def test_score_is_not_good_or_one_without_a_good_class():
    p = np.array([0.7, 0.2, 0.1])
    assert not_good_score(p, CLASSES) == pytest.approx(0.3)
    assert not_good_score(p, ("blob", "scratch", "dent")) == 1.0


@pytest.mark.parametrize("p, threshold, band, verdict, defect_type", [
    ([0.9, 0.02, 0.08], 0.5, 0.0, Verdict.OK, None),
    ([0.1, 0.3, 0.6], 0.5, 0.0, Verdict.NG, "scratch"),
    ([0.1, 0.6, 0.3], 0.5, 0.0, Verdict.NG, "blob"),
    ([0.52, 0.4, 0.08], 0.5, 0.1, Verdict.UNSURE, "blob"),
])
def test_classification_result(p, threshold, band, verdict, defect_type):
    result = classification_result(np.array(p), CLASSES, threshold, band, {"network": 1.0})
    assert result.score == pytest.approx(1 - p[0])
    assert result.verdict is verdict and result.defect_type == defect_type
    assert result.anomaly_map is None and result.timings == {"network": 1.0}
    assert (result.reason is not None) == (verdict is Verdict.UNSURE)


def test_without_a_good_class_every_part_is_its_likeliest_defect():
    result = classification_result(np.array([0.2, 0.8]), ("blob", "scratch"), 0.5)
    assert result.score == 1.0 and result.verdict is Verdict.NG
    assert result.defect_type == "scratch"


def test_sigmoid_is_stable_and_float32():
    x = np.array([-1000.0, -2.0, 0.0, 3.0, 1000.0])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        y = sigmoid(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [0.0, 1 / (1 + np.exp(2.0)), 0.5, 1 / (1 + np.exp(-3.0)), 1.0],
                               rtol=1e-6)


def _lopsided(batch: np.ndarray) -> np.ndarray:
    """A 'network' that is not mirror-symmetric: logits rise to the right and downwards."""
    n, _, h, w = batch.shape
    ramp = np.arange(h)[:, None] * 0.1 + np.arange(w)[None, :] * 0.3
    return (batch[:, :1] + ramp).astype(np.float32)


def test_defect_probabilities_plain_and_flip_averaged():
    rng = np.random.default_rng(0)
    batch = rng.standard_normal((2, 3, 6, 8)).astype(np.float32)
    calls = []

    def forward(x):
        calls.append(x.shape)
        return _lopsided(x)

    plain = defect_probabilities(forward, batch)
    np.testing.assert_array_equal(plain, sigmoid(_lopsided(batch)))
    assert len(calls) == 1
    averaged = defect_probabilities(forward, batch, flip_average=True)
    assert len(calls) == 5 and averaged.shape == (2, 1, 6, 8) and averaged.dtype == np.float32
    expected = np.mean([np.flip(sigmoid(_lopsided(np.flip(batch, axes))), axes) if axes
                        else sigmoid(_lopsided(batch))
                        for axes in ((), (-1,), (-2,), (-2, -1))], axis=0)
    np.testing.assert_allclose(averaged, expected, rtol=1e-6)
    mirrored = defect_probabilities(forward, np.flip(batch, -1).copy(), flip_average=True)
    np.testing.assert_allclose(mirrored, np.flip(averaged, -1), rtol=1e-6)  # equivariant


def test_area_score_and_map():
    prob = np.zeros((10, 20), np.float32)
    prob[0, 0] = 1.0
    prob[:2, :10] = np.maximum(prob[:2, :10], 0.5)
    assert area_score(prob, 0.0) == 1.0
    assert area_score(prob, 0.05) == 0.5  # k = 10 pixels
    assert area_score(prob, 0.2) == 0.0  # k = 40 pixels: the 20 bright ones are not enough
    score, heatmap = segmentation_output(prob, (30, 60), 0.05)
    assert score == 0.5 and heatmap.shape == (30, 60) and heatmap.dtype == np.float32
    same = probability_map(prob, prob.shape)
    np.testing.assert_array_equal(same, prob)
    assert same.flags.c_contiguous


@pytest.mark.parametrize("score, verdict", [(0.2, Verdict.OK), (0.6, Verdict.NG),
                                            (0.51, Verdict.UNSURE)])
def test_segmentation_result(score, verdict):
    heatmap = np.zeros((4, 5), np.float32)
    result = segmentation_result(score, heatmap, 0.5, 0.05, {"network": 2.0})
    assert result.verdict is verdict and result.score == score
    assert result.anomaly_map is heatmap and result.defect_type is None
    assert (result.reason is not None) == (verdict is Verdict.UNSURE)
