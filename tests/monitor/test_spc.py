"""SPC charts and Western Electric rules against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from defectscope.errors import ConfigError
from defectscope.monitor import ewma_chart, individuals_chart, p_chart, western_electric


def test_p_chart_limits_follow_each_window_size():
    # p_bar = 50 / 500 = 0.1; sigma = sqrt(0.1 * 0.9 / n): 0.03 for n=100, 0.015 for n=400
    chart = p_chart([10, 40], [100, 400])
    assert chart.center == pytest.approx(0.1)
    assert chart.sigma == pytest.approx((0.03, 0.015))
    assert chart.ucl == pytest.approx((0.19, 0.145))
    assert chart.lcl == pytest.approx((0.01, 0.055))
    assert chart.hits == ()


def test_p_chart_flags_a_window_beyond_3_sigma():
    chart = p_chart([5, 5, 20], [100, 100, 100])  # p_bar 0.1, UCL 0.19, last point 0.2
    assert chart.points == pytest.approx((0.05, 0.05, 0.2))
    assert [(h.index, h.rule) for h in chart.hits] == [(2, 1)]
    assert "rule 1" in chart.alerts[0]


def test_p_chart_lower_limit_is_clipped_at_zero():
    assert p_chart([1, 1], [50, 50]).lcl == (0.0, 0.0)


@pytest.mark.parametrize("ng, n", [([], []), ([1], [0]), ([3], [2]), ([-1], [5]), ([1, 2], [5])])
def test_p_chart_refuses_bad_counts(ng, n):
    with pytest.raises(ConfigError):
        p_chart(ng, n)


def test_individuals_chart_uses_the_mean_moving_range():
    chart = individuals_chart([10, 12, 11, 13, 12])  # MR mean 1.5 -> sigma 1.5 / 1.128
    sigma = 1.5 / 1.128
    assert chart.center == pytest.approx(11.6)
    assert chart.ucl[0] == pytest.approx(11.6 + 3 * sigma)
    assert chart.lcl[0] == pytest.approx(11.6 - 3 * sigma)


def test_individuals_chart_against_a_given_reference():
    chart = individuals_chart([0.0, 0.0, 4.0], center=0.0, sigma=1.0)
    assert [(h.index, h.rule) for h in chart.hits] == [(2, 1)]


def test_ewma_recursion_and_exact_limits():
    chart = ewma_chart([1, 1, 1, 5], lam=0.5, center=1.0, sigma=1.0)
    assert chart.points == pytest.approx((1, 1, 1, 3))  # z4 = 0.5 * 5 + 0.5 * 1
    assert chart.ucl[0] == pytest.approx(1 + 3 * 0.5)   # sqrt(1/3 * (1 - 0.25)) = 0.5
    assert chart.ucl[3] == pytest.approx(1 + 3 * math.sqrt(1 / 3 * (1 - 0.5 ** 8)))
    assert [(h.index, h.rule) for h in chart.hits] == [(3, 1)]


def test_ewma_refuses_bad_lambda_and_values():
    with pytest.raises(ConfigError):
        ewma_chart([1, 2, 3], lam=0)
    with pytest.raises(ConfigError):
        individuals_chart([1.0, float("nan"), 2.0])
    with pytest.raises(ConfigError):
        individuals_chart([1.0])


@pytest.mark.parametrize("z, expected", [
    ([0, 0, 3.5], [(2, 1)]),
    ([0, 0, -3.1], [(2, 1)]),
    ([0, 2.5, 0.5, 2.5], [(3, 2)]),
    ([2.5, -2.5, 0], []),
    ([1.5, 1.5, 0.5, 1.5, 1.5], [(4, 3)]),
    ([0.5] * 8, [(7, 4)]),
    ([-0.5] * 8, [(7, 4)]),
    ([0.5] * 7 + [-0.5], []),
    ([0, 1, -1, 2.9, -2.9], []),
])
def test_western_electric_rules(z, expected):
    assert [(h.index, h.rule) for h in western_electric(z)] == expected
