"""COCO mAP and threshold metrics against hand-computed cases, and against pycocotools."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from defectscope.data.boxes.dataset import Box
from defectscope.errors import ConfigError
from defectscope.evaluation.detection import (IOU_THRESHOLDS, average_precision_coco,
                                              evaluate_detections, image_errors,
                                              match_detections)
from defectscope.values import Detection

A = Box(0, 0, 10, 10, "a")


def det(box, label="a", confidence=0.9) -> Detection:
    return Detection(tuple(float(v) for v in box), label, confidence)


def test_perfect_predictions_score_one():
    truth = [[A, Box(20, 20, 30, 40, "b")], [Box(5, 5, 9, 9, "a")], []]
    found = [[det(b.xyxy, b.label, 0.8) for b in image] for image in truth]
    report = evaluate_detections(truth, found, ["a", "b"], score_threshold=0.5)
    assert report.map50 == 1.0 and report.map50_95 == 1.0
    assert report.per_class_ap50 == {"a": 1.0, "b": 1.0}
    assert (report.precision, report.recall, report.f1) == (1.0, 1.0, 1.0)
    assert (report.tp, report.fp, report.fn) == (3, 0, 0)
    assert report.image_recall == 1.0 and report.image_false_reject == 0.0
    assert (report.n_images, report.n_gt_boxes, report.n_defect_images) == (3, 3, 2)


def test_false_positive_ranked_above_true_positive_halves_ap():
    truth = [[A]]
    above = [[det((50, 50, 60, 60), confidence=0.9), det(A.xyxy, confidence=0.8)]]
    below = [[det((50, 50, 60, 60), confidence=0.7), det(A.xyxy, confidence=0.8)]]
    assert evaluate_detections(truth, above, ["a"], score_threshold=0.0).map50 == 0.5
    assert evaluate_detections(truth, below, ["a"], score_threshold=0.0).map50 == 1.0


def test_envelope_sampled_at_101_recall_points():
    truth = [[A, Box(20, 0, 30, 10, "a")]]
    found = [[det(A.xyxy, confidence=0.9), det((50, 50, 60, 60), confidence=0.8),
              det((20, 0, 30, 10), confidence=0.7)]]
    report = evaluate_detections(truth, found, ["a"], score_threshold=0.75)
    assert report.map50 == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert (report.tp, report.fp, report.fn) == (1, 1, 1)
    assert report.precision == 0.5 and report.recall == 0.5 and report.f1 == 0.5


def test_wrong_class_is_a_miss_and_a_class_without_truth_is_left_out():
    report = evaluate_detections([[A]], [[det(A.xyxy, label="b")]], ["a", "b"],
                                 score_threshold=0.5)
    assert report.per_class_ap50 == {"a": 0.0, "b": None}
    assert report.map50 == 0.0 and report.map50_95 == 0.0
    assert (report.tp, report.fp, report.fn) == (0, 1, 1)
    assert report.image_recall == 1.0  # image level: any box means NG, whatever its class


def test_duplicate_detections_count_once():
    found = [[det(A.xyxy, confidence=0.9), det(A.xyxy, confidence=0.8)]]
    report = evaluate_detections([[A]], found, ["a"], score_threshold=0.5)
    assert report.map50 == 1.0
    assert (report.tp, report.fp, report.precision) == (1, 1, 0.5)


@pytest.mark.parametrize("y2, matched_at", [(5.0, 1), (4.99, 0), (5.01, 1), (5.5, 2), (6.0, 3)])
def test_iou_threshold_is_inclusive(y2, matched_at):
    """IoU of (0,0,10,y2) with (0,0,10,10) is y2/10; a match needs IoU >= the threshold."""
    report = evaluate_detections([[A]], [[det((0, 0, 10, y2))]], ["a"], score_threshold=0.5)
    assert report.map50 == (1.0 if matched_at else 0.0)
    assert report.map50_95 == pytest.approx(matched_at / len(IOU_THRESHOLDS))


def test_each_detection_takes_the_highest_iou_unmatched_box():
    left, right = Box(0, 0, 10, 10, "a"), Box(4, 0, 14, 10, "a")
    # the first detection overlaps right more than left: it takes right, the second is left out
    found = [[det((3, 0, 13, 10), confidence=0.9), det((5, 0, 15, 10), confidence=0.8)]]
    matches = match_detections([[left, right]], found, ["a"])["a"]
    assert matches.matched[0].tolist() == [True, False]
    report = evaluate_detections([[left, right]], found, ["a"], score_threshold=0.0)
    assert report.map50 == pytest.approx(51 / 101)


def test_empty_predictions_and_empty_truth():
    report = evaluate_detections([[A], []], [[], []], ["a"], score_threshold=0.5)
    assert report.map50 == 0.0 and report.precision == 0.0 and report.recall == 0.0
    assert report.image_recall == 0.0 and report.image_false_reject == 0.0
    nothing = evaluate_detections([[]], [[det(A.xyxy)]], ["a"], score_threshold=0.5)
    assert nothing.map50 is None and nothing.map50_95 is None and nothing.image_recall is None
    assert nothing.image_false_reject == 1.0 and nothing.fp == 1


def test_threshold_metrics_and_image_view():
    truth = [[A], [A], [], []]
    found = [[det(A.xyxy, confidence=0.9)], [det(A.xyxy, confidence=0.3)],
             [det(A.xyxy, confidence=0.6)], [det(A.xyxy, confidence=0.1)]]
    report = evaluate_detections(truth, found, ["a"], score_threshold=0.5)
    assert (report.tp, report.fp, report.fn) == (1, 1, 1)
    assert report.image_recall == 0.5 and report.image_false_reject == 0.5
    assert report.per_class_counts == {"a": {"n_gt": 2, "tp": 1, "fp": 1}}
    assert image_errors(truth, found, ["a"], score_threshold=0.5) == [(0, 0), (0, 1), (1, 0),
                                                                       (0, 0)]
    data = report.to_dict()
    assert data["map50"] == report.map50 and "map50_95" in data and "per_class_ap50" in data


def test_at_most_max_detections_per_image_and_class_count():
    found = [[det((50, 50, 60, 60), confidence=0.9), det(A.xyxy, confidence=0.5)]]
    assert evaluate_detections([[A]], found, ["a"], score_threshold=0.0).map50 == 0.5
    assert evaluate_detections([[A]], found, ["a"], score_threshold=0.0,
                               max_detections=1).map50 == 0.0


def test_bad_input_is_refused():
    with pytest.raises(ConfigError, match="2 images of ground truth but 1"):
        evaluate_detections([[A], []], [[]], ["a"], score_threshold=0.5)
    with pytest.raises(ConfigError, match="'zz' is not among the classes"):
        evaluate_detections([[A]], [[det(A.xyxy, label="zz")]], ["a"], score_threshold=0.5)
    with pytest.raises(ConfigError, match="non-finite"):
        evaluate_detections([[A]], [[det(A.xyxy, confidence=float("nan"))]], ["a"],
                            score_threshold=0.5)


def test_average_precision_of_no_detections():
    assert average_precision_coco(np.zeros(0, dtype=bool), 3) == 0.0
    assert average_precision_coco(np.zeros(0, dtype=bool), 0) is None


def _random_case(rng: np.random.Generator, n_images: int, classes: list[str], crowded: bool):
    truth, found = [], []
    for _ in range(n_images):
        boxes = []
        for _ in range(rng.integers(0, 6)):
            x, y = rng.uniform(0, 80, 2)
            w, h = rng.uniform(2, 30, 2)
            boxes.append(Box(x, y, x + w, y + h, classes[rng.integers(0, len(classes) - 1)]))
        preds = []
        for box in boxes:
            for _ in range(rng.integers(0, 3)):  # jittered copies: TPs, duplicates, near misses
                jitter = rng.normal(0, 0.15 * (box.x2 - box.x1 + box.y2 - box.y1) / 2, 4)
                x1, y1, x2, y2 = np.asarray(box.xyxy) + jitter
                label = box.label if rng.random() < 0.85 else classes[rng.integers(len(classes))]
                if x2 > x1 and y2 > y1:
                    preds.append(Detection((x1, y1, x2, y2), label, float(rng.random())))
        for _ in range(rng.integers(380, 450) if crowded else rng.integers(0, 4)):  # background false positives
            x, y = rng.uniform(0, 80, 2)
            w, h = rng.uniform(2, 30, 2)
            preds.append(Detection((x, y, x + w, y + h), classes[rng.integers(len(classes))],
                                   float(rng.random())))
        truth.append(boxes)
        found.append(preds)
    return truth, found


def _pycocotools_map(truth, found, classes) -> tuple[float, float]:
    coco_module = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    images = [{"id": i + 1, "width": 200, "height": 200} for i in range(len(truth))]
    categories = [{"id": k + 1, "name": c} for k, c in enumerate(classes)]
    annotations, detections = [], []
    for i, (boxes, preds) in enumerate(zip(truth, found)):
        for b in boxes:
            w, h = b.x2 - b.x1, b.y2 - b.y1
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                "category_id": classes.index(b.label) + 1,
                                "bbox": [b.x1, b.y1, w, h], "area": w * h, "iscrowd": 0})
        for p in preds:
            x1, y1, x2, y2 = p.box
            detections.append({"image_id": i + 1, "category_id": classes.index(p.label) + 1,
                               "bbox": [x1, y1, x2 - x1, y2 - y1], "score": p.confidence})
    gt = coco_module.COCO()
    gt.dataset = {"images": images, "annotations": annotations, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(detections)
        evaluation = cocoeval.COCOeval(gt, dt, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[1]), float(evaluation.stats[0])


@pytest.mark.parametrize("seed, crowded", [(0, False), (1, False), (2, False), (3, True)])
def test_agrees_with_pycocotools(seed, crowded):
    """stats[1] is AP@0.5 and stats[0] AP@0.5:0.95, both at maxDets=100 and area 'all'. The
    last class never has ground truth, so both must leave it out of the mean."""
    classes = ["open", "short", "spur", "ghost"]
    truth, found = _random_case(np.random.default_rng(seed), 25, classes, crowded)
    expected50, expected = _pycocotools_map(truth, found, classes)
    report = evaluate_detections(truth, found, classes, score_threshold=0.5)
    assert report.per_class_ap50["ghost"] is None
    assert report.map50 == pytest.approx(expected50, abs=1e-6)
    assert report.map50_95 == pytest.approx(expected, abs=1e-6)
