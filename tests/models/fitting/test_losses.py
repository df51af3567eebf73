"""Losses, samplers and augmentation, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from defectscope.data.images.augment import AugmentConfig, augment
from defectscope.models.fitting.losses import (binary_focal_loss, classification_loss, dice_loss,
                                         focal_loss)
from defectscope.models.fitting.samplers import (choose_imbalance_defaults, class_weights,
                                           epoch_order)


def test_focal_loss_matches_hand_computed_values():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    target = torch.tensor([0, 1])
    p0 = math.exp(2) / (math.exp(2) + 1)  # 0.8808
    expected = (-(1 - p0) ** 2 * math.log(p0) + -(0.5 ** 2) * math.log(0.5)) / 2
    assert float(focal_loss(logits, target, gamma=2.0)) == pytest.approx(expected, rel=1e-6)
    weight = torch.tensor([0.25, 0.75])
    weighted = (-0.25 * (1 - p0) ** 2 * math.log(p0) - 0.75 * 0.25 * math.log(0.5)) / 2
    assert float(focal_loss(logits, target, 2.0, weight)) == pytest.approx(weighted, rel=1e-6)


def test_focal_with_gamma_zero_is_cross_entropy():
    logits = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    target = torch.arange(8) % 4
    ce = torch.nn.functional.cross_entropy(logits, target)
    assert float(focal_loss(logits, target, gamma=0.0)) == pytest.approx(float(ce), rel=1e-6)
    assert float(classification_loss("ce", None)(logits, target)) == pytest.approx(float(ce))


def test_binary_focal_and_dice_by_hand():
    logits = torch.tensor([0.0, 0.0])
    target = torch.tensor([1.0, 0.0])
    # p_t = 0.5 for both: (0.5^2) * ln 2
    assert float(binary_focal_loss(logits, target, 2.0)) == pytest.approx(0.25 * math.log(2))
    big = torch.full((1, 1, 2, 2), 20.0)
    mask = torch.ones(1, 1, 2, 2)
    assert float(dice_loss(big, mask)) == pytest.approx(0.0, abs=1e-6)
    assert float(dice_loss(-big, mask, eps=0.0)) == pytest.approx(1.0, abs=1e-6)


def test_imbalance_defaults_and_weights():
    assert choose_imbalance_defaults({"a": 10, "b": 12}).sampler == "shuffle"
    assert choose_imbalance_defaults({"a": 100, "b": 10}).loss == "weighted_ce"
    assert choose_imbalance_defaults({"a": 1000, "b": 10}).loss == "focal"
    weights = class_weights([0, 0, 0, 1], 2)
    assert weights[1] == pytest.approx(3 * weights[0])
    assert weights.mean() == pytest.approx(1.0)


def test_oversampling_balances_classes():
    targets = [0] * 95 + [1] * 5
    order = epoch_order(targets, "oversample", np.random.default_rng(0))
    share = np.mean(np.asarray(targets)[order] == 1)
    assert len(order) == 100 and 0.35 < share < 0.65
    assert sorted(epoch_order(targets, "shuffle", np.random.default_rng(0))) == list(range(100))


def test_augmentation_moves_image_and_mask_together():
    rng = np.random.default_rng(0)
    mask = np.zeros((32, 32), dtype=bool)
    mask[3:9, 20:30] = True
    image = np.repeat(mask[None].astype(np.float32), 3, axis=0)
    geometric = AugmentConfig(affine=0.0, brightness_contrast=0.0, blur=0.0, noise=0.0)
    for _ in range(10):
        out, out_mask = augment(image, mask, geometric, rng)
        assert out.shape == image.shape and out_mask.shape == mask.shape
        np.testing.assert_array_equal(out[0] > 0.5, out_mask)
    out, out_mask = augment(image, mask, AugmentConfig(affine=1.0), rng)
    assert out.dtype == np.float32 and out_mask.dtype == bool
