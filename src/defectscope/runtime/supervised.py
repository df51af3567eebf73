"""The supervised models (classifier, segmenter) in the runtime: the whole network in ONNX, the
decision in numpy.

The ONNX file is the trained network end to end (``model.net_``: logits N x C for the classifier,
N x 1 x H x W for the segmenter); what turns logits into a score, a verdict, a defect type or a
probability map is ``defectscope.scoring``'s, the very functions the torch models call. The
preprocessing is the bundle's, applied whole (no tiling), as on the torch path. Build with
``RuntimeModel.load``, which picks these classes for classifier and segmenter bundles.

>>> model = RuntimeModel.load("models/neu")     # doctest: +SKIP
>>> model.predict(image).defect_type            # doctest: +SKIP
'scratch'
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from defectscope.errors import BundleError
from defectscope.preprocess import Preprocessor
from defectscope.runtime.engine import (
    DEFAULT_TOLERANCE,
    LOGITS_NAME,
    RuntimeModel,
    read_class_names,
)
from defectscope.scoring.classification import (
    class_probabilities,
    classification_result,
    not_good_score,
    probabilities_by_class,
)
from defectscope.scoring.segmentation import (
    defect_probabilities,
    segmentation_output,
    segmentation_result,
)
from defectscope.types import InspectionResult


class ClassifierRuntime(RuntimeModel):
    """The defect classifier: score = P(not good), defect type = the likeliest defect class."""

    output_name = LOGITS_NAME

    def __init__(self, model_dir: Path, info: dict[str, Any], session,
                 preprocessor: Preprocessor, tolerance: float = DEFAULT_TOLERANCE, *,
                 classes: Sequence[str]) -> None:
        super().__init__(model_dir, info, session, preprocessor, tolerance)
        self.classes: tuple[str, ...] = tuple(classes)

    @classmethod
    def from_arrays(cls, model_dir, info, arrays, session, preprocessor, tolerance):
        classes = read_class_names(model_dir, arrays, "classifier")
        return cls(model_dir, info, session, preprocessor, tolerance, classes=classes)

    def _probabilities(self, image: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        t0 = time.perf_counter()
        array = self.preprocessor(image)
        t1 = time.perf_counter()
        logits = self.run(array[None])
        t2 = time.perf_counter()
        probabilities = class_probabilities(logits[0])
        t3 = time.perf_counter()
        return probabilities, {"preprocess": (t1 - t0) * 1e3, "network": (t2 - t1) * 1e3,
                               "scoring": (t3 - t2) * 1e3}

    def probabilities(self, image: np.ndarray) -> dict[str, float]:
        """The class probabilities of one RGB uint8 image."""
        return probabilities_by_class(self._probabilities(image)[0], self.classes)

    def anomaly(self, image: np.ndarray) -> tuple[float, None, dict[str, float]]:
        """(score = probability of not good, no map, timings ms); 1.0 when no class is good."""
        probabilities, timings = self._probabilities(image)
        return not_good_score(probabilities, self.classes), None, timings

    def predict(self, image: np.ndarray) -> InspectionResult:
        """Score, verdict and, unless OK, the likeliest defect type (as the torch model)."""
        probabilities, timings = self._probabilities(image)
        return classification_result(probabilities, self.classes, self.threshold,
                                     self.unsure_band, timings)


class SegmenterRuntime(RuntimeModel):
    """The defect segmenter: a probability map, scored over ``min_area`` of the image.

    With the config's ``flip_average`` the network runs on the image and its three mirror
    images, as on the torch path.
    """

    output_name = LOGITS_NAME

    def __init__(self, model_dir: Path, info: dict[str, Any], session,
                 preprocessor: Preprocessor, tolerance: float = DEFAULT_TOLERANCE) -> None:
        super().__init__(model_dir, info, session, preprocessor, tolerance)
        try:
            self.min_area = float(self.config["min_area"])
        except (KeyError, TypeError, ValueError) as error:
            raise BundleError(f"{model_dir}: the segmenter's config lacks a valid min_area "
                              f"({error!r})") from error
        # Bundles written before flip averaging existed were trained and scored without it.
        self.flip_average = bool(self.config.get("flip_average", False))

    def anomaly(self, image: np.ndarray) -> tuple[float, np.ndarray, dict[str, float]]:
        """(image score, probability map at the image's size, timings ms)."""
        t0 = time.perf_counter()
        array = self.preprocessor(image)
        t1 = time.perf_counter()
        probabilities = defect_probabilities(self.run, array[None], self.flip_average)
        t2 = time.perf_counter()
        score, prob = segmentation_output(probabilities[0, 0], image.shape[:2], self.min_area)
        t3 = time.perf_counter()
        return score, prob, {"preprocess": (t1 - t0) * 1e3, "network": (t2 - t1) * 1e3,
                             "scoring": (t3 - t2) * 1e3}

    def predict(self, image: np.ndarray) -> InspectionResult:
        """Score, verdict (the bundle's threshold and unsure band), probability map, timings."""
        score, prob, timings = self.anomaly(image)
        return segmentation_result(score, prob, self.threshold, self.unsure_band, timings)
