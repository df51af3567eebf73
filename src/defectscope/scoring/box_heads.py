"""The box models' scoring heads: what follows the network, up to detections and the verdict.

- ``ReferenceHead`` (reference comparison): the part against its template (or the bundle's
  golden template), candidate windows, the window network (``forward``: logits, box fractions),
  boxes decoded to the image's frame (``defectscope.scoring.reference_detect``);
- ``DetectorHead`` (FCOS): preprocessing, one padded batch through ``forward`` (FCOS's raw head
  outputs), points, box decoding, NMS, rescaling (``defectscope.scoring.fcos``).

Both share ``BoxHead``'s decision: the image score is the best box's confidence (0.0 with no
box), NG when a box reaches the threshold, UNSURE when the part cannot be aligned to its
template (``defectscope.scoring.detection``).
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from defectscope.errors import BundleError, ConfigError, DefectscopeError
from defectscope.scoring.detection import best_confidence, boxes_result, missing_template
from defectscope.scoring.fcos import FcosSettings, detect_images
from defectscope.scoring.heads import (
    BOXES_NAME,
    FCOS_OUTPUTS,
    LOGITS_NAME,
    Forward,
    Head,
    class_names,
)
from defectscope.scoring.reference_detect import (
    GOLDEN_TEMPLATE_KEY,
    ReferenceSettings,
    detect_boxes,
)
from defectscope.values import Detection


class BoxHead(Head):
    """What the box models' heads share: score, verdict and timings from ``detect``."""

    min_confidence: float  # the lowest confidence ``detect`` lists

    def detect(self, forward: Forward, image: np.ndarray, template: np.ndarray | None = None
               ) -> list[Detection]:
        """Every box at or above ``min_confidence``, most confident first."""
        raise NotImplementedError

    def anomaly(self, forward, image, template=None):
        """(score, None, timings ms): the best box's confidence, 0.0 when no box is found."""
        started = time.perf_counter()
        detections = self.detect(forward, image, template)
        return best_confidence(detections), None, {
            "detect": (time.perf_counter() - started) * 1e3}

    def predict(self, forward, image, threshold, unsure_band, template=None):
        """Boxes at or above the threshold, verdict and defect type; UNSURE with the reason
        when the part cannot be aligned to its template."""
        return boxes_result(lambda: self.detect(forward, image, template), threshold,
                            unsure_band)


def _settings(kind, config, what: str):
    try:
        return kind.from_config(config)
    except (ConfigError, TypeError, ValueError) as error:
        raise BundleError(f"invalid {what} config ({error})") from error


class ReferenceHead(BoxHead):
    """Golden-template comparison around the window network (see the module docstring)."""

    outputs = (LOGITS_NAME, BOXES_NAME)
    takes_template = True

    def __init__(self, classes: Sequence[str], settings: ReferenceSettings,
                 golden_template: np.ndarray | None = None, name: str = "reference") -> None:
        self.classes: tuple[str, ...] = tuple(classes)
        self.settings = settings
        self.min_confidence = settings.min_confidence
        self.golden_template = golden_template
        self.name = name

    @classmethod
    def from_bundle(cls, name, config, arrays, preprocessor) -> "ReferenceHead":
        template = arrays.get(GOLDEN_TEMPLATE_KEY)
        return cls(class_names(arrays, "reference model"),
                   _settings(ReferenceSettings, config, "reference model"),
                   None if template is None else np.array(template, np.uint8), name)

    def detect(self, forward, image, template=None):
        """Against ``template``, else the golden template; without either, the error that says
        how to give one."""
        if template is None:
            template = self.golden_template
        if template is None:
            raise missing_template(self.name)
        return detect_boxes(image, template, self.settings, self.classes, forward)


class DetectorHead(BoxHead):
    """The learned detector's decoding after FCOS's head outputs (see the module docstring)."""

    outputs = FCOS_OUTPUTS

    def __init__(self, preprocessor, classes: Sequence[str], settings: FcosSettings) -> None:
        self.preprocessor = preprocessor
        self.classes: tuple[str, ...] = tuple(classes)
        self.settings = settings
        self.min_confidence = settings.min_confidence

    @classmethod
    def from_bundle(cls, name, config, arrays, preprocessor) -> "DetectorHead":
        return cls(preprocessor, class_names(arrays, "detector"),
                   _settings(FcosSettings, config, "detector"))

    def detect_many(self, forward: Forward, images: Sequence[np.ndarray]
                    ) -> list[list[Detection]]:
        """``detect`` for several images in one padded batch."""
        return detect_images(images, self.preprocessor, forward, self.classes, self.settings)

    def detect(self, forward, image, template=None):
        """``template`` is not used: this model needs none."""
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
            raise DefectscopeError(f"detect needs an H x W or H x W x C image array, got "
                                   f"{getattr(image, 'shape', type(image))}")
        return self.detect_many(forward, [image])[0]
