"""Augmentation that moves boxes with the image: flips, 90-degree turns, zoom and shift,
brightness and contrast.

Why one affine matrix: flips, turns, zoom and shift compose into a single 2 x 3 matrix, so the
image is resampled once and the boxes go through exactly the same mapping (axis-aligned maps
keep boxes axis-aligned, so transforming two corners is exact). A box pushed mostly out of the
frame is dropped rather than kept as a sliver that would teach the detector to fire on edges.
The border is filled with the image's mean grey, not mirrored: a mirrored defect would be a
defect without a box.

Works on RGB uint8 images at native resolution, before ``defectscope.preprocess``, so training
and inspection share every later step.

>>> image, boxes, labels = augment_with_boxes(image, boxes, labels, BoxAugmentConfig(), rng)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from defectscope.errors import ConfigError


@dataclass(frozen=True)
class BoxAugmentConfig:
    """Which augmentations to use. ``scale_jitter`` 0.2 zooms by 0.8-1.2; ``shift`` moves by up
    to that fraction of the side; ``photometric`` is the probability of a brightness/contrast
    change of up to ``brightness`` grey levels and ``contrast`` relative gain."""

    hflip: bool = True
    vflip: bool = True
    rot90: bool = False  # only on square images; off by default: some defects have a direction
    scale_jitter: float = 0.2
    shift: float = 0.1
    photometric: float = 0.5
    brightness: float = 20.0
    contrast: float = 0.2
    min_visible: float = 0.4  # drop a box when less than this fraction of it stays in frame

    def __post_init__(self) -> None:
        for name in ("scale_jitter", "shift", "contrast"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"augmentation {name} must be in [0, 1), not "
                                  f"{getattr(self, name)}")
        if not 0.0 <= self.photometric <= 1.0 or not 0.0 < self.min_visible <= 1.0:
            raise ConfigError("augmentation photometric must be in [0, 1] and min_visible in "
                              "(0, 1]")
        if self.brightness < 0:
            raise ConfigError(f"augmentation brightness must be >= 0, not {self.brightness}")

    @classmethod
    def none(cls) -> "BoxAugmentConfig":
        return cls(False, False, False, 0.0, 0.0, 0.0)


def random_affine(height: int, width: int, config: BoxAugmentConfig,
                  rng: np.random.Generator) -> np.ndarray:
    """A 2 x 3 matrix mapping source pixels to augmented pixels, same image size."""
    centre = np.array([[1, 0, -width / 2], [0, 1, -height / 2], [0, 0, 1]], np.float64)
    back = np.array([[1, 0, width / 2], [0, 1, height / 2], [0, 0, 1]], np.float64)
    m = np.eye(3)
    if config.hflip and rng.random() < 0.5:
        m = np.diag([-1.0, 1.0, 1.0]) @ m
    if config.vflip and rng.random() < 0.5:
        m = np.diag([1.0, -1.0, 1.0]) @ m
    if config.rot90 and height == width:
        for _ in range(int(rng.integers(4))):
            m = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], np.float64) @ m
    scale = rng.uniform(1 - config.scale_jitter, 1 + config.scale_jitter)
    m = np.diag([scale, scale, 1.0]) @ m
    m = back @ m @ centre
    m[:2, 2] += rng.uniform(-config.shift, config.shift, 2) * (width, height)
    return m[:2]


def move_boxes(boxes: np.ndarray, matrix: np.ndarray, height: int, width: int,
               min_visible: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N x 4, x1 y1 x2 y2) through an axis-aligned ``matrix``, clipped to the frame;
    returns the moved boxes and a mask of the ones kept."""
    if not len(boxes):
        return boxes.reshape(0, 4), np.zeros(0, bool)
    corners = np.stack([boxes[:, [0, 1]], boxes[:, [2, 3]]], axis=1)  # N x 2 x 2
    moved = corners @ matrix[:, :2].T + matrix[:, 2]
    low, high = moved.min(axis=1), moved.max(axis=1)
    full = np.prod(high - low, axis=1)
    low = np.clip(low, 0, (width, height))
    high = np.clip(high, 0, (width, height))
    size = high - low
    keep = (size.min(axis=1) >= 1.0) & (np.prod(size, axis=1) >= min_visible * full)
    return np.concatenate([low, high], axis=1)[keep], keep


def augment_with_boxes(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
                       config: BoxAugmentConfig, rng: np.random.Generator
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A randomly changed copy of ``image`` (H x W x 3 uint8) with its ``boxes`` (N x 4 float,
    pixel x1 y1 x2 y2) and ``labels`` (N) moved along; boxes pushed out of frame are dropped."""
    height, width = image.shape[:2]
    matrix = random_affine(height, width, config, rng)
    fill = tuple(float(v) for v in image.reshape(-1, image.shape[2]).mean(axis=0))
    out = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    moved, keep = move_boxes(np.asarray(boxes, np.float64), matrix, height, width,
                             config.min_visible)
    if rng.random() < config.photometric:
        gain = rng.uniform(1 - config.contrast, 1 + config.contrast)
        offset = rng.uniform(-config.brightness, config.brightness)
        mean = out.mean()
        out = np.clip((out.astype(np.float32) - mean) * gain + mean + offset, 0, 255)
        out = out.astype(np.uint8)
    return out, moved.astype(np.float32), np.asarray(labels)[keep]
