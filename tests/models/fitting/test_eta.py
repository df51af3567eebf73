"""The time-left estimate shown after each training epoch."""

from __future__ import annotations

import math

from defectscope.models.fitting.eta import format_remaining, remaining_seconds


def test_remaining_is_the_mean_epoch_times_the_epochs_left():
    assert remaining_seconds(60.0, 2, 10) == 240.0
    assert remaining_seconds(60.0, 10, 10) == 0.0


def test_a_time_budget_caps_the_estimate():
    assert remaining_seconds(60.0, 2, 10, budget_s=100.0) == 40.0
    assert remaining_seconds(120.0, 2, 10, budget_s=100.0) == 0.0


def test_nothing_measured_yet_says_unknown():
    assert math.isnan(remaining_seconds(5.0, 0, 10))
    assert format_remaining(float("nan")) == "time left unknown"
    assert format_remaining(240.0) == "about 4 min left"
    assert format_remaining(40.4) == "about 40 s left"
