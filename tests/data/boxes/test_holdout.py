"""The model-selection slice: stratified by box label, group-aware, seeded, order-free."""

from __future__ import annotations

from collections import Counter

import pytest

from defectscope.data.boxes.dataset import Box, DetectionSample
from defectscope.data.boxes.holdout import hold_out_boxes
from defectscope.errors import ConfigError, DataError


def _samples() -> list[DetectionSample]:
    rows = []
    for i in range(100):
        label = "scratch" if i < 80 else "pit"
        rows.append(DetectionSample(f"{i:03d}.png", "0" * 64, 50, 50,
                                    (Box(1, 1, 9, 9, label),), group=f"g{i // 2}"))
    return rows + [DetectionSample(f"good{i}.png", "0" * 64, 50, 50) for i in range(10)]


def test_each_label_is_held_out_in_proportion_and_groups_stay_together():
    kept, held = hold_out_boxes(_samples(), 0.2, seed=0)
    assert len(kept) + len(held) == 110
    counts = Counter(s.boxes[0].label if s.boxes else "good" for s in held)
    assert counts == {"scratch": 16, "pit": 4, "good": 2}
    assert not {s.group for s in kept if s.group} & {s.group for s in held if s.group}


def test_same_seed_same_slice_whatever_the_order():
    samples = _samples()
    _, a = hold_out_boxes(samples, 0.15, seed=3)
    _, b = hold_out_boxes(samples[::-1], 0.15, seed=3)
    _, c = hold_out_boxes(samples, 0.15, seed=4)
    assert {s.path for s in a} == {s.path for s in b} != {s.path for s in c}


def test_bad_fraction_and_too_few_groups():
    with pytest.raises(ConfigError):
        hold_out_boxes(_samples(), 1.0)
    with pytest.raises(DataError, match="group"):
        hold_out_boxes(_samples()[:1], 0.2)
