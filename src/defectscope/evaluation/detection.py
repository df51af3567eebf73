"""Detection metrics in pure numpy: COCO mAP, precision/recall at a threshold, image pass/fail.

mAP follows the COCO definition exactly as pycocotools' ``COCOeval`` (bbox) computes it, so
figures compare with published ones:

- per class and per IoU threshold in 0.50:0.05:0.95, detections of all images are ranked by
  confidence (a stable sort: ties keep image order, then the image's own order);
- within an image, each detection in rank order takes the unmatched ground-truth box of its
  class with the highest IoU, if that IoU is >= the threshold (ties: the later box, as
  pycocotools); otherwise it is a false positive;
- AP is the mean of the precision envelope sampled at 101 recall points 0, 0.01, ..., 1;
- at most ``max_detections`` (100, pycocotools' ``maxDets``) detections per image and class
  count, the most confident ones; no area ranges, no crowd boxes;
- a class without ground-truth boxes has AP None and is left out of the mean.

Precision, recall and F1 are box-level at ``score_threshold`` and IoU 0.5 (the same matching).
The image view treats any defect as NG: ``image_recall`` is the share of images with at least
one true box that have at least one prediction at or above the threshold, ``image_false_reject``
the share of images without true boxes that have one (None when there are no such images).

>>> from defectscope.data.boxes.dataset import Box
>>> from defectscope.values import Detection
>>> truth = [[Box(0, 0, 10, 10, "scratch")], []]
>>> found = [[Detection((1, 0, 10, 10), "scratch", 0.9)], [Detection((0, 0, 5, 5), "scratch", 0.2)]]
>>> report = evaluate_detections(truth, found, ["scratch"], score_threshold=0.5)
>>> report.map50, report.image_recall, report.image_false_reject
(1.0, 1.0, 0.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from defectscope.data.boxes.dataset import Box
from defectscope.errors import ConfigError
from defectscope.scoring.boxes import box_iou
from defectscope.values import Detection

__all__ = ["IOU_THRESHOLDS", "RECALL_POINTS", "ClassMatches", "DetectionReport",
           "average_precision_coco", "evaluate_detections", "image_errors", "match_detections",
           "precision_recall_points"]

# Built exactly as pycocotools builds them, so an IoU of exactly 0.55 compares the same way.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)
RECALL_POINTS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1)


@dataclass(frozen=True, eq=False)
class ClassMatches:
    """One class's ranked detections over all images: ``scores`` (D,) best first, ``images``
    (D,) their image index, ``matched`` (T, D) whether each is a true positive at each IoU
    threshold of ``IOU_THRESHOLDS``, and ``n_gt`` the class's ground-truth boxes."""

    scores: np.ndarray
    images: np.ndarray
    matched: np.ndarray
    n_gt: int


@dataclass(frozen=True)
class DetectionReport:
    """Every detection metric of one evaluation; ``to_dict()`` is JSON-ready."""

    map50: float | None
    map50_95: float | None
    per_class_ap50: dict[str, float | None]
    per_class_ap50_95: dict[str, float | None]
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    image_recall: float | None
    image_false_reject: float | None
    n_images: int
    n_gt_boxes: int
    n_predictions: int
    n_defect_images: int
    n_good_images: int
    score_threshold: float
    max_detections: int
    per_class_counts: dict[str, dict[str, int]]

    def to_dict(self) -> dict:
        return asdict(self)


def _match_image(truth: np.ndarray, found: np.ndarray) -> np.ndarray:
    """(T, D) true-positive flags of ``found`` (ranked best first) against ``truth``."""
    matched = np.zeros((len(IOU_THRESHOLDS), len(found)), dtype=bool)
    if len(truth) == 0 or len(found) == 0:
        return matched
    ious = box_iou(found, truth)
    limits = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)
    taken = np.zeros((len(IOU_THRESHOLDS), len(truth)), dtype=bool)
    rows = np.arange(len(IOU_THRESHOLDS))
    last = len(truth) - 1
    for d in range(len(found)):
        candidates = np.where(taken, -1.0, ious[d][None, :])
        best = last - np.argmax(candidates[:, ::-1], axis=1)  # the later box wins a tie
        ok = candidates[rows, best] >= limits
        matched[ok, d] = True
        taken[rows[ok], best[ok]] = True
    return matched


def _check(ground_truth: Sequence[Sequence[Box]], predictions: Sequence[Sequence[Detection]],
           classes: Sequence[str]) -> None:
    if len(ground_truth) != len(predictions):
        raise ConfigError(f"{len(ground_truth)} images of ground truth but {len(predictions)} of "
                          "predictions; give one (possibly empty) list per image to both")
    known = set(classes)
    for index, (truth, found) in enumerate(zip(ground_truth, predictions)):
        for label in {b.label for b in truth} | {p.label for p in found}:
            if label not in known:
                raise ConfigError(f"image {index}: label {label!r} is not among the classes "
                                  f"{list(classes)}; pass the dataset's classes")
        if any(not np.isfinite(p.confidence) for p in found):
            raise ConfigError(f"image {index}: a prediction has a non-finite confidence")


def match_detections(ground_truth: Sequence[Sequence[Box]],
                     predictions: Sequence[Sequence[Detection]], classes: Sequence[str], *,
                     max_detections: int = 100) -> dict[str, ClassMatches]:
    """Rank and match every class's detections as COCO does (see the module docstring)."""
    _check(ground_truth, predictions, classes)
    if max_detections < 1:
        raise ConfigError(f"max_detections must be at least 1, got {max_detections}")
    parts: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {c: [] for c in classes}
    n_gt = dict.fromkeys(classes, 0)
    for index, (truth, found) in enumerate(zip(ground_truth, predictions)):
        for label in classes:
            boxes = np.asarray([b.xyxy for b in truth if b.label == label], float).reshape(-1, 4)
            n_gt[label] += len(boxes)
            mine = [p for p in found if p.label == label]
            if not mine:
                continue
            scores = np.asarray([p.confidence for p in mine], dtype=np.float64)
            order = np.argsort(-scores, kind="mergesort")[:max_detections]
            ranked = np.asarray([mine[i].box for i in order], float).reshape(-1, 4)
            parts[label].append((scores[order], np.full(len(order), index),
                                 _match_image(boxes, ranked)))
    result = {}
    for label in classes:
        if parts[label]:
            scores = np.concatenate([p[0] for p in parts[label]])
            images = np.concatenate([p[1] for p in parts[label]])
            matched = np.concatenate([p[2] for p in parts[label]], axis=1)
            order = np.argsort(-scores, kind="mergesort")
            scores, images, matched = scores[order], images[order], matched[:, order]
        else:
            scores, images = np.zeros(0), np.zeros(0, dtype=np.int64)
            matched = np.zeros((len(IOU_THRESHOLDS), 0), dtype=bool)
        result[label] = ClassMatches(scores, images, matched, n_gt[label])
    return result


def precision_recall_points(matched: np.ndarray, n_gt: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw (precision, recall) after each ranked detection; ``matched`` is one row (D,).

    pycocotools adds ``np.spacing(1)`` to the denominator; it is never zero here (each point
    follows at least one detection), so leaving it out only changes AP by ~1e-16 and makes a
    perfect result exactly 1.0.
    """
    tp = np.cumsum(matched).astype(np.float64)
    fp = np.cumsum(~matched).astype(np.float64)
    return tp / (tp + fp), tp / max(n_gt, 1)


def average_precision_coco(matched: np.ndarray, n_gt: int) -> float | None:
    """101-point interpolated AP of one ranked row of true-positive flags (None if no truth)."""
    if n_gt == 0:
        return None
    precision, recall = precision_recall_points(np.asarray(matched, dtype=bool), n_gt)
    if precision.size == 0:
        return 0.0
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    at = np.searchsorted(recall, RECALL_POINTS, side="left")
    sampled = np.where(at < len(envelope), envelope[np.minimum(at, len(envelope) - 1)], 0.0)
    return float(np.mean(sampled))


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def evaluate_detections(ground_truth: Sequence[Sequence[Box]],
                        predictions: Sequence[Sequence[Detection]], classes: Sequence[str], *,
                        score_threshold: float, max_detections: int = 100) -> DetectionReport:
    """Every metric of the module docstring for one set of images (one list per image each)."""
    classes = list(classes)
    matches = match_detections(ground_truth, predictions, classes, max_detections=max_detections)
    ap50: dict[str, float | None] = {}
    ap50_95: dict[str, float | None] = {}
    counts: dict[str, dict[str, int]] = {}
    tp = fp = 0
    for label, m in matches.items():
        per_iou = [average_precision_coco(row, m.n_gt) for row in m.matched]
        ap50[label] = per_iou[0]
        ap50_95[label] = None if m.n_gt == 0 else float(np.mean([v or 0.0 for v in per_iou]))
        kept = m.scores >= score_threshold
        class_tp = int(np.count_nonzero(m.matched[0] & kept))
        class_fp = int(np.count_nonzero(kept)) - class_tp
        counts[label] = {"n_gt": m.n_gt, "tp": class_tp, "fp": class_fp}
        tp, fp = tp + class_tp, fp + class_fp
    n_gt = sum(m.n_gt for m in matches.values())
    fn = n_gt - tp
    flagged = [any(p.confidence >= score_threshold for p in found) for found in predictions]
    defect = [bool(truth) for truth in ground_truth]
    n_defect = sum(defect)
    n_good = len(defect) - n_defect
    caught = sum(f and d for f, d in zip(flagged, defect))
    rejected = sum(f and not d for f, d in zip(flagged, defect))
    return DetectionReport(
        map50=_mean(list(ap50.values())), map50_95=_mean(list(ap50_95.values())),
        per_class_ap50=ap50, per_class_ap50_95=ap50_95,
        precision=_ratio(tp, tp + fp), recall=_ratio(tp, n_gt), f1=_ratio(2 * tp, 2 * tp + fp + fn),
        tp=tp, fp=fp, fn=fn,
        image_recall=caught / n_defect if n_defect else None,
        image_false_reject=rejected / n_good if n_good else None,
        n_images=len(ground_truth), n_gt_boxes=n_gt,
        n_predictions=sum(len(found) for found in predictions), n_defect_images=n_defect,
        n_good_images=n_good, score_threshold=float(score_threshold),
        max_detections=int(max_detections), per_class_counts=counts)


def image_errors(ground_truth: Sequence[Sequence[Box]], predictions: Sequence[Sequence[Detection]],
                 classes: Sequence[str], *, score_threshold: float, max_detections: int = 100
                 ) -> list[tuple[int, int]]:
    """Per image ``(false positives, false negatives)`` at ``score_threshold`` and IoU 0.5."""
    matches = match_detections(ground_truth, predictions, classes, max_detections=max_detections)
    fp = np.zeros(len(ground_truth), dtype=np.int64)
    tp = np.zeros(len(ground_truth), dtype=np.int64)
    for m in matches.values():
        kept = m.scores >= score_threshold
        np.add.at(tp, m.images[kept & m.matched[0]], 1)
        np.add.at(fp, m.images[kept & ~m.matched[0]], 1)
    n_gt = np.asarray([len(truth) for truth in ground_truth], dtype=np.int64)
    return [(int(f), int(g - t)) for f, g, t in zip(fp, n_gt, tp)]
