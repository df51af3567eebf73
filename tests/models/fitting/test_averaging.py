"""The moving average of a network's weights, against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from defectscope.models.fitting.averaging import WeightAverage, validate_averaged


def _net(value: float) -> nn.Module:
    net = nn.Sequential(nn.Linear(1, 1), nn.BatchNorm1d(1))
    with torch.no_grad():
        net[0].weight.fill_(value)
    return net


def test_the_average_follows_the_ramped_decay_and_copies_integer_buffers():
    net = _net(0.0)
    average = WeightAverage(net, decay=0.9, ramp_steps=2)
    expected = 0.0
    for step, value in enumerate((1.0, 2.0, 3.0), start=1):
        with torch.no_grad():
            net[0].weight.fill_(value)
        net[1].num_batches_tracked += 1
        average.update(net)
        d = 0.9 * (1 - math.exp(-step / 2))
        expected = d * expected + (1 - d) * value
        assert average.state["0.weight"].item() == pytest.approx(expected)
    assert average.state["1.num_batches_tracked"].item() == 3


def test_validation_sees_the_average_and_leaves_the_live_weights():
    net = _net(5.0)
    average = WeightAverage(net, decay=0.5)
    average.state["0.weight"].fill_(1.0)
    seen = validate_averaged(net, average, lambda n: n[0].weight.item())
    assert seen == 1.0 and net[0].weight.item() == 5.0
    assert validate_averaged(net, None, lambda n: n[0].weight.item()) == 5.0
