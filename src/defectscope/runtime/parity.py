"""What an exported network must prove before it inspects a part: parity with the trained model.

``export`` records, per reference image of the bundle, the score torch gave (and, for the box
models, its detections); ``RuntimeModel.load`` and ``export`` itself check a backend against them:
a score may move by at most ``tolerance * threshold``; boxes must carry the same labels in the
same order (detections of near-equal confidence may swap places), corners within
``BOX_TOLERANCE_PX``, confidences within the same limit, the unsettled tails near where the lists
end left out (``settled_detections``). numpy only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from defectscope.bundle import Reference, read_reference_images
from defectscope.errors import BundleError
from defectscope.values import Detection

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


class ParityError(BundleError):
    """The exported runtime scores the bundle's reference images differently from the model."""


@dataclass(frozen=True)
class ReferenceCheck:
    """One reference image re-scored: what the bundle recorded, what the runtime gives."""

    source: str
    expected: float
    score: float
    limit: float

    @property
    def difference(self) -> float:
        return abs(self.score - self.expected)

    @property
    def ok(self) -> bool:
        return bool(self.difference <= self.limit)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "expected": self.expected, "score": self.score,
                "difference": self.difference, "ok": self.ok}


def describe(checks: Sequence[ReferenceCheck]) -> str:
    return "; ".join(f"{c.source}: expected {c.expected:.6g}, got {c.score:.6g} "
                     f"(limit {c.limit:.3g})" for c in checks)


def read_references(model_dir: Path, info: dict[str, Any]) -> list[Reference]:
    """The bundle's reference images (RGB, with their templates where stored) and recorded
    scores, each named by its source or file; none is an error."""
    rows = info.get("references") or []
    if not rows:
        raise BundleError(f"{model_dir}: the bundle has no reference images, so an export cannot "
                          "prove it scores like the trained model; retrain it with defectscope "
                          "train")
    return [dataclasses.replace(reference, source=reference.source or row["file"])
            for reference, row in zip(read_reference_images(model_dir, info), rows)]


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
        floor = model.head.min_confidence
        if not detections_agree(expected, got, limit, floor):
            box, confidence = detection_differences(expected, got, limit, floor)
            problems.append(f"{reference.source}: {len(got)} boxes, torch gave "
                            f"{len(expected)} (largest box difference {box:.3g} px, "
                            f"confidence difference {confidence:.3g})")
    return problems
