"""An exponential moving average of a network's weights (EMA), for the training loops.

The last weights of a short run jump around from step to step; their moving average scores
steadier and usually higher, so the loops validate (and keep) the average instead.

>>> average = WeightAverage(net, decay=0.98, ramp_steps=70)     # doctest: +SKIP
>>> average.update(net)  # after each optimiser step              # doctest: +SKIP
>>> metric = validate_averaged(net, average, validate)          # doctest: +SKIP
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from torch import nn


class WeightAverage:
    """Exponential moving average of a network's floating-point state; the decay ramps up over
    about ``ramp_steps`` steps (as in YOLOv5) so early, poor weights are soon forgotten."""

    def __init__(self, net: nn.Module, decay: float, ramp_steps: int = 300) -> None:
        self.decay = decay
        self.ramp_steps = max(1, ramp_steps)
        self.steps = 0
        self.state = {k: v.detach().clone() for k, v in net.state_dict().items()}

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        self.steps += 1
        d = self.decay * (1 - math.exp(-self.steps / self.ramp_steps))
        for key, value in net.state_dict().items():
            if value.dtype.is_floating_point:
                self.state[key].mul_(d).add_(value.detach(), alpha=1 - d)
            else:
                self.state[key].copy_(value)


def validate_averaged(net: nn.Module, average: WeightAverage | None,
                      validate: Callable[[nn.Module], float]) -> float:
    """The metric of the averaged weights (when averaging), leaving the live weights in place."""
    if average is None:
        return float(validate(net))
    live = copy.deepcopy(net.state_dict())
    net.load_state_dict(average.state)
    try:
        return float(validate(net))
    finally:
        net.load_state_dict(live)
