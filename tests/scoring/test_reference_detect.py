"""Test-time averaging of the reference comparison's window network (``reference_detect``): the
flips and quarter turns inference uses are training's, boxes come back to the window they were
predicted on, and the settings read old and new bundle configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from defectscope.models.fitting.reference_loop import dihedral
from defectscope.models.reference import ReferenceConfig
from defectscope.scoring.reference_detect import (
    ReferenceSettings,
    dihedral_crops,
    scaled_settings,
    undo_dihedral_boxes,
    window_outputs,
    window_scales,
)

SIDE = 16


def crops_with_boxes(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """N x 3 x s x s uint8 windows, each with one bright rectangle, and its box fractions."""
    rng = np.random.default_rng(seed)
    crops = np.zeros((n, 3, SIDE, SIDE), np.uint8)
    boxes = np.zeros((n, 4))
    for i in range(n):
        x0, y0 = rng.integers(0, SIDE // 2, 2)
        x1, y1 = x0 + rng.integers(2, SIDE // 2), y0 + rng.integers(2, SIDE // 2)
        crops[i, :, y0:y1, x0:x1] = 255
        boxes[i] = np.array([x0, y0, x1, y1]) / SIDE
    return crops, boxes


def bright_box_forward(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 'network' that answers the box of the bright pixels (equivariant under every flip) and
    a class logit from the top-left pixel (not invariant)."""
    bright = batch[:, 0] > 0
    boxes = np.zeros((len(batch), 4), np.float32)
    for i, mask in enumerate(bright):
        ys, xs = np.nonzero(mask)
        boxes[i] = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) / SIDE
    logits = np.stack([np.zeros(len(batch)), 5 * batch[:, 0, 0, 0]], axis=1)
    return logits.astype(np.float32), boxes


@pytest.mark.parametrize("code", range(8))
def test_inference_flips_are_the_ones_training_makes(code):
    crops, boxes = crops_with_boxes(4)
    flipped = dihedral_crops(crops, code)
    expected_x, expected_boxes = dihedral(torch.from_numpy(crops.copy()),
                                          torch.from_numpy(boxes.copy()), code)
    assert np.array_equal(flipped, expected_x.numpy())
    _, predicted = bright_box_forward(flipped)
    assert np.allclose(predicted, expected_boxes.numpy(), atol=1e-6)
    assert np.allclose(undo_dihedral_boxes(predicted, code), boxes, atol=1e-6)


def test_flip_averaging_keeps_equivariant_boxes_and_averages_the_probabilities():
    crops, boxes = crops_with_boxes(6, seed=1)
    crops[0, :, 0, 0] = 255  # a bright corner: only some of the eight views put it top left
    plain_p, plain_b = window_outputs(bright_box_forward, crops)
    mean_p, mean_b = window_outputs(bright_box_forward, crops, flips=True)
    assert np.allclose(mean_b, plain_b, atol=1e-6)
    assert mean_b.dtype == np.float32 and mean_p.shape == plain_p.shape
    assert np.allclose(mean_p.sum(axis=1), 1.0)
    # the bright corner is top left in 2 of the 8 views (itself and its transpose)
    views = [bright_box_forward(dihedral_crops(crops[:1], code))[0] for code in range(8)]
    corner_top_left = sum(float(v[0, 1]) > 0 for v in views)
    assert corner_top_left == 2
    assert mean_p[0, 1] < plain_p[0, 1]
    assert np.allclose(mean_p[1:], plain_p[1:])


def test_settings_read_test_time_options_and_old_configs():
    config = ReferenceConfig(test_flips=True, test_scales=True, scale_jitter=0.25).to_dict()
    settings = ReferenceSettings.from_config(config)
    assert settings.test_flips is True
    assert settings.test_scales == pytest.approx((1.0, 0.8, 1.25))
    old = {k: v for k, v in ReferenceConfig().to_dict().items()
           if k not in ("test_flips", "test_scales", "scale_jitter")}
    settings = ReferenceSettings.from_config(old)  # a bundle saved before these options
    assert settings.test_flips is False and settings.test_scales == (1.0,)


def test_window_scales_and_scaled_settings():
    assert window_scales(0.0) == (1.0,)
    assert window_scales(0.5) == pytest.approx((1.0, 1 / 1.5, 1.5))
    settings = ReferenceSettings.from_config(ReferenceConfig(context=96, region_scale=2.5)
                                             .to_dict())
    assert scaled_settings(settings, 1.0) == settings
    larger = scaled_settings(settings, 1.25)
    assert (larger.context, larger.region_scale) == (120, pytest.approx(3.125))
    smaller = scaled_settings(settings, 0.1)
    assert (smaller.context, smaller.region_scale) == (10, 1.0)  # region_scale never below 1
