"""Augmentation moves boxes exactly with the image; boxes pushed out of frame are dropped."""

from __future__ import annotations

import numpy as np
import pytest

from defectscope.data.boxes.augment import BoxAugmentConfig, augment_with_boxes, move_boxes
from defectscope.errors import ConfigError


def _scene() -> tuple[np.ndarray, np.ndarray]:
    image = np.full((60, 80, 3), 100, np.uint8)
    image[10:20, 5:35] = 250  # a bright bar: x 5..35, y 10..20
    return image, np.array([[5, 10, 35, 20]], np.float32)


@pytest.mark.parametrize("seed", range(8))
def test_the_box_still_frames_the_bright_bar(seed):
    image, boxes = _scene()
    config = BoxAugmentConfig(scale_jitter=0.2, shift=0.05, photometric=0.0)
    out, moved, labels = augment_with_boxes(image, boxes, np.array([3]), config,
                                            np.random.default_rng(seed))
    assert out.shape == image.shape and labels.tolist() == [3]
    x1, y1, x2, y2 = np.round(moved[0]).astype(int)
    inside = out[y1 + 1:y2 - 1, x1 + 1:x2 - 1, 0]
    assert inside.mean() > 240  # the bar is inside the moved box...
    bright = np.argwhere(out[..., 0] > 200)
    assert bright[:, 0].min() >= y1 - 1 and bright[:, 0].max() <= y2  # ...and nowhere else
    assert bright[:, 1].min() >= x1 - 1 and bright[:, 1].max() <= x2


def test_rot90_turns_square_images_only():
    image = np.zeros((40, 40, 3), np.uint8)
    image[0:10, 0:20] = 255
    config = BoxAugmentConfig(hflip=False, vflip=False, rot90=True, scale_jitter=0.0, shift=0.0,
                              photometric=0.0)
    seen = set()
    for seed in range(12):
        out, moved, _ = augment_with_boxes(image, np.array([[0, 0, 20, 10]], np.float32),
                                           np.array([0]), config, np.random.default_rng(seed))
        w, h = moved[0, 2] - moved[0, 0], moved[0, 3] - moved[0, 1]
        seen.add((round(float(w)), round(float(h))))
        assert (out[..., 0] > 128).sum() == pytest.approx(w * h, rel=0.15)
    assert seen == {(20, 10), (10, 20)}


def test_boxes_mostly_out_of_frame_are_dropped():
    boxes = np.array([[0, 0, 10, 10], [40, 40, 50, 50]], np.float64)
    shift = np.array([[1.0, 0, 45], [0, 1.0, 0]])  # move 45 px right in a 60 x 60 frame
    moved, keep = move_boxes(boxes, shift, 60, 60, min_visible=0.4)
    assert keep.tolist() == [True, False]
    assert moved.tolist() == [[45, 0, 55, 10]]


def test_no_augmentation_changes_nothing():
    image, boxes = _scene()
    out, moved, _ = augment_with_boxes(image, boxes, np.array([0]), BoxAugmentConfig.none(),
                                       np.random.default_rng(0))
    assert np.array_equal(out, image) and np.array_equal(moved, boxes)


def test_bad_values_raise_config_error():
    with pytest.raises(ConfigError, match="scale_jitter"):
        BoxAugmentConfig(scale_jitter=1.5)
    with pytest.raises(ConfigError, match="photometric"):
        BoxAugmentConfig(photometric=2.0)
