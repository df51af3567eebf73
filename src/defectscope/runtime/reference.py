"""The reference comparison in the runtime: the window network in ONNX, the rest in numpy/OpenCV.

The ONNX file is ``ReferenceNet`` alone (float32 windows N x 3 x s x s -> ``logits`` N x (K + 1)
and ``boxes`` N x 4, N dynamic); the comparison with the template, the windows, the box decoding,
clipping, NMS and the verdict are ``defectscope.models.reference_detect`` and
``defectscope.scoring.detection``, the very functions the torch model calls. A part without a
template of its own is compared with the bundle's golden template; without either it is the
torch model's error, and a part that cannot be aligned is UNSURE with the reason, as there.

>>> model = RuntimeModel.load("models/pcb")        # doctest: +SKIP
>>> model.predict(image).detections                # doctest: +SKIP
(Detection(box=(466.0, 441.0, 493.0, 470.0), label='mousebite', confidence=0.98),)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from defectscope.errors import BundleError, ConfigError
from defectscope.models.reference_detect import (
    GOLDEN_TEMPLATE_KEY,
    ReferenceSettings,
    detect_boxes,
)
from defectscope.preprocess import Preprocessor
from defectscope.runtime.engine import (
    BOXES_NAME,
    DEFAULT_TOLERANCE,
    INPUT_NAME,
    LOGITS_NAME,
    RuntimeModel,
    read_class_names,
    read_references,
)
from defectscope.scoring.detection import (
    best_confidence,
    boxes_result,
    missing_template,
)
from defectscope.types import Detection, InspectionResult

BOX_TOLERANCE_PX = 0.1  # largest corner difference (px) between torch's and ONNX's boxes


def detection_to_dict(detection: Detection) -> dict[str, Any]:
    return {"box": [float(v) for v in detection.box], "label": detection.label,
            "confidence": float(detection.confidence)}


def detection_from_dict(row: Mapping[str, Any]) -> Detection:
    x1, y1, x2, y2 = (float(v) for v in row["box"])
    return Detection((x1, y1, x2, y2), str(row["label"]), float(row["confidence"]))


def _paired(expected: Sequence[Detection], got: Sequence[Detection],
            confidence_limit: float) -> list[Detection]:
    """``got`` in ``expected``'s order, where the two orders differ only among detections whose
    confidences are within ``confidence_limit`` of each other (float noise may swap two boxes
    of near-equal confidence; it changes no decision). Otherwise ``got`` as it is."""
    remaining, paired = list(got), []
    for want in expected:
        first = remaining[0].confidence
        ties = [i for i, d in enumerate(remaining)
                if d.label == want.label and abs(d.confidence - first) <= confidence_limit
                and abs(d.confidence - want.confidence) <= confidence_limit]
        if not ties:
            return list(got)
        best = min(ties, key=lambda i: max(abs(a - b) for a, b in zip(remaining[i].box,
                                                                      want.box)))
        paired.append(remaining.pop(best))
    return paired


def settled_detections(expected: Sequence[Detection], got: Sequence[Detection],
                       confidence_limit: float, floor: float
                       ) -> tuple[list[Detection], list[Detection]]:
    """Both lists without the tail float noise may change: a list ends at ``floor`` (the
    lowest confidence listed) or at its cap, so a detection within ``confidence_limit`` of
    where either list ends may be listed by one and not the other. Kept: detections above
    the lower of the two ends plus twice the limit (an empty list ends at ``floor``); any
    detection one side keeps there, the other lists too when the confidences agree."""
    ends = [d[-1].confidence if d else floor for d in (expected, got)]
    edge = min(ends) + 2 * confidence_limit
    return ([d for d in expected if d.confidence > edge],
            [d for d in got if d.confidence > edge])


def detection_differences(expected: Sequence[Detection], got: Sequence[Detection],
                          confidence_limit: float = 0.0, floor: float | None = None
                          ) -> tuple[float, float]:
    """(largest box corner difference px, largest confidence difference) of two detection
    lists, box by box in order (detections whose confidences are within ``confidence_limit``
    may have swapped places); (inf, inf) when their lengths or labels differ. With ``floor``
    (the lowest confidence the lists hold) the tails near where the lists end are left out
    (``settled_detections``)."""
    if floor is not None:
        expected, got = settled_detections(expected, got, confidence_limit, floor)
    if len(expected) != len(got):
        return float("inf"), float("inf")
    if not expected:
        return 0.0, 0.0
    got = _paired(expected, got, confidence_limit)
    if [d.label for d in expected] != [d.label for d in got]:
        return float("inf"), float("inf")
    boxes = np.abs(np.array([d.box for d in expected]) - np.array([d.box for d in got]))
    confidences = np.abs(np.array([d.confidence for d in expected])
                         - np.array([d.confidence for d in got]))
    return float(boxes.max()), float(confidences.max())


def detections_agree(expected: Sequence[Detection], got: Sequence[Detection],
                     confidence_limit: float, floor: float | None = None) -> bool:
    """Same labels in the same order (but for near-equal confidences, see
    ``detection_differences``), boxes within ``BOX_TOLERANCE_PX``, confidences within
    ``confidence_limit``; with ``floor``, the unsettled tails left out."""
    box, confidence = detection_differences(expected, got, confidence_limit, floor)
    return box <= BOX_TOLERANCE_PX and confidence <= confidence_limit


class BoxRuntime(RuntimeModel):
    """What the box models' runtimes share: score, verdict and parity check from ``detect``."""

    def detect(self, image: np.ndarray, template: np.ndarray | None = None) -> list[Detection]:
        raise NotImplementedError

    def anomaly(self, image: np.ndarray, template: np.ndarray | None = None
                ) -> tuple[float, None, dict[str, float]]:
        """(score, None, timings ms): the best box's confidence, 0.0 when no box is found."""
        started = time.perf_counter()
        detections = self.detect(image, template)
        return best_confidence(detections), None, {
            "detect": (time.perf_counter() - started) * 1e3}

    def predict(self, image: np.ndarray, template: np.ndarray | None = None) -> InspectionResult:
        """Boxes at or above the threshold, verdict and defect type (as the torch model);
        UNSURE with the reason when the part cannot be aligned to its template."""
        return boxes_result(lambda: self.detect(image, template), self.threshold,
                            self.unsure_band)

    def check_export(self, export: dict[str, Any]) -> list[str]:
        """The reference images' detections against those torch gave at export."""
        return check_export_detections(self, export)


class ReferenceRuntime(BoxRuntime):
    """Golden-template comparison + the ONNX window network (see the module docstring)."""

    output_name = LOGITS_NAME

    def __init__(self, model_dir: Path, info: dict[str, Any], session,
                 preprocessor: Preprocessor, tolerance: float = DEFAULT_TOLERANCE, *,
                 classes: Sequence[str], settings: ReferenceSettings,
                 golden_template: np.ndarray | None = None) -> None:
        super().__init__(model_dir, info, session, preprocessor, tolerance)
        self.classes: tuple[str, ...] = tuple(classes)
        self.settings = settings
        self.golden_template = golden_template

    @classmethod
    def from_arrays(cls, model_dir, info, arrays, session, preprocessor, tolerance):
        classes = read_class_names(model_dir, arrays, "reference model")
        try:
            settings = ReferenceSettings.from_config(info["model"]["config"])
        except (ConfigError, TypeError, ValueError) as error:
            raise BundleError(f"{model_dir}: invalid reference model config ({error})") from error
        template = arrays.get(GOLDEN_TEMPLATE_KEY)
        return cls(model_dir, info, session, preprocessor, tolerance, classes=classes,
                   settings=settings,
                   golden_template=None if template is None else np.array(template, np.uint8))

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ONNX window network: float32 windows -> (class logits, box fractions)."""
        logits, boxes = self.session.run([LOGITS_NAME, BOXES_NAME], {INPUT_NAME: batch})
        return logits, boxes

    def detect(self, image: np.ndarray, template: np.ndarray | None = None) -> list[Detection]:
        """Every box with a defect probability >= ``min_confidence``, best first (as the torch
        model's ``detect``: the golden template when ``template`` is None, the same errors)."""
        if template is None:
            template = self.golden_template
        if template is None:
            raise missing_template(self.name)
        return detect_boxes(image, template, self.settings, self.classes, self.forward)


def check_export_detections(model, export: dict[str, Any]) -> list[str]:
    """A box model runtime's detections of the reference images (``model.detect(image,
    template)``) against those torch gave at export (``export.json``): a line per problem."""
    rows = export.get("references") or []
    references = read_references(model.model_dir, model.info)
    if len(rows) != len(references) or any("detections" not in row for row in rows):
        return ["export.json does not record the reference images' detections; export "
                "the model again"]
    limit = model.tolerance * max(abs(model.threshold), 1e-12)
    problems = []
    for reference, row in zip(references, rows):
        expected = [detection_from_dict(d) for d in row["detections"]]
        got = model.detect(reference.image, reference.template)
        floor = model.settings.min_confidence
        if not detections_agree(expected, got, limit, floor):
            box, confidence = detection_differences(expected, got, limit, floor)
            problems.append(f"{reference.source}: {len(got)} boxes, torch gave "
                            f"{len(expected)} (largest box difference {box:.3g} px, "
                            f"confidence difference {confidence:.3g})")
    return problems
