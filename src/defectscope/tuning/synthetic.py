"""Synthetic defects for tuning and calibration: several kinds, sizes and contrasts.

Real defects are usually subtler than a pasted patch, so each synthetic defect is blended into
its good image at one of ``STRENGTHS`` (the share of the full change kept): a tuner or threshold
that only sees loud defects would sit too far above the good scores. The mask stays exact: the
pixels whose value changed.

>>> pairs = synthetic_defects(goods, 12, seed=0)  # doctest: +SKIP
>>> image, mask = pairs[0]  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from defectscope.data.images.synthesize import KINDS, synthesize_defect
from defectscope.errors import DataError

STRENGTHS = (0.35, 0.6, 1.0)


def blend(image: np.ndarray, defective: np.ndarray, strength: float) -> np.ndarray:
    """``image`` moved ``strength`` of the way towards ``defective`` (uint8, same shape)."""
    mixed = image.astype(np.float32) + strength * (defective.astype(np.float32) - image)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def synthetic_defects(goods: Sequence[np.ndarray], n: int, seed: int = 0,
                      kinds: Sequence[str] = KINDS) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` (defective image, bool mask) pairs made from ``goods`` (RGB uint8), round-robin over
    the images and the strengths; another good image is the source of pasted texture."""
    return [(image, mask) for image, mask, _, _ in described_defects(goods, n, seed, kinds)]


def described_defects(goods: Sequence[np.ndarray], n: int, seed: int = 0,
                      kinds: Sequence[str] = KINDS
                      ) -> list[tuple[np.ndarray, np.ndarray, str, float]]:
    """``synthetic_defects`` with each defect's kind and blend strength (1.0 where a faint blend
    kept the full change): (image, mask, kind, strength)."""
    if not len(goods):
        raise DataError("synthetic defects need at least one good image")
    rng = np.random.default_rng(seed)
    described = []
    for i in range(n):
        base = goods[i % len(goods)]
        source = goods[(i + 1) % len(goods)] if len(goods) > 1 else base
        if source.shape != base.shape:
            source = base
        defective, _, kind = synthesize_defect(base, rng, [source], kinds)
        strength = STRENGTHS[i % len(STRENGTHS)]
        image = blend(base, defective, strength)
        mask = (image != base).any(axis=2)
        if mask.sum() < 4:  # a faint blend of a faint change: keep the full change instead
            image, mask, strength = defective, (defective != base).any(axis=2), 1.0
        described.append((image, mask, kind, strength))
    return described
