"""The box models' decision after the network: window outputs -> boxes, detections, verdict.

numpy only, so the torch models (``defectscope.models.reference``, the detection base) and the
torch-free runtime call these very functions and cannot drift apart:

- ``box_detections``: per-window class probabilities (background first) and boxes in image
  pixels -> corners put in order, clipped to the image, empty boxes dropped, every defect type
  with probability >= ``min_confidence`` kept, per-class NMS, ``Detection`` list best first;
- ``detection_result``: the verdict rule of every box model: the image score is the best box's
  confidence (0.0 with no box), boxes at or above the threshold are kept, NG when there is one,
  UNSURE within the unsure band;
- ``alignment_failed_result`` and ``missing_template``: what a part that cannot be aligned to its
  template, or comes without one, gives (never a silent OK).

>>> detections = [Detection((1.0, 2.0, 5.0, 6.0), "open", 0.9)]
>>> detection_result(detections, 0.5).verdict
<Verdict.NG: 'NG'>
"""

from __future__ import annotations

import time
from typing import Callable, Mapping, Sequence

import numpy as np

from defectscope.errors import AlignmentError, DefectscopeError
from defectscope.scoring.boxes import nms
from defectscope.values import Detection, Failure, InspectionResult, Verdict


def best_confidence(detections: Sequence[Detection]) -> float:
    """An image's score: its best box's confidence, 0.0 when no box was found."""
    return max((d.confidence for d in detections), default=0.0)


def box_detections(probabilities: np.ndarray, boxes: np.ndarray, image_hw: Sequence[int],
                   classes: Sequence[str], min_confidence: float,
                   nms_iou: float) -> list[Detection]:
    """Window outputs -> detections, best first (see the module docstring).

    ``probabilities`` is N x (K + 1) (background, then ``classes``), ``boxes`` N x 4 pixel
    corners in the image's frame; a window yields one box per defect type it is sure enough of.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(len(boxes), -1)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(boxes):
        return []
    boxes = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]),
                            np.maximum(boxes[:, :2], boxes[:, 2:])], axis=1)
    h, w = int(image_hw[0]), int(image_hw[1])
    boxes = np.clip(boxes, 0, [w, h, w, h])
    valid = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    rows, kinds = np.nonzero((probabilities[:, 1:] >= min_confidence) & valid[:, None])
    if not len(rows):
        return []
    scores = probabilities[rows, kinds + 1]
    keep = nms(boxes[rows], scores, nms_iou, labels=kinds)
    detections = []
    for i in keep:
        x1, y1, x2, y2 = (round(float(v), 2) for v in boxes[rows[i]])
        detections.append(Detection((x1, y1, x2, y2), classes[kinds[i]], float(scores[i])))
    return detections


def detection_result(detections: Sequence[Detection], threshold: float,
                     unsure_band: float = 0.0,
                     timings: Mapping[str, float] | None = None) -> InspectionResult:
    """Score (best confidence), verdict, the boxes at or above ``threshold`` and the first one's
    defect type."""
    score = best_confidence(detections)
    verdict = Verdict.from_score(score, threshold, unsure_band)
    kept = tuple(d for d in detections if d.confidence >= threshold)
    return InspectionResult(
        score=score, verdict=verdict, detections=kept,
        defect_type=kept[0].label if kept else None, timings=dict(timings or {}),
        reason="best box confidence near the threshold" if verdict is Verdict.UNSURE else None)


def alignment_failed_result(error: AlignmentError) -> InspectionResult:
    """UNSURE with the reason: a part that cannot be aligned to its template is never OK."""
    return InspectionResult.failed(Failure.ALIGNMENT,
                                   f"alignment to the template failed: {error}")


def boxes_result(detect: Callable[[], Sequence[Detection]], threshold: float,
                 unsure_band: float = 0.0) -> InspectionResult:
    """``detection_result`` of ``detect()``, timed; UNSURE with the reason when the part cannot
    be aligned to its template (never a silent OK: a person looks at the part). The torch box
    models and their runtimes predict through this."""
    started = time.perf_counter()
    try:
        detections = detect()
    except AlignmentError as error:
        return alignment_failed_result(error)
    timings = {"detect": (time.perf_counter() - started) * 1e3}
    return detection_result(detections, threshold, unsure_band, timings)


def missing_template(name: str) -> DefectscopeError:
    """The error of a model that compares parts with a template when it has none."""
    return DefectscopeError(f"{name} compares each part with its defect-free template; pass the "
                            "template image (predict --template), or store the product's "
                            "template in the model (train --template)")
