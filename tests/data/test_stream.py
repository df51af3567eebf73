"""Streaming helpers: a deadline on a stream of training images, and a count of what was read."""

from __future__ import annotations

from defectscope.data.stream import Counted, until


def test_until_without_a_deadline_yields_everything():
    assert list(until(range(5), deadline=None)) == [0, 1, 2, 3, 4]


def test_until_stops_at_the_deadline_but_yields_the_minimum():
    ticks = iter([0.0, 0.5, 2.0, 3.0])
    assert list(until(range(10), deadline=1.0, minimum=1, clock=lambda: next(ticks))) == [0, 1, 2]
    assert list(until(range(10), deadline=0.0, clock=lambda: 5.0)) == [0, 1]


def test_counted_counts_what_was_consumed():
    counted = Counted(until(range(10), deadline=0.0, minimum=3, clock=lambda: 1.0))
    assert list(counted) == [0, 1, 2] and counted.count == 3
