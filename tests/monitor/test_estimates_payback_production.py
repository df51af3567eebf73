"""Wilson intervals, precision/recall from reviews, ROI and figures from the results log."""

from __future__ import annotations

import pytest

from defectscope.errors import ConfigError
from defectscope.monitor import (Costs, ng_windows, precision_recall, production_stats,
                                 roi_summary, wilson_interval)
from defectscope.values import PartResult, Verdict


def test_wilson_interval_by_hand():
    low, high = wilson_interval(8, 10)
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
    with pytest.raises(ConfigError):
        wilson_interval(3, 2)


def test_precision_and_recall_from_reviews():
    pairs = [("NG", True), ("NG", True), ("NG", False), ("UNSURE", True), ("OK", True),
             ("OK", False)]
    estimates = precision_recall(pairs)
    assert (estimates["precision"].k, estimates["precision"].n) == (2, 3)
    assert (estimates["recall"].k, estimates["recall"].n) == (3, 4)  # UNSURE stops the part
    assert estimates["recall"].low < 0.75 < estimates["recall"].high
    assert precision_recall([])["precision"].value is None
    with pytest.raises(ConfigError):
        precision_recall([("MAYBE", True)])


def test_roi_by_hand():
    roi = roi_summary(1000, ng=50, unsure=10, costs=Costs(5, 200, 0.5), precision=0.8,
                      escape_rate=0.001)
    assert roi.escapes_avoided == 40 and roi.false_rejects == 10
    assert roi.escapes == pytest.approx(0.94)
    assert roi.savings == pytest.approx(40 * 200 - 10 * 5 - 10 * 0.5)
    assert roi.manual_saved == pytest.approx(990 * 0.5)
    assert roi.ng_rate == 0.05 and roi.assumptions == ()
    assert len(roi_summary(10, 1, 0).assumptions) == 2
    with pytest.raises(ConfigError):
        Costs(false_reject=-1)
    with pytest.raises(ConfigError):
        roi_summary(10, ng=8, unsure=5)


def part(i, t, verdict="OK", score=0.2, ms=10.0, source="lot-a"):
    return PartResult(f"p{i}", t, Verdict(verdict), score, 0.5, "m1", "d1", source=source,
                      timings={"model": ms})


def test_windows_and_stats():
    parts = [part(0, 10, "NG", 0.9), part(1, 20), part(2, 3610, "NG", 0.8, source="lot-b"),
             part(3, 3620, "UNSURE", 0.5, source="lot-b")]
    windows = ng_windows(parts, 3600)
    assert [(w.start, w.n, w.ng) for w in windows] == [(0.0, 2, 1), (3600.0, 2, 1)]
    assert windows[0].mean_score == pytest.approx(0.55)
    assert [w.key for w in ng_windows(parts, by_lot=True)] == ["lot-a", "lot-b"]
    stats = production_stats(parts)
    assert stats["verdicts"] == {"OK": 1, "NG": 2, "UNSURE": 1} and stats["ng_rate"] == 0.5
    assert stats["parts_per_minute"] == pytest.approx(3 / 3610 * 60)
    assert stats["latency_ms"]["p50"] == 10.0 and stats["model_versions"] == {"m1": 4}
    with pytest.raises(ConfigError):
        ng_windows(parts, 0)
    assert production_stats([])["ng_rate"] is None
