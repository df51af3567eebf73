"""The one predictor: a network forward (any backend) + the family's scoring head + the decision.

Every model inspects a part through a ``Predictor``: the torch models with their network wrapped
as a numpy function (``defectscope.models.contract``), the torch-free runtime with an ONNX Runtime
session or an OpenVINO compiled model (``defectscope.runtime``). What happens after the network,
and the result it builds, is the head's (``defectscope.scoring.heads``), the same for both.

>>> predictor = Predictor("padim", head, forward, threshold=0.7, unsure_band=0.05)  # doctest: +SKIP
>>> predictor.predict(image).verdict                                               # doctest: +SKIP
<Verdict.OK: 'OK'>
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from defectscope.errors import DefectscopeError
from defectscope.scoring.heads import Forward, Head, Timings
from defectscope.values import InspectionResult


@dataclass(frozen=True)
class Predictor:
    """``name``'s head over ``forward``, deciding at ``threshold`` (None: not calibrated yet)."""

    name: str
    head: Head
    forward: Forward
    threshold: float | None
    unsure_band: float = 0.0

    def anomaly(self, image: np.ndarray, template: np.ndarray | None = None
                ) -> tuple[float, np.ndarray | None, Timings]:
        """(image score, map at the image's size or None, timings ms) of one RGB uint8 image."""
        return self.head.anomaly(self.forward, image, template)

    def predict(self, image: np.ndarray, template: np.ndarray | None = None) -> InspectionResult:
        """Score, verdict and what else the family reports; needs a threshold."""
        if self.threshold is None:
            raise DefectscopeError(f"{self.name} has no decision threshold yet; set_threshold() "
                                   "or train it with defectscope train")
        return self.head.predict(self.forward, image, self.threshold, self.unsure_band,
                                 template)
