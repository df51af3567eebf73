"""The decision threshold every model family carries, and the fitted-or-not check.

Anomaly, supervised and detection models differ in what they learn but decide the same way: a
score against one threshold, with the calibration record that chose it kept beside it for the
bundle. This mixin holds that part once.

>>> class Demo(Thresholded):
...     name = "demo"
...     is_fitted = True
>>> Demo().set_threshold(0.5, {"rule": "fixed"}).threshold
0.5
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import numpy as np

from defectscope.errors import ConfigError, DefectscopeError


class Thresholded:
    """``threshold`` / ``set_threshold`` and ``_check_fitted`` for a model class.

    Subclasses provide ``name`` and ``is_fitted``; one whose scores live in a fixed range
    overrides ``_check_threshold``.
    """

    name: ClassVar[str] = ""

    @property
    def threshold(self) -> float | None:
        return getattr(self, "threshold_", None)

    def _check_threshold(self, threshold: float) -> None:
        if not np.isfinite(threshold):
            raise ConfigError(f"threshold must be a finite number, not {threshold}")

    def set_threshold(self, threshold: float, calibration: Mapping[str, Any] | None = None):
        """Use ``threshold`` from now on; ``calibration`` records how it was chosen."""
        self._check_threshold(threshold)
        self.threshold_ = float(threshold)
        self.calibration_ = dict(calibration or {})
        return self

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise DefectscopeError(f"{self.name} is not fitted: call fit() or load a bundle")
