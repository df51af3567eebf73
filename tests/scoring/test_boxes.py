"""Pairwise IoU and non-maximum suppression (numpy, torch-free)."""

from __future__ import annotations

import numpy as np
import pytest

from defectscope.errors import ConfigError
from defectscope.scoring.boxes import box_iou, nms


def test_box_iou_by_hand():
    a = [[0, 0, 10, 10], [0, 0, 10, 5]]
    b = [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]
    expected = [[1.0, 50 / 150, 0.0], [0.5, 25 / 125, 0.0]]
    np.testing.assert_allclose(box_iou(a, b), expected)
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 3)
    assert box_iou(a, []).shape == (2, 0)


def test_box_iou_of_degenerate_boxes_is_zero():
    assert box_iou([[1, 1, 1, 1]], [[1, 1, 1, 1]]).tolist() == [[0.0]]


def test_box_iou_refuses_bad_shapes():
    with pytest.raises(ConfigError, match=r"\(N, 4\)"):
        box_iou([[0, 0, 1]], [[0, 0, 1, 1]])


def test_nms_keeps_the_best_of_each_cluster():
    boxes = [[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10]]
    scores = [0.8, 0.9, 0.5, 0.8]
    assert nms(boxes, scores, iou=0.5).tolist() == [1, 2]
    assert nms(boxes, scores, iou=0.95).tolist() == [1, 0, 2]  # tie: the earlier box is kept


def test_nms_by_label_only_suppresses_within_a_class():
    boxes = [[0, 0, 10, 10], [0, 0, 10, 10]]
    assert nms(boxes, [0.9, 0.8], 0.5, labels=["open", "short"]).tolist() == [0, 1]
    assert nms(boxes, [0.9, 0.8], 0.5, labels=["open", "open"]).tolist() == [0]
    assert nms(np.zeros((0, 4)), [], 0.5).tolist() == []


def test_nms_refuses_mismatched_input():
    with pytest.raises(ConfigError, match="one score per box"):
        nms([[0, 0, 1, 1]], [0.1, 0.2], 0.5)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        nms([[0, 0, 1, 1]], [0.1], 1.5)
