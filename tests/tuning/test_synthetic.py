"""Synthetic defects for tuning: exact masks, several strengths, clear errors."""

import numpy as np
import pytest

from defectscope.errors import DataError
from defectscope.data.images.synthesize import KINDS
from defectscope.tuning.synthetic import STRENGTHS, blend, described_defects, synthetic_defects


def test_masks_are_exactly_the_changed_pixels(good_images):
    goods = good_images[:3]
    pairs = synthetic_defects(goods, 9, seed=0)
    assert len(pairs) == 9
    for i, (image, mask) in enumerate(pairs):
        base = goods[i % 3]
        assert image.shape == base.shape and image.dtype == np.uint8
        assert mask.sum() >= 4
        assert np.array_equal((image != base).any(axis=2), mask)


def test_weaker_strengths_change_less(good_images):
    base = good_images[0]
    loud = np.zeros_like(base) if base.mean() > 128 else np.full_like(base, 255)
    changes = [np.abs(blend(base, loud, s).astype(int) - base).mean() for s in STRENGTHS]
    assert changes == sorted(changes) and changes[0] < changes[-1]


def test_seeded_and_deterministic(good_images):
    a = synthetic_defects(good_images[:2], 4, seed=3)
    b = synthetic_defects(good_images[:2], 4, seed=3)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b))


def test_no_goods_is_a_clear_error():
    with pytest.raises(DataError, match="at least one good image"):
        synthetic_defects([], 3)


def test_described_defects_are_the_same_defects_with_their_kind_and_strength(good_images):
    plain = synthetic_defects(good_images[:3], 9, seed=1)
    described = described_defects(good_images[:3], 9, seed=1)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
               for a, b in zip(plain, described))
    assert {kind for _, _, kind, _ in described} <= set(KINDS)
    # round-robin over the strengths, 1.0 where a faint blend kept the full change
    assert all(strength in (STRENGTHS[i % len(STRENGTHS)], 1.0)
               for i, (_, _, _, strength) in enumerate(described))
