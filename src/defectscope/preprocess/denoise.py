"""Denoising step: OpenCV median, bilateral or non-local means filtering, with parameters.

>>> import numpy as np
>>> image = np.full((8, 8, 3), 100, np.uint8); image[3, 3] = 255
>>> int(Denoise(method="median", size=3).apply(image, {})[0].max())
100
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import cv2

from defectscope.preprocess.steps import Step, check_choice, check_odd, check_range, register_step


@register_step
@dataclasses.dataclass(frozen=True)
class Denoise(Step):
    """OpenCV denoising: ``median`` (``size``), ``bilateral`` (``size`` = diameter,
    ``sigma_color``, ``sigma_space``) or ``nlmeans`` (``strength`` = h, ``template``, ``search``)."""

    name: ClassVar[str] = "denoise"
    method: str = "median"
    size: int = 3
    sigma_color: float = 25.0
    sigma_space: float = 5.0
    strength: float = 5.0
    template: int = 7
    search: int = 21

    def validate(self) -> None:
        check_choice(self.name, "method", self.method, ("median", "bilateral", "nlmeans"))
        check_range(self.name, "size", self.size, 1, 31)
        if self.method == "median":
            check_odd(self.name, "size", self.size)
        check_range(self.name, "sigma_color", self.sigma_color, 0.1, 500.0)
        check_range(self.name, "sigma_space", self.sigma_space, 0.1, 500.0)
        check_range(self.name, "strength", self.strength, 0.1, 100.0)
        check_range(self.name, "template", self.template, 3, 21)
        check_odd(self.name, "template", self.template)
        check_range(self.name, "search", self.search, 3, 51)
        check_odd(self.name, "search", self.search)

    def apply(self, image, state):
        if self.method == "median":
            return cv2.medianBlur(image, int(self.size)), None
        if self.method == "bilateral":
            return cv2.bilateralFilter(image, int(self.size), self.sigma_color,
                                       self.sigma_space), None
        return cv2.fastNlMeansDenoisingColored(image, None, self.strength, self.strength,
                                               int(self.template), int(self.search)), None
