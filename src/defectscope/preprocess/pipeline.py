"""The one preprocessing definition a model uses in training, evaluation and inspection.

A ``PreprocessConfig`` is stored in the bundle; ``Preprocessor`` turns a decoded RGB image into the
network input (float32, C x H x W, normalised) and remembers nothing between calls. It is numpy
and OpenCV only, so the torch-free runtime can use the very same code.

Two stages:
- ``prepare(image)`` runs the declarative ``steps`` (``defectscope.preprocess.steps``: colour,
  resize, normalise, denoise, roi, align) at native resolution and returns a ``Prepared`` image
  with the matrix mapping original pixel coordinates to prepared ones;
- ``to_input(image)`` resizes to the network input, applies ``normalise`` and the backbone's
  mean/std. Large prepared images are cut into tiles first (``tiles``; see ``tiling``).

Steps that learn (the golden reference of ``align``, the reference histogram of ``normalise``
with ``method="histogram"``) are fitted with ``fit(images)``; ``arrays()``/``restore(arrays)``
round-trip that learned state through the bundle.

Brightness/contrast: ``normalise`` (see ``defectscope.preprocess.normalise``) is applied to every
image after resizing, identically in fit and inspection, because it lives here.

Resize modes:
- ``"square"``: stretch to ``image_size`` x ``image_size`` (fixed positions; PaDiM needs this).
- ``"keep_aspect"``: scale so the shorter side is ``image_size`` while the longer side is at most
  ``max_side``, both rounded to a multiple of ``multiple``. Elongated parts keep their detail
  instead of being squashed.

>>> pre = Preprocessor(PreprocessConfig(image_size=64, resize="keep_aspect", max_side=128))
>>> pre.input_size((100, 300))  # capped by max_side
(48, 128)
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from defectscope.errors import BundleError, ConfigError, DefectscopeError, ImageReadError
from defectscope.preprocess import align as _align  # noqa: F401  (registers the step)
from defectscope.preprocess import denoise as _denoise  # noqa: F401  (registers the step)
from defectscope.preprocess import roi as _roi  # noqa: F401  (registers the step)
from defectscope.preprocess.normalise import NORMALISE_METHODS, normalise_image
from defectscope.preprocess.steps import Colour, Step, parse_steps
from defectscope.preprocess.tiling import Tile, plan_tiles

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
    steps: tuple[Step, ...] = field(default_factory=tuple)  # dicts are parsed into steps

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
        object.__setattr__(self, "steps", parse_steps(self.steps))

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "steps"}
        data["mean"], data["std"] = list(self.mean), list(self.std)
        data["steps"] = [step.to_dict() for step in self.steps]
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


@dataclass(frozen=True)
class Prepared:
    """An image after the steps; ``matrix`` maps original pixel coordinates onto it (None: the
    steps did not move pixels)."""

    image: np.ndarray
    matrix: np.ndarray | None = None


class Preprocessor:
    """Applies a ``PreprocessConfig``; pure: the same image always gives the same array."""

    def __init__(self, config: PreprocessConfig) -> None:
        self.config = config
        self._mean = np.asarray(config.mean, np.float32).reshape(3, 1, 1)
        self._scale = 1.0 / (255.0 * np.asarray(config.std, np.float32).reshape(3, 1, 1))
        steps = config.steps
        self.tile: Tile = steps[-1] if steps and isinstance(steps[-1], Tile) else Tile()
        self.steps: tuple[Step, ...] = tuple(s for s in steps if not isinstance(s, Tile))
        self.state_: dict[str, np.ndarray] = {}

    # -- learned state -------------------------------------------------------------------------
    def _keys(self) -> list[tuple[int, Step, str, str]]:
        return [(i, step, key, f"{i}.{step.name}.{key}")
                for i, step in enumerate(self.steps) for key in step.learned_keys()]

    @property
    def needs_fit(self) -> bool:
        return bool(self._keys())

    def fit(self, images: Sequence[np.ndarray]) -> "Preprocessor":
        """Learn each step's state from ``images`` passed through the steps before it."""
        images = list(images)
        if not images:
            raise DefectscopeError("the preprocessor needs at least one image to learn from")
        self.state_ = {}
        for i, step in enumerate(self.steps):
            for key, value in step.learn(images).items():
                self.state_[f"{i}.{step.name}.{key}"] = np.ascontiguousarray(value)
            if i + 1 < len(self.steps):
                images = [self._apply(i, step, image)[0] for image in images]
        return self

    def arrays(self) -> dict[str, np.ndarray]:
        """The learned state, keyed ``"<index>.<step>.<key>"`` (e.g. ``"0.align.reference"``)."""
        return dict(self.state_)

    def restore(self, arrays: Mapping[str, np.ndarray]) -> "Preprocessor":
        """The inverse of ``arrays()``; a missing learned array raises ``BundleError``."""
        state = {}
        for i, step, key, full in self._keys():
            if full not in arrays:
                what = "reference image" if key == "reference" else f"learned {key!r}"
                raise BundleError(f"preprocessing step {i} {step.name!r}: its {what} "
                                  f"({full}) is missing from the bundle; copy the whole model "
                                  "folder or retrain")
            state[full] = np.ascontiguousarray(arrays[full])
        self.state_ = state
        return self

    def _apply(self, i: int, step: Step, image: np.ndarray):
        state = {}
        for key in step.learned_keys():
            full = f"{i}.{step.name}.{key}"
            if full not in self.state_:
                raise DefectscopeError(f"preprocessing step {i} {step.name!r} has not learned its "
                                       f"{key}; fit the model (or the preprocessor) first")
            state[key] = self.state_[full]
        return step.apply(image, state)

    # -- applying ------------------------------------------------------------------------------
    def prepare(self, image: np.ndarray) -> Prepared:
        """Run the steps at native resolution (raises ``AlignmentError`` when alignment fails)."""
        if not (self.steps and isinstance(self.steps[0], Colour)):
            _check_rgb8(image)
        matrix = None
        for i, step in enumerate(self.steps):
            image, moved = self._apply(i, step, image)
            if moved is not None:
                matrix = moved if matrix is None else moved @ matrix
        return Prepared(image=image, matrix=matrix)

    def tiles(self, shape: tuple[int, ...]):
        """Tile boxes for a prepared image of ``shape``, or None to score it whole."""
        return plan_tiles(shape, self.tile, self.config.image_size, max(self.input_size(shape)))

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
        """RGB uint8 H x W x 3 -> float32 3 x h x w: the steps, then ``to_input`` (no tiling)."""
        return self.to_input(self.prepare(image).image)

    def to_input(self, image: np.ndarray) -> np.ndarray:
        """A prepared image (or tile) -> network input, normalised with the backbone's mean/std."""
        _check_rgb8(image)
        height, width = self.input_size(image.shape)
        if (height, width) != image.shape[:2]:
            interpolation = cv2.INTER_AREA if height < image.shape[0] else cv2.INTER_LINEAR
            image = cv2.resize(image, (width, height), interpolation=interpolation)
        image = normalise_image(image, self.config.normalise)
        chw = image.transpose(2, 0, 1).astype(np.float32)
        return (chw - self._mean * 255.0) * self._scale


def _check_rgb8(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ImageReadError("<array>", "expected a uint8 image",
                             "load it with load_image, or start the steps with 'colour'")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageReadError("<array>", f"expected H x W x 3, got {image.shape}",
                             "start the steps with 'colour' to convert grey or 16-bit images")
