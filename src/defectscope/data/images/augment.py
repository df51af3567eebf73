"""Augmentation applied to an image and its mask together (the same geometry for both).

Works on the preprocessed float array (3 x H x W, normalised), so training sees exactly what
inference sees, plus the random changes. Geometric steps move the mask too; photometric steps
(brightness/contrast, blur, noise) touch the image only.

>>> image, mask = augment(image, mask, AugmentConfig(), np.random.default_rng(0))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations to use; probabilities are per image."""

    hflip: bool = True
    vflip: bool = True
    rot90: bool = True  # only on square inputs
    affine: float = 0.5  # probability of a small rotation / scale / shift
    max_degrees: float = 10.0
    brightness_contrast: float = 0.5
    blur: float = 0.2
    noise: float = 0.2

    @classmethod
    def none(cls) -> "AugmentConfig":
        return cls(False, False, False, 0.0, 0.0, 0.0, 0.0, 0.0)


def augment(image: np.ndarray, mask: np.ndarray | None, config: AugmentConfig,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """A randomly changed copy of ``image`` (3 x H x W float) and ``mask`` (H x W, or None)."""
    hwc = np.ascontiguousarray(image.transpose(1, 2, 0), dtype=np.float32)
    m = None if mask is None else np.ascontiguousarray(mask, dtype=np.uint8)
    if config.hflip and rng.random() < 0.5:
        hwc, m = hwc[:, ::-1], None if m is None else m[:, ::-1]
    if config.vflip and rng.random() < 0.5:
        hwc, m = hwc[::-1], None if m is None else m[::-1]
    if config.rot90 and hwc.shape[0] == hwc.shape[1]:
        k = int(rng.integers(4))
        hwc, m = np.rot90(hwc, k), None if m is None else np.rot90(m, k)
    hwc = np.ascontiguousarray(hwc)
    m = None if m is None else np.ascontiguousarray(m)
    if rng.random() < config.affine:
        h, w = hwc.shape[:2]
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-1, 1) * config.max_degrees,
                                         rng.uniform(0.9, 1.1))
        matrix[:, 2] += rng.uniform(-0.05, 0.05, 2) * (w, h)
        hwc = cv2.warpAffine(hwc, matrix, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT_101)
        if m is not None:
            m = cv2.warpAffine(m, matrix, (w, h), flags=cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_REFLECT_101)
    if rng.random() < config.brightness_contrast:
        hwc = hwc * rng.uniform(0.8, 1.2) + rng.uniform(-0.2, 0.2)
    if rng.random() < config.blur:
        hwc = cv2.GaussianBlur(hwc, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < config.noise:
        hwc = hwc + rng.normal(0, 0.05, hwc.shape).astype(np.float32)
    out = np.ascontiguousarray(hwc.transpose(2, 0, 1), dtype=np.float32)
    return out, (None if m is None else m.astype(bool))
