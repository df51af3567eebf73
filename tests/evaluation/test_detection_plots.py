"""Boxes drawn on images, worst-image PNGs and per-class PR curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from defectscope.data.boxes.dataset import Box
from defectscope.evaluation.detection_plots import (PREDICTION_COLOUR, TRUTH_COLOUR, draw_boxes,
                                                    plot_pr_curves, write_worst_images)
from defectscope.values import Detection


def test_draw_boxes_colours_and_does_not_touch_the_input():
    image = np.zeros((40, 60), dtype=np.uint8)
    drawn = draw_boxes(image, [Box(2, 2, 12, 12, "a")], [Detection((30, 20, 50, 35), "a", 0.87)])
    assert drawn.shape == (40, 60, 3) and drawn.dtype == np.uint8 and not image.any()
    assert tuple(drawn[2, 5]) == TRUTH_COLOUR
    assert tuple(drawn[34, 40]) == PREDICTION_COLOUR
    assert draw_boxes(image, [], [], scale=3).shape == (120, 180, 3)


def test_worst_images_are_the_ones_with_most_misses(tmp_path: Path):
    truth = [[Box(0, 0, 5, 5, "a")], [Box(0, 0, 5, 5, "a"), Box(10, 10, 15, 15, "a")], []]
    found = [[Detection((0, 0, 5, 5), "a", 0.9)], [Detection((30, 30, 35, 35), "a", 0.9)],
             [Detection((1, 1, 4, 4), "a", 0.2)]]
    images = [np.full((20, 40, 3), 50 * i, dtype=np.uint8) for i in range(3)]
    paths = write_worst_images(truth, found, ["a"], tmp_path / "worst", score_threshold=0.5,
                               load_image=images.__getitem__, names=["x/p0.png", "x/p1.png",
                                                                     "x/p2.png"])
    assert [p.name for p in paths] == ["worst_01_p1_fn2_fp1.png"]
    with Image.open(paths[0]) as written:
        assert min(written.size) >= 400  # enlarged: small images stay readable


def test_pr_curves_one_png_per_class_with_truth(tmp_path: Path):
    truth = [[Box(0, 0, 5, 5, "a")], [Box(0, 0, 5, 5, "a")]]
    found = [[Detection((0, 0, 5, 5), "a", 0.9), Detection((0, 0, 5, 5), "b", 0.4)], []]
    paths = plot_pr_curves(truth, found, ["a", "b"], tmp_path / "pr")
    assert [p.name for p in paths] == ["pr_a.png"] and paths[0].stat().st_size > 1000
