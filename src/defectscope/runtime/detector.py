"""The learned detector in the runtime: FCOS up to its head outputs in ONNX, decoding in numpy.

The ONNX file is ``detector_net.HeadOutputs`` (a padded float32 batch N x 3 x H x W, N, H and W
dynamic -> ``cls_logits`` N x P x K, ``bbox_regression`` N x P x 4, ``bbox_ctrness`` N x P x 1
and ``level_sizes`` L x 2); preprocessing, padding, the points, scores, box decoding, NMS and the
rescaling to the image are ``defectscope.scoring.fcos.detect_images``, the function
``BoxDetector.detect`` calls, and the verdict is ``defectscope.scoring.detection``'s.

>>> model = RuntimeModel.load("models/neu")        # doctest: +SKIP
>>> model.predict(image).detections                # doctest: +SKIP
(Detection(box=(12.5, 40.1, 88.0, 61.7), label='scratches', confidence=0.91),)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from defectscope.errors import BundleError, ConfigError, DefectscopeError
from defectscope.preprocess import Preprocessor
from defectscope.runtime.engine import (
    DEFAULT_TOLERANCE,
    FCOS_OUTPUTS,
    INPUT_NAME,
    read_class_names,
)
from defectscope.runtime.reference import BoxRuntime
from defectscope.scoring.fcos import FcosSettings, detect_images
from defectscope.types import Detection


class DetectorRuntime(BoxRuntime):
    """The detector's ONNX head outputs + the shared numpy decoding (see the module docstring)."""

    output_name = FCOS_OUTPUTS[0]

    def __init__(self, model_dir: Path, info: dict[str, Any], session,
                 preprocessor: Preprocessor, tolerance: float = DEFAULT_TOLERANCE, *,
                 classes: Sequence[str], settings: FcosSettings) -> None:
        super().__init__(model_dir, info, session, preprocessor, tolerance)
        self.classes: tuple[str, ...] = tuple(classes)
        self.settings = settings

    @classmethod
    def from_arrays(cls, model_dir, info, arrays, session, preprocessor, tolerance):
        classes = read_class_names(model_dir, arrays, "detector")
        try:
            settings = FcosSettings.from_config(info["model"]["config"])
        except (ConfigError, TypeError, ValueError) as error:
            raise BundleError(f"{model_dir}: invalid detector config ({error})") from error
        return cls(model_dir, info, session, preprocessor, tolerance, classes=classes,
                   settings=settings)

    def forward(self, batch: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The ONNX network on a padded batch: FCOS's head outputs and the level sizes."""
        logits, regression, centerness, sizes = self.session.run(list(FCOS_OUTPUTS),
                                                                 {INPUT_NAME: batch})
        return logits, regression, centerness, sizes

    def detect_many(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """``detect`` for several images in one padded batch."""
        return detect_images(images, self.preprocessor, self.forward, self.classes,
                             self.settings)

    def detect(self, image: np.ndarray, template: np.ndarray | None = None) -> list[Detection]:
        """Every box at or above ``min_confidence``, most confident first (as the torch model's
        ``detect``; ``template`` is not used)."""
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
            raise DefectscopeError(f"detect needs an H x W or H x W x C image array, got "
                                   f"{getattr(image, 'shape', type(image))}")
        return self.detect_many([image])[0]
