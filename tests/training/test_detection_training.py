"""Confidence calibration of the box models, on hand-made predictions."""

from __future__ import annotations

from defectscope.data.boxes.dataset import Box, DetectionSample
from defectscope.training.detection import calibrate_confidence
from defectscope.values import Detection

CLASSES = ("scratch",)


def sample(name: str, boxes=()) -> DetectionSample:
    return DetectionSample(name, "0" * 64, 100, 100, tuple(boxes))


def found(confidence: float, box=(10, 10, 30, 30)) -> Detection:
    return Detection(box, "scratch", confidence)


def test_every_image_defective_uses_the_best_box_f1():
    truth = [Box(10, 10, 30, 30, "scratch")]
    samples = [sample("a", truth), sample("b", truth)]
    # a: hit at 0.9 and a false box at 0.6; b: hit at 0.7. At 0.7: 2 TP, 0 FP -> F1 1.0
    predictions = [[found(0.9), found(0.6, (60, 60, 80, 80))], [found(0.7)]]
    record = calibrate_confidence(samples, predictions, CLASSES)
    assert record["rule"] == "box_f1_max"
    assert 0.6 < record["threshold"] <= 0.7  # drops the false box, keeps both hits
    assert record["achieved_f1"] == 1.0 and record["achieved_image_recall"] == 1.0


def test_good_images_use_the_image_rule():
    samples = [sample("good1"), sample("good2"), sample("bad", [Box(10, 10, 30, 30, "scratch")])]
    predictions = [[found(0.2)], [], [found(0.8)]]
    record = calibrate_confidence(samples, predictions, CLASSES)
    assert record["rule"] == "recall"  # auto with defects: every defective image caught
    assert 0.2 < record["threshold"] <= 0.8


def test_good_images_only_use_a_false_reject_quantile():
    samples = [sample(f"good{i}") for i in range(5)]
    record = calibrate_confidence(samples, [[found(0.1 * i)] for i in range(5)], CLASSES)
    assert record["rule"] == "good_quantile"
    assert record["threshold"] > 0.4
