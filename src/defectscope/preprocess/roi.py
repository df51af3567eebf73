"""Region of interest: a fixed box or polygon; pixels outside it never reach the model.

Coordinates are pixels of the image the step receives (``units="pixels"``) or fractions of its
width and height (``units="fraction"``). Placed after ``align``, the image is already in the
reference's frame, so the box is a box *relative to the aligned reference*: it follows the part.

``box`` is ``[x1, y1, x2, y2]`` (x2, y2 exclusive); ``polygon`` is ``[[x, y], ...]`` (at least
three points; pixels outside it are set to ``fill``). With ``crop=True`` (default) the image is
cut to the box, or to the polygon's bounding box.

>>> import numpy as np
>>> step = Roi(box=(2, 1, 6, 4))
>>> step.apply(np.zeros((8, 8, 3), np.uint8), {})[0].shape
(3, 4, 3)
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import cv2
import numpy as np

from defectscope.errors import ConfigError
from defectscope.preprocess.steps import Step, check_choice, check_range, register_step


@register_step
@dataclasses.dataclass(frozen=True)
class Roi(Step):
    name: ClassVar[str] = "roi"
    box: tuple[float, float, float, float] | None = None
    polygon: tuple[tuple[float, float], ...] | None = None
    units: str = "pixels"
    crop: bool = True
    fill: int = 0

    def validate(self) -> None:
        check_choice(self.name, "units", self.units, ("pixels", "fraction"))
        check_choice(self.name, "crop", self.crop, (True, False))
        check_range(self.name, "fill", self.fill, 0, 255)
        if (self.box is None) == (self.polygon is None):
            raise ConfigError("preprocessing step 'roi': give exactly one of box or polygon")
        high = 1.0 if self.units == "fraction" else 1e6
        if self.box is not None:
            if len(self.box) != 4:
                raise ConfigError("preprocessing step 'roi': box must be [x1, y1, x2, y2]")
            for field, value in zip(("x1", "y1", "x2", "y2"), self.box):
                check_range(self.name, f"box {field}", value, 0, high)
            if not (self.box[2] > self.box[0] and self.box[3] > self.box[1]):
                raise ConfigError(f"preprocessing step 'roi': box {list(self.box)} is empty "
                                  "(need x2 > x1 and y2 > y1)")
        else:
            if len(self.polygon) < 3 or any(len(p) != 2 for p in self.polygon):
                raise ConfigError("preprocessing step 'roi': polygon needs >= 3 [x, y] points")
            for point in self.polygon:
                for value in point:
                    check_range(self.name, "polygon coordinate", value, 0, high)

    def _points(self, shape) -> np.ndarray:
        h, w = shape[:2]
        scale = np.array([w, h], np.float64) if self.units == "fraction" else np.ones(2)
        if self.box is not None:
            x1, y1, x2, y2 = self.box
            return np.array([[x1, y1], [x2, y2]], np.float64) * scale
        return np.asarray(self.polygon, np.float64) * scale

    def apply(self, image, state):
        h, w = image.shape[:2]
        points = self._points(image.shape)
        out = image
        if self.polygon is not None:
            mask = np.zeros((h, w), np.uint8)
            cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
            out = np.where(mask[..., None] > 0, image, np.uint8(self.fill)).astype(np.uint8)
        if not self.crop:
            return out, None
        x1, y1 = np.floor(points.min(axis=0)).astype(int)
        x2, y2 = np.ceil(points.max(axis=0)).astype(int)
        if self.polygon is not None:
            x2, y2 = x2 + 1, y2 + 1  # fillPoly includes the boundary pixel
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        if x2 - x1 < 1 or y2 - y1 < 1:
            raise ConfigError(f"preprocessing step 'roi': the region lies outside the "
                              f"{h}x{w} image")
        matrix = np.array([[1, 0, -x1], [0, 1, -y1], [0, 0, 1]], np.float64)
        return np.ascontiguousarray(out[y1:y2, x1:x2]), matrix
