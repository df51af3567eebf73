"""The one preprocessing definition a model uses in training, evaluation and inspection.

A ``PreprocessConfig`` is stored in the bundle; ``Preprocessor`` turns a decoded RGB image into the
network input (float32, C x H x W, normalised) and remembers nothing between calls. It is numpy
and OpenCV only, so the torch-free runtime can use the very same code.

Brightness/contrast: ``normalise`` (see ``defectscope.preprocess.normalise``) is applied to every
image after resizing, identically in fit and inspection, because it lives here.

Resize modes:
- ``"square"``: stretch to ``image_size`` x ``image_size`` (fixed positions; PaDiM needs this).
- ``"keep_aspect"``: scale so the shorter side is ``image_size`` while the longer side is at most
  ``max_side``, both rounded to a multiple of ``multiple``. Elongated parts keep their detail
  instead of being squashed.

>>> pre = Preprocessor(PreprocessConfig(image_size=64, resize="keep_aspect", max_side=128))
>>> pre.input_size((100, 300))
(64, 128)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import cv2
import numpy as np

from defectscope.errors import ConfigError, ImageReadError
from defectscope.preprocess.normalise import NORMALISE_METHODS, normalise_image

RESIZE_MODES = ("square", "keep_aspect")


@dataclass(frozen=True)
class PreprocessConfig:
    image_size: int = 256
    resize: str = "square"
    max_side: int = 512
    multiple: int = 16
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    normalise: str = "none"  # "none" keeps bundles written before this option unchanged
    steps: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ConfigError(f"resize must be one of {RESIZE_MODES}, not {self.resize!r}")
        if not 16 <= self.image_size <= 4096:
            raise ConfigError(f"image_size {self.image_size} out of range 16..4096")
        if self.max_side < self.image_size:
            raise ConfigError(f"max_side {self.max_side} is smaller than image_size {self.image_size}")
        if self.normalise not in NORMALISE_METHODS:
            raise ConfigError(
                f"normalise must be one of {NORMALISE_METHODS}, not {self.normalise!r}"
            )
        if self.multiple < 1:
            raise ConfigError("multiple must be >= 1")
        if self.steps:
            raise ConfigError(
                "preprocessing steps (normalise, align, denoise, crop, tile) are not available yet"
            )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        data["steps"] = [dict(step) for step in self.steps]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PreprocessConfig":
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown preprocessing options: {sorted(unknown)}")
        values = dict(data)
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        if "steps" in values:
            values["steps"] = tuple(values["steps"])
        return cls(**values)


def _round(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


class Preprocessor:
    """Applies a ``PreprocessConfig``; pure: the same image always gives the same array."""

    def __init__(self, config: PreprocessConfig) -> None:
        self.config = config
        self._mean = np.asarray(config.mean, np.float32).reshape(3, 1, 1)
        self._scale = 1.0 / (255.0 * np.asarray(config.std, np.float32).reshape(3, 1, 1))

    def input_size(self, image_shape: tuple[int, ...]) -> tuple[int, int]:
        """The (height, width) the network sees for an image of ``image_shape``."""
        c = self.config
        if c.resize == "square":
            return c.image_size, c.image_size
        height, width = image_shape[:2]
        scale = c.image_size / min(height, width)
        scale = min(scale, c.max_side / max(height, width))
        return _round(height * scale, c.multiple), _round(width * scale, c.multiple)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """RGB uint8 H x W x 3 -> float32 3 x h x w, normalised with the backbone's mean and std."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise ImageReadError("<array>", "expected a uint8 image", "load it with load_image")
        if image.ndim != 3 or image.shape[2] != 3:
            raise ImageReadError("<array>", f"expected H x W x 3, got {image.shape}")
        height, width = self.input_size(image.shape)
        if (height, width) != image.shape[:2]:
            interpolation = cv2.INTER_AREA if height < image.shape[0] else cv2.INTER_LINEAR
            image = cv2.resize(image, (width, height), interpolation=interpolation)
        image = normalise_image(image, self.config.normalise)
        chw = image.transpose(2, 0, 1).astype(np.float32)
        return (chw - self._mean * 255.0) * self._scale
