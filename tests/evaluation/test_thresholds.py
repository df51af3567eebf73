"""Threshold calibration: each rule on hand-made scores, its guarantees, and its error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest

from defectscope.errors import ConfigError, DataError, DefectscopeError
from defectscope.evaluation.thresholds import (ThresholdCalibration, calibrate_threshold,
                                           wilson_interval)

GOOD_SCORES = [0.1, 0.2, 0.3]
DEFECT_SCORES = [0.25, 0.6, 0.9]
SCORES = GOOD_SCORES + DEFECT_SCORES
FLAGS = [False] * 3 + [True] * 3


def test_good_quantile_rejects_exactly_the_allowed_top_goods():
    goods = np.arange(100) / 100  # 0.00 .. 0.99
    cal = calibrate_threshold(goods, np.zeros(100, bool), rule="good_quantile", target=0.05)
    # 5 goods may be rejected: 0.95..0.99; the threshold is midway between 0.94 and 0.95.
    assert cal.threshold == pytest.approx(0.945)
    assert cal.achieved_false_reject_rate == pytest.approx(0.05)
    assert (cal.rule, cal.target, cal.n_good, cal.n_defect, cal.achieved_recall) == (
        "good_quantile", 0.05, 100, 0, None)


def test_good_quantile_with_few_goods_sits_just_above_the_maximum():
    cal = calibrate_threshold([0.1, 0.2, 0.3] * 3, [False] * 9, rule="good_quantile")
    assert cal.target == 0.01
    assert 0.3 < cal.threshold < 0.3 + 1e-12
    assert cal.achieved_false_reject_rate == 0.0
    assert "just above the highest good score" in cal.note
    assert "needs at least 100" in cal.note


def test_good_quantile_never_cuts_through_tied_scores():
    goods = [0.1] * 8 + [0.5, 0.5]  # target 0.1 allows 1 reject, but the top two tie
    cal = calibrate_threshold(goods, [False] * 10, rule="good_quantile", target=0.1)
    assert cal.threshold > 0.5
    assert cal.achieved_false_reject_rate == 0.0
    assert "tied" in cal.note


def test_good_quantile_guarantees_the_target_on_random_scores():
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(1, 400))
        goods = np.round(rng.random(n), int(rng.integers(1, 4)))  # plenty of ties
        target = float(rng.uniform(0, 0.5))
        cal = calibrate_threshold(goods, np.zeros(n, bool), rule="good_quantile", target=target)
        assert np.mean(goods >= cal.threshold) <= target
        assert cal.achieved_false_reject_rate == np.mean(goods >= cal.threshold)


def test_good_quantile_ignores_defects_for_the_threshold():
    cal = calibrate_threshold(SCORES, FLAGS, rule="good_quantile", target=0.0)
    assert 0.3 < cal.threshold < 0.31
    assert cal.achieved_recall == pytest.approx(2 / 3)


def test_recall_full_sits_between_the_lowest_defect_and_the_next_lower_score():
    cal = calibrate_threshold(SCORES, FLAGS, rule="recall")
    assert cal.threshold == pytest.approx(0.225)  # between defect 0.25 and good 0.2
    assert cal.achieved_recall == 1.0
    assert cal.achieved_false_reject_rate == pytest.approx(1 / 3)  # good 0.3 is rejected


def test_recall_partial_target_rounds_the_defect_count_up():
    cal = calibrate_threshold(SCORES, FLAGS, rule="recall", target=0.5)
    # ceil(0.5 * 3) = 2 defects: 0.9 and 0.6; next lower score is 0.3.
    assert cal.threshold == pytest.approx(0.45)
    assert cal.achieved_recall == pytest.approx(2 / 3)
    assert cal.achieved_false_reject_rate == 0.0


def test_recall_on_the_lowest_score_uses_that_score():
    cal = calibrate_threshold([0.05, 0.2, 0.9], [True, False, True], rule="recall")
    assert cal.threshold == 0.05
    assert cal.achieved_recall == 1.0


def test_f1_max_rule():
    cal = calibrate_threshold(SCORES, FLAGS, rule="f1_max")
    # Best F1 is 6/7 at score 0.25 (3 defects + good 0.3); placed midway down to 0.2.
    assert cal.threshold == pytest.approx(0.225)
    assert "0.8571" in cal.note
    assert cal.target is None


def test_auto_picks_recall_with_defects_and_good_quantile_without():
    with_defects = calibrate_threshold(SCORES, FLAGS)
    assert (with_defects.rule, with_defects.target) == ("recall", 1.0)
    assert "auto chose 'recall'" in with_defects.note
    goods_only = calibrate_threshold(GOOD_SCORES, [False] * 3)
    assert (goods_only.rule, goods_only.target) == ("good_quantile", 0.01)


def test_only_defects_reports_unknown_false_reject_rate():
    cal = calibrate_threshold([0.4, 0.8], [True, True], rule="recall")
    assert cal.threshold == pytest.approx(0.4)
    assert cal.achieved_false_reject_rate == 0.0
    assert "no good images" in cal.note


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"rule": "median"}, ConfigError, "known rules: auto, good_quantile, recall, f1_max, synthetic_balanced"),
        ({"rule": "good_quantile", "target": 1.0}, ConfigError, r"\[0, 1\)"),
        ({"rule": "good_quantile", "target": -0.1}, ConfigError, r"\[0, 1\)"),
        ({"rule": "recall", "target": 0.0}, ConfigError, r"\(0, 1\]"),
        ({"rule": "recall", "target": 1.5}, ConfigError, r"\(0, 1\]"),
        ({"rule": "f1_max", "target": 0.5}, ConfigError, "takes no target"),
        ({"rule": "auto", "target": 0.5}, ConfigError, "takes no target"),
        ({"rule": "balanced", "target": 1.0}, ConfigError, "highest false-reject rate"),
        ({"rule": "balanced", "target": -0.1}, ConfigError, "highest false-reject rate"),
    ],
)
def test_bad_rules_and_targets(kwargs, error, message):
    with pytest.raises(error, match=message):
        calibrate_threshold(SCORES, FLAGS, **kwargs)


def test_missing_classes_raise_data_errors():
    with pytest.raises(DataError, match="needs good images"):
        calibrate_threshold([0.5], [True], rule="good_quantile")
    for rule in ("recall", "f1_max"):
        with pytest.raises(DefectscopeError, match="needs defective images"):
            calibrate_threshold([0.5], [False], rule=rule)
    with pytest.raises(ConfigError, match="NaN"):
        calibrate_threshold([float("nan")], [False])


def test_record_round_trips_through_json():
    cal = calibrate_threshold(SCORES, FLAGS, rule="recall", target=0.5)
    row = json.loads(json.dumps(cal.to_dict()))
    assert ThresholdCalibration.from_dict(row) == cal
    with pytest.raises(AttributeError):
        cal.threshold = 1.0  # frozen


def test_good_only_validation_with_synthetic_defects_sits_below_their_scores():
    rng = np.random.default_rng(0)
    good = rng.normal(1.0, 0.1, 40)
    synthetic = rng.normal(1.6, 0.3, 60)
    cal = calibrate_threshold(good, np.zeros(40, bool), synthetic_scores=synthetic)
    assert cal.rule == "synthetic_balanced" and "synthetic defects given" in cal.note
    assert cal.threshold < np.median(synthetic)
    assert cal.synthetic_recall == pytest.approx(np.mean(synthetic >= cal.threshold))
    assert cal.synthetic_recall > 0.8 and cal.n_synthetic == 60
    assert cal.achieved_false_reject_rate <= 0.05


def test_overlapping_synthetic_defects_put_the_threshold_inside_the_good_tail():
    good = [1.0, 1.1, 1.2, 1.3, 2.0]  # one high good
    synthetic = [1.5, 1.6, 1.7, 1.8, 3.0]
    cal = calibrate_threshold(good, [False] * 5, rule="synthetic_balanced", target=0.25,
                              synthetic_scores=synthetic)
    assert 1.3 < cal.threshold <= 1.5  # below the top good score: one false reject accepted
    assert cal.achieved_false_reject_rate == pytest.approx(0.2)
    low, high = cal.false_reject_rate_ci
    assert low < 0.2 < high and "only 5 good images" in cal.note


def test_real_defects_take_precedence_over_synthetic_ones():
    cal = calibrate_threshold(SCORES, FLAGS, synthetic_scores=[5.0, 6.0])
    assert cal.rule == "recall"


def test_synthetic_rule_needs_synthetic_scores():
    with pytest.raises(DataError, match="synthetic"):
        calibrate_threshold(GOOD_SCORES, [False] * 3, rule="synthetic_balanced")
    with pytest.raises(DataError, match="finite"):
        calibrate_threshold(GOOD_SCORES, [False] * 3, synthetic_scores=[float("nan")])


def test_wilson_interval_contains_the_estimate_and_narrows_with_n():
    low, high = wilson_interval(1, 10)
    assert low < 0.1 < high
    wide = high - low
    low, high = wilson_interval(10, 100)
    assert high - low < wide
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_records_without_the_new_fields_still_load():
    row = calibrate_threshold(SCORES, FLAGS).to_dict()
    for key in ("false_reject_rate_ci", "n_synthetic", "synthetic_recall", "unsure_band",
                "unsure_note"):
        row.pop(key)
    assert ThresholdCalibration.from_dict(row).n_synthetic == 0


def test_synthetic_rule_never_rejects_more_goods_than_its_target():
    good = [1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.2]  # synthetic defects hardly separate from these
    synthetic = [1.55, 1.6, 1.65, 1.7, 1.75, 1.8, 2.5]
    free = calibrate_threshold(good, [False] * 7, rule="synthetic_balanced", target=0.9,
                               synthetic_scores=synthetic)
    capped = calibrate_threshold(good, [False] * 7, rule="synthetic_balanced", target=0.1,
                                 synthetic_scores=synthetic)
    assert free.achieved_false_reject_rate > 0.1
    assert capped.achieved_false_reject_rate <= 0.1 and capped.threshold > 2.2
    assert capped.synthetic_recall == pytest.approx(1 / 7)
    with pytest.raises(ConfigError, match="highest false-reject rate"):
        calibrate_threshold(good, [False] * 7, rule="synthetic_balanced", target=1.0,
                            synthetic_scores=synthetic)


def test_balanced_rule_does_not_reject_most_goods_to_catch_the_last_real_defect():
    rng = np.random.default_rng(0)
    good = rng.normal(1.0, 0.1, 200)
    defect = np.append(rng.normal(2.0, 0.2, 19), 0.95)  # one defect the model cannot see
    scores = np.concatenate([good, defect])
    flags = [False] * 200 + [True] * 20
    recall = calibrate_threshold(scores, flags)  # the supervised models' auto: catch them all
    balanced = calibrate_threshold(scores, flags, auto_with_defects="balanced")
    assert recall.rule == "recall" and recall.achieved_false_reject_rate > 0.5
    assert balanced.rule == "balanced" and "auto chose 'balanced'" in balanced.note
    assert balanced.achieved_false_reject_rate <= 0.2 and balanced.achieved_recall == 0.95
    assert "real defects" in balanced.note and "only 20 real defects" not in balanced.note
    assert "only 19" not in balanced.note
    with pytest.raises(ConfigError, match="auto_with_defects"):
        calibrate_threshold(scores, flags, auto_with_defects="f1_max")
    with pytest.raises(DataError, match="good images"):
        calibrate_threshold(defect, [True] * 20, rule="balanced")


def test_unsure_band_holds_half_the_errors_and_few_goods():
    rng = np.random.default_rng(1)
    good = rng.normal(1.0, 0.15, 400)
    defect = rng.normal(1.6, 0.3, 100)  # overlapping: errors on both sides
    flags = [False] * 400 + [True] * 100
    cal = calibrate_threshold(np.concatenate([good, defect]), flags, rule="balanced")
    t, band = cal.threshold, cal.unsure_band
    assert band is not None and 0 < band <= 0.5
    distance = np.abs(np.concatenate([good, defect]) - t) / t
    wrong = np.concatenate([good >= t, defect < t])
    inside = distance < band
    assert inside[wrong].mean() >= 0.5 or inside[:400].mean() == pytest.approx(0.1, abs=0.003)
    assert inside[:400].mean() <= 0.1 + 1e-9  # at most 10% of goods sent to review
    assert "UNSURE band" in cal.unsure_note


def test_unsure_band_is_capped_by_the_goods_it_would_send_to_review():
    good = np.linspace(0.9, 1.1, 100)  # goods crowd the threshold
    defect = np.array([0.5, 0.6, 3.0, 3.1])  # two far-off escapes: half the errors is far away
    cal = calibrate_threshold(np.concatenate([good, defect]), [False] * 100 + [True] * 4,
                              rule="recall", target=0.5)  # the two near-goods escape
    distance = np.abs(good - cal.threshold) / cal.threshold
    assert np.mean(distance < cal.unsure_band) <= 0.1
    assert "at most 10 of 100 goods" in cal.unsure_note


def test_unsure_band_without_errors_is_half_the_gap_between_the_classes():
    good = list(np.linspace(1.0, 1.2, 20))
    cal = calibrate_threshold(good + [3.0, 3.5], [False] * 20 + [True] * 2, rule="recall")
    assert cal.unsure_band == pytest.approx(0.5 * (3.0 - 1.2) / cal.threshold)
    synthetic = calibrate_threshold(good, [False] * 20, synthetic_scores=[2.5, 2.6])
    assert synthetic.unsure_band is not None  # goods against synthetic defects


def test_unsure_band_is_not_sized_from_nothing_or_from_too_few_goods():
    assert calibrate_threshold(GOOD_SCORES, [False] * 3).unsure_band is None
    few = calibrate_threshold(GOOD_SCORES, [False] * 3, synthetic_scores=[0.5, 0.6])
    assert few.unsure_band is None and "too few to size the UNSURE band" in few.unsure_note
