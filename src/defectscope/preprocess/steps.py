"""Declarative preprocessing steps: small, typed, validated, pure.

A pipeline is an ordered list of steps stored in ``PreprocessConfig.steps`` (and so in the
bundle). Each step is a frozen dataclass with a ``name``; ``parse_step`` builds one from a dict
such as ``{"name": "denoise", "method": "median", "size": 5}``, and ``step.to_dict()`` gives the
dict back. Steps run on the decoded image at native resolution, before tiling and before the
resize to the network input.

``apply(image, state)`` returns the new image and, for steps that move pixels, the 3 x 3 matrix
that maps input pixel coordinates to output coordinates (so anomaly maps can be mapped back onto
the original image). Steps that learn something from the training images (the golden reference
of ``align``, the reference histogram of ``normalise`` with ``method="histogram"``) say so in
``learned_keys()``; ``learn(images)`` returns those arrays, which travel in the bundle.

Step names: ``colour``, ``resize``, ``normalise`` (here), ``denoise`` (denoise.py), ``roi`` (roi.py),
``align`` (align.py), ``tile`` (tiling.py).

>>> step = parse_step({"name": "denoise", "method": "median", "size": 3})
>>> parse_step(step.to_dict()) == step
True
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping, Sequence

import cv2
import numpy as np

from defectscope.errors import ConfigError, ImageReadError
from defectscope.preprocess import normalise as norm

STEP_TYPES: dict[str, type["Step"]] = {}


def register_step(cls: type["Step"]) -> type["Step"]:
    STEP_TYPES[cls.name] = cls
    return cls


def check_range(step: str, field: str, value: float, low: float, high: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"preprocessing step {step!r}: {field}={value!r} is out of range; "
                          f"valid range {low}..{high}")


def check_choice(step: str, field: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ConfigError(f"preprocessing step {step!r}: {field}={value!r} is not valid; "
                          f"choose from {tuple(choices)}")


def check_odd(step: str, field: str, value: int) -> None:
    if int(value) % 2 != 1:
        raise ConfigError(f"preprocessing step {step!r}: {field}={value} must be odd")


@dataclasses.dataclass(frozen=True)
class Step:
    """Base class: subclasses set ``name``, add fields, and override ``validate``/``apply``."""

    name: ClassVar[str] = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the step and the valid range of a bad parameter."""

    def learned_keys(self) -> tuple[str, ...]:
        return ()

    def learn(self, images: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        return {}

    def apply(self, image: np.ndarray, state: Mapping[str, np.ndarray]):
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        for field in dataclasses.fields(self):
            data[field.name] = _plain(getattr(self, field.name))
        return data


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _frozen(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _register_all() -> None:
    """Import the modules whose steps register themselves (they import this module)."""
    from defectscope.preprocess import align, denoise, roi, tiling  # noqa: F401


def parse_step(data: "Mapping[str, Any] | Step") -> Step:
    """A step from its dict form; unknown names or parameters raise ``ConfigError``."""
    if isinstance(data, Step):
        return data
    _register_all()
    if not isinstance(data, Mapping) or "name" not in data:
        raise ConfigError(f"a preprocessing step must be a mapping with a 'name', not {data!r}; "
                          f"valid names: {sorted(STEP_TYPES)}")
    name = data["name"]
    if name not in STEP_TYPES:
        raise ConfigError(f"unknown preprocessing step {name!r}; valid names: {sorted(STEP_TYPES)}")
    cls = STEP_TYPES[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    options = {k: v for k, v in data.items() if k != "name"}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(f"preprocessing step {name!r}: unknown parameters {unknown}; "
                          f"valid parameters: {sorted(fields)}")
    try:
        return cls(**{k: _frozen(v) for k, v in options.items()})
    except TypeError as error:
        raise ConfigError(f"preprocessing step {name!r}: {error}") from error


def parse_steps(steps: Sequence["Mapping[str, Any] | Step"]) -> tuple[Step, ...]:
    """Parse a list of steps and check their order (``tile`` may only come last)."""
    if isinstance(steps, (str, bytes, Mapping)):
        raise ConfigError("preprocessing steps must be a list of steps")
    parsed = tuple(parse_step(step) for step in steps)
    names = [step.name for step in parsed]
    if "tile" in names[:-1]:
        raise ConfigError("preprocessing step 'tile' must be the last step")
    if names.count("align") > 1:
        raise ConfigError("preprocessing step 'align' may appear only once")
    return parsed


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """Any integer image -> uint8 RGB, with the same rules as ``data.images.load_image``.

    Grey (H x W or H x W x 1) is replicated to three channels; 16-bit is scaled with
    ``v8 = round(v / 257)``; a fourth (alpha) channel is dropped.
    """
    array = np.asarray(image)
    if array.dtype == np.uint16:
        array = np.clip(np.round(array.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
    if array.dtype != np.uint8:
        raise ImageReadError("<array>", f"cannot convert {array.dtype} pixels to 8 bit",
                             "give uint8 or uint16 images")
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ImageReadError("<array>", f"expected H x W, H x W x 1, 3 or 4, got {array.shape}")
    if array.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(array, 3, axis=2))
    return np.ascontiguousarray(array[..., :3])


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


@register_step
@dataclasses.dataclass(frozen=True)
class Colour(Step):
    """Colour handling: ``rgb`` (16-bit/grey/alpha -> 8-bit RGB) or ``grayscale`` (3 equal channels)."""

    name: ClassVar[str] = "colour"
    mode: str = "rgb"

    def validate(self) -> None:
        check_choice(self.name, "mode", self.mode, ("rgb", "grayscale"))

    def apply(self, image, state):
        rgb = to_rgb8(image)
        if self.mode == "grayscale":
            rgb = np.repeat(grey(rgb)[..., None], 3, axis=2)
        return rgb, None


@register_step
@dataclasses.dataclass(frozen=True)
class Resize(Step):
    """Resize at native stage: ``stretch`` to size x size or ``letterbox`` (keep aspect, pad)."""

    name: ClassVar[str] = "resize"
    size: int = 256
    mode: str = "letterbox"
    fill: int = 0

    def validate(self) -> None:
        check_range(self.name, "size", self.size, 16, 16384)
        check_choice(self.name, "mode", self.mode, ("stretch", "letterbox"))
        check_range(self.name, "fill", self.fill, 0, 255)

    def apply(self, image, state):
        h, w = image.shape[:2]
        s = self.size
        if self.mode == "stretch":
            out = cv2.resize(image, (s, s), interpolation=cv2.INTER_AREA if s < max(h, w)
                             else cv2.INTER_LINEAR)
            return out, np.diag([s / w, s / h, 1.0])
        scale = s / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1
                           else cv2.INTER_LINEAR)
        out = np.full((s, s, image.shape[2]), self.fill, np.uint8)
        top, left = (s - nh) // 2, (s - nw) // 2
        out[top:top + nh, left:left + nw] = small
        matrix = np.array([[nw / w, 0, left], [0, nh / h, top], [0, 0, 1]], np.float64)
        return out, matrix


@register_step
@dataclasses.dataclass(frozen=True)
class Normalise(Step):
    """Brightness/contrast: ``percentile`` (``low``/``high`` percentiles -> ``out_low``/``out_high``;
    with ``clip``, values beyond those percentiles are clipped first), ``standardise``, ``clahe`` (``clip_limit``, ``tiles``), or ``histogram``: match the grey-level
    histogram of each image to the mean histogram of the training images (learned)."""

    name: ClassVar[str] = "normalise"
    method: str = "percentile"
    low: float = 1.0
    high: float = 99.0
    out_low: float = 28.0
    out_high: float = 228.0
    clip_limit: float = 2.0
    tiles: int = 8
    clip: bool = False

    def validate(self) -> None:
        if not isinstance(self.clip, bool):
            raise ConfigError(f"preprocessing step 'normalise': clip must be true or false, not "
                              f"{self.clip!r}")
        check_choice(self.name, "method", self.method,
                     ("percentile", "standardise", "clahe", "histogram"))
        check_range(self.name, "low", self.low, 0.0, 50.0)
        check_range(self.name, "high", self.high, 50.0, 100.0)
        if self.high <= self.low:
            raise ConfigError(f"preprocessing step 'normalise': high={self.high} must exceed "
                              f"low={self.low}")
        check_range(self.name, "out_low", self.out_low, 0.0, 254.0)
        check_range(self.name, "out_high", self.out_high, self.out_low + 1, 255.0)
        check_range(self.name, "clip_limit", self.clip_limit, 0.1, 100.0)
        check_range(self.name, "tiles", self.tiles, 1, 64)

    def learned_keys(self) -> tuple[str, ...]:
        return ("cdf",) if self.method == "histogram" else ()

    def learn(self, images):
        if self.method != "histogram":
            return {}
        return {"cdf": norm.mean_cdf([grey(to_rgb8(image)) for image in images])}

    def apply(self, image, state):
        if self.method == "percentile":
            out = norm.stretch_percentiles(image, (self.low, self.high),
                                           (self.out_low, self.out_high), clip=self.clip)
        elif self.method == "standardise":
            out = norm.standardise(image)
        elif self.method == "clahe":
            out = norm.clahe(image, self.clip_limit, self.tiles)
        else:
            out = norm.match_histogram(image, state["cdf"])
        return out, None
