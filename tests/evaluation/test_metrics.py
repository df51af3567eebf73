"""Image-level metrics against hand-computed small cases, ties, bad input and (if present) sklearn."""

from __future__ import annotations

import numpy as np
import pytest

from defectscope.errors import ConfigError
from defectscope.evaluation.metrics import (
    Confusion,
    auroc,
    average_precision,
    confusion_at,
    f1_max,
    per_type_recall,
    pr_curve,
    roc_curve,
)

SCORES = [0.1, 0.4, 0.35, 0.8]
DEFECT = [False, False, True, True]


def test_auroc_hand_computed():
    # Pairs (defect, good): 0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4 -> 3 of 4.
    assert auroc(SCORES, DEFECT) == pytest.approx(0.75)


def test_auroc_counts_ties_as_half():
    assert auroc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == pytest.approx(0.5)
    # Defect 0.5 vs goods 0.2 (win) and 0.5 (tie), defect 0.9 wins both: (1 + 0.5 + 2) / 4.
    assert auroc([0.2, 0.5, 0.5, 0.9], [0, 0, 1, 1]) == pytest.approx(0.875)


def test_auroc_is_none_with_one_class():
    assert auroc([0.1, 0.2], [False, False]) is None
    assert auroc([0.1, 0.2], [True, True]) is None


def test_roc_curve_hand_computed():
    fpr, tpr, thresholds = roc_curve(SCORES, DEFECT)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(thresholds, [np.inf, 0.8, 0.4, 0.35, 0.1])


def test_roc_curve_needs_both_classes():
    with pytest.raises(ConfigError, match="both"):
        roc_curve([0.1, 0.2], [0, 0])


def test_pr_curve_hand_computed():
    precision, recall, thresholds = pr_curve(SCORES, DEFECT)
    np.testing.assert_allclose(precision, [0.5, 2 / 3, 0.5, 1, 1])
    np.testing.assert_allclose(recall, [1, 1, 0.5, 0.5, 0])
    np.testing.assert_allclose(thresholds, [0.1, 0.35, 0.4, 0.8])


def test_average_precision_hand_computed():
    # Recall steps 0 -> 0.5 at precision 1 (t=0.8), 0.5 -> 1 at precision 2/3 (t=0.35).
    assert average_precision(SCORES, DEFECT) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert average_precision([0.2, 0.5, 0.5, 0.9], [0, 0, 1, 1]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision([0.5] * 4, [0, 1, 0, 1]) == pytest.approx(0.5)


def test_average_precision_one_class():
    assert average_precision([0.1, 0.2], [0, 0]) is None
    assert average_precision([0.1, 0.2], [1, 1]) == pytest.approx(1.0)


def test_f1_max_hand_computed():
    # t=0.35 catches both defects and one good: F1 = 2*2 / (2*2 + 1 + 0) = 0.8.
    assert f1_max(SCORES, DEFECT) == (pytest.approx(0.8), 0.35)


def test_f1_max_prefers_the_highest_threshold_on_equal_f1():
    best, threshold = f1_max([0.9, 0.5, 0.1], [1, 0, 1])
    # t=0.9: 2/(2+0+1)=0.667; t=0.1: 4/(4+1+0)=0.8 -> 0.1 wins outright.
    assert (best, threshold) == (pytest.approx(0.8), 0.1)
    # t=0.9: 2/(2+0+1) = 2/3; t=0.6: 4/(4+2+0) = 2/3 as well -> the higher threshold wins.
    best, threshold = f1_max([0.9, 0.8, 0.7, 0.6], [1, 0, 0, 1])
    assert (best, threshold) == (pytest.approx(2 / 3), 0.9)


def test_f1_max_needs_defects():
    with pytest.raises(ConfigError, match="defective"):
        f1_max([0.1, 0.2], [0, 0])


def test_confusion_at_hand_computed():
    c = confusion_at(SCORES, DEFECT, threshold=0.38)
    assert c == Confusion(tp=1, fp=1, tn=1, fn=1)
    assert (c.precision, c.recall, c.f1) == (0.5, 0.5, 0.5)
    assert (c.false_reject_rate, c.escape_rate, c.accuracy) == (0.5, 0.5, 0.5)
    assert c.to_dict() == {"tp": 1, "fp": 1, "tn": 1, "fn": 1}


def test_confusion_at_treats_score_equal_to_threshold_as_defect():
    assert confusion_at(SCORES, DEFECT, threshold=0.35) == Confusion(tp=2, fp=1, tn=1, fn=0)


def test_confusion_zero_division_gives_zero():
    c = confusion_at([0.1, 0.2], [0, 0], threshold=0.5)
    assert c == Confusion(tp=0, fp=0, tn=2, fn=0)
    assert (c.precision, c.recall, c.f1, c.escape_rate) == (0.0, 0.0, 0.0, 0.0)
    assert c.accuracy == 1.0
    assert Confusion(0, 0, 0, 0).accuracy == 0.0


def test_per_type_recall():
    scores = [0.9, 0.2, 0.7, 0.6, 0.1]
    labels = ["scratch", "scratch", "dent", "good", "good"]
    assert per_type_recall(scores, labels, threshold=0.5) == {"dent": 1.0, "scratch": 0.5}
    assert per_type_recall([0.1], ["good"], threshold=0.5) == {}


@pytest.mark.parametrize(
    ("scores", "flags", "message"),
    [
        ([], [], "no scores"),
        ([0.1, 0.2], [True], "2 scores but 1"),
        ([0.1, float("nan")], [True, False], "score 1 is NaN"),
        ([0.1, 0.2], [0, 2], "booleans"),
    ],
)
def test_bad_input_raises_clear_errors(scores, flags, message):
    for metric in (auroc, average_precision, roc_curve, pr_curve, f1_max):
        with pytest.raises(ConfigError, match=message):
            metric(scores, flags)
    with pytest.raises(ValueError, match=message):  # ConfigError is a ValueError too
        confusion_at(scores, flags, 0.5)


def test_per_type_recall_checks_lengths():
    with pytest.raises(ConfigError, match="2 scores but 1"):
        per_type_recall([0.1, 0.2], ["dent"], 0.5)


def test_inputs_are_not_mutated():
    scores = np.array([0.3, 0.1, 0.2])
    flags = np.array([True, False, True])
    auroc(scores, flags)
    average_precision(scores, flags)
    np.testing.assert_array_equal(scores, [0.3, 0.1, 0.2])


def test_matches_sklearn_on_random_data_with_ties():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = int(rng.integers(5, 300))
        flags = rng.random(n) < rng.uniform(0.1, 0.9)
        if flags.all() or not flags.any():
            continue
        scores = np.round(rng.random(n) + flags * rng.uniform(0, 1), 1)  # many ties
        assert auroc(scores, flags) == pytest.approx(sk.roc_auc_score(flags, scores), abs=1e-12)
        assert average_precision(scores, flags) == pytest.approx(
            sk.average_precision_score(flags, scores), abs=1e-12
        )
        fpr, tpr, _ = roc_curve(scores, flags)
        sk_fpr, sk_tpr, _ = sk.roc_curve(flags, scores, drop_intermediate=False)
        np.testing.assert_allclose(fpr, sk_fpr)
        np.testing.assert_allclose(tpr, sk_tpr)
        precision, recall, thresholds = pr_curve(scores, flags)
        sk_p, sk_r, sk_t = sk.precision_recall_curve(flags, scores)
        np.testing.assert_allclose(precision, sk_p)
        np.testing.assert_allclose(recall, sk_r)
        np.testing.assert_allclose(thresholds, sk_t)
        best, threshold = f1_max(scores, flags)
        assert best == pytest.approx(sk.f1_score(flags, scores >= threshold))
