"""The reference comparison's training loop on tiny random windows: what each epoch validates
is what it keeps, with and without a moving average of the weights."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from defectscope.errors import ConfigError
from defectscope.models.fitting.reference_loop import (
    TrainArrays,
    candidate_ap,
    run_net,
    train_reference_net,
)
from defectscope.models.reference import ReferenceConfig
from defectscope.models.reference_net import ReferenceNet

SIDE = 16


def windows(n: int, seed: int) -> TrainArrays:
    """Windows with a bright square (defect type 1, its box) or none (background)."""
    rng = np.random.default_rng(seed)
    crops = (rng.random((n, 3, SIDE, SIDE)) * 40).astype(np.uint8)
    labels = np.zeros(n, np.int64)
    targets = np.zeros((n, 4), np.float32)
    for i in range(0, n, 2):
        x0, y0 = rng.integers(2, SIDE // 2, 2)
        crops[i, :, y0:y0 + 6, x0:x0 + 6] = 250
        labels[i] = 1
        targets[i] = np.array([x0, y0, x0 + 6, y0 + 6]) / SIDE
    return TrainArrays(crops, labels, targets)


CONFIG = ReferenceConfig(crop_size=16, width=4, epochs=4, batch_size=16, patience=10,
                         lr=5e-3, seed=0)


def fit(config: ReferenceConfig) -> tuple[ReferenceNet, dict, TrainArrays]:
    torch.manual_seed(0)
    net = ReferenceNet(n_classes=1, crop_size=SIDE, width=config.width)
    val = windows(32, seed=1)
    record = train_reference_net(net, windows(96, seed=0), val, config, progress=False,
                                 log=lambda message: None)
    return net, record, val


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_the_kept_weights_are_the_ones_validated(ema_decay):
    net, record, val = fit(dataclasses.replace(CONFIG, ema_decay=ema_decay))
    probabilities, offsets = run_net(net, val.crops)
    kept = candidate_ap(probabilities, offsets, val.labels, val.targets)
    assert kept == pytest.approx(record["val_candidate_ap"], abs=1e-5)
    best = [h for h in record["history"] if h["epoch"] == record["best_epoch"]][0]
    assert best["val_candidate_ap"] == pytest.approx(kept, abs=1e-5)


def test_the_moving_average_changes_what_is_kept():
    plain, _, _ = fit(CONFIG)
    averaged, _, _ = fit(dataclasses.replace(CONFIG, ema_decay=0.9))
    differs = [not torch.equal(a, b) for a, b in zip(plain.state_dict().values(),
                                                     averaged.state_dict().values())
               if a.dtype.is_floating_point]
    assert any(differs)


def test_ema_decay_outside_its_range_is_refused():
    for bad in (-0.1, 1.0):
        with pytest.raises(ConfigError, match="ema_decay"):
            ReferenceConfig(ema_decay=bad)
