"""Pixel AUROC and AUPRO: hand-checked tiny cases, edge cases, and the binned approximation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from defectscope.errors import ConfigError
from defectscope.evaluation import pixel_metrics
from defectscope.evaluation.metrics import auroc
from defectscope.evaluation.pixel_metrics import aupro, pixel_auroc


def test_pixel_auroc_hand_computed_with_tie():
    amap = np.array([[0.1, 0.5], [0.5, 0.2]])
    mask = np.array([[0, 1], [0, 0]], np.uint8)
    # The defect pixel (0.5) beats 0.1 and 0.2 and ties 0.5: (1 + 1 + 0.5) / 3.
    assert pixel_auroc([amap], [mask]) == pytest.approx(2.5 / 3)


def test_pixel_auroc_skips_images_without_mask_and_counts_good_masks():
    defect_map = np.array([[0.9, 0.1]])
    defect_mask = np.array([[1, 0]])
    good_map = np.array([[0.95, 0.0]])
    assert pixel_auroc([defect_map, good_map], [defect_mask, None]) == 1.0
    # With an all-zero mask the good image's 0.95 pixel is a negative above the defect pixel.
    # Pairs: 0.9 vs 0.1 (win), 0.95 (loss), 0.0 (win) -> 2/3.
    good_mask = np.zeros((1, 2))
    assert pixel_auroc([defect_map, good_map], [defect_mask, good_mask]) == pytest.approx(2 / 3)


def test_pixel_metrics_are_none_without_masks_or_classes():
    amap = np.zeros((3, 3))
    assert pixel_auroc([amap], [None]) is None
    assert aupro([amap], [None]) is None
    assert pixel_auroc([amap], [np.zeros((3, 3))]) is None
    assert aupro([amap], [np.zeros((3, 3))]) is None  # no region
    assert aupro([amap], [np.ones((3, 3))]) is None  # no defect-free pixel


def test_shape_mismatch_names_the_image():
    maps = [np.zeros((4, 4)), np.zeros((4, 5))]
    masks = [np.zeros((4, 4)), np.zeros((4, 4))]
    for metric in (pixel_auroc, aupro):
        with pytest.raises(ConfigError, match="image 1"):
            metric(maps, masks)


def test_bad_input_raises():
    with pytest.raises(ConfigError, match="2 anomaly maps but 1 masks"):
        pixel_auroc([np.zeros((2, 2))] * 2, [np.zeros((2, 2))])
    with pytest.raises(ConfigError, match="image 0: anomaly map contains NaN"):
        aupro([np.full((2, 2), np.nan)], [np.eye(2)])
    with pytest.raises(ConfigError, match="fpr_limit"):
        aupro([np.zeros((2, 2))], [np.eye(2)], fpr_limit=0)


def test_pixel_auroc_binned_matches_exact_on_random_data(monkeypatch):
    rng = np.random.default_rng(1)
    maps, masks = [], []
    for _ in range(6):
        mask = np.zeros((128, 128), np.uint8)
        cv2.circle(mask, (int(rng.integers(20, 108)), int(rng.integers(20, 108))), 12, 1, -1)
        maps.append(rng.normal(size=mask.shape).astype(np.float32) + 1.5 * mask)
        masks.append(mask)
    exact = auroc(np.concatenate([m.ravel() for m in maps]), np.concatenate([m.ravel() for m in masks]))
    assert pixel_auroc(maps, masks) == pytest.approx(exact, abs=1e-3)
    monkeypatch.setattr(pixel_metrics, "_MAX_SAMPLE", 5_000)  # exercise the strided sample
    assert pixel_auroc(maps, masks) == pytest.approx(exact, abs=1e-3)
    assert pixel_auroc(maps, masks, num_bins=1_000) == pytest.approx(exact, abs=1e-3)


def test_aupro_perfect_map_is_one():
    mask = np.zeros((32, 32), np.uint8)
    mask[4:10, 4:10] = 1
    mask[20:22, 25:30] = 1
    good = np.zeros((32, 32), np.uint8)
    maps = [mask.astype(np.float32), np.zeros((32, 32), np.float32)]
    assert aupro(maps, [mask, good]) == pytest.approx(1.0)


def test_aupro_constant_map_is_low():
    mask = np.zeros((16, 16), np.uint8)
    mask[3:6, 3:6] = 1
    # PRO = FPR = 1 at the only threshold: the line from (0, 0) to (1, 1), area 0.045 up to 0.3.
    assert aupro([np.full((16, 16), 0.3)], [mask]) == pytest.approx(0.15)


def test_aupro_hand_computed_two_regions():
    mask = np.zeros((4, 4), np.uint8)
    amap = np.zeros((4, 4))
    mask[0, 0] = 1  # region A, one pixel
    amap[0, 0] = 0.9
    mask[3, 2:4] = 1  # region B, two pixels
    amap[3, 2], amap[3, 3] = 0.8, 0.2
    amap[1, 3] = 0.5  # one of the 13 defect-free pixels; the rest score 0
    # Threshold 0.9: FPR 0, PRO (1 + 0)/2; 0.8: FPR 0, PRO (1 + 1/2)/2 = 0.75; 0.5: FPR 1/13;
    # 0.2: PRO 1. Area up to 0.3: 0.75 * 1/13 + 1 * (0.3 - 1/13).
    expected = (0.75 / 13 + (0.3 - 1 / 13)) / 0.3
    assert aupro([amap], [mask]) == pytest.approx(expected)


def test_aupro_uses_8_connectivity():
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0] = mask[1, 1] = mask[1, 2] = 1  # diagonal neighbours: one region of 3 pixels
    amap = np.zeros((4, 4))
    amap[0, 0], amap[1, 1], amap[1, 2] = 0.9, 0.1, 0.1
    amap[3, 3] = 0.5
    # PRO 1/3 until FPR 1/13 (threshold 0.5), then 1. With 4-connectivity it would be 1/2.
    expected = ((1 / 3) / 13 + (0.3 - 1 / 13)) / 0.3
    assert aupro([amap], [mask]) == pytest.approx(expected)


def _reference_aupro(maps, masks, fpr_limit=0.3):
    """Brute force over every distinct score, with sorted arrays instead of bins."""
    negatives = np.sort(np.concatenate([a[m == 0] for a, m in zip(maps, masks)]))
    regions = []
    for amap, mask in zip(maps, masks):
        count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        regions += [np.sort(amap[labels == k]) for k in range(1, count)]
    thresholds = np.unique(np.concatenate([a.ravel() for a in maps]))[::-1]
    fpr = [0.0] + [1 - np.searchsorted(negatives, t) / negatives.size for t in thresholds]
    pro = [0.0] + [np.mean([1 - np.searchsorted(r, t) / r.size for r in regions]) for t in thresholds]
    fpr, pro = np.array(fpr), np.array(pro)
    keep = fpr <= fpr_limit
    x, y = fpr[keep], pro[keep]
    area = np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2)
    nxt = int(keep.sum())
    if nxt < fpr.size and x[-1] < fpr_limit:
        y_at = y[-1] + (pro[nxt] - y[-1]) * (fpr_limit - x[-1]) / (fpr[nxt] - x[-1])
        area += (y[-1] + y_at) / 2 * (fpr_limit - x[-1])
    return area / fpr_limit


def test_aupro_matches_brute_force_on_random_data():
    rng = np.random.default_rng(2)
    maps, masks = [], []
    for index in range(4):
        mask = np.zeros((48, 48), np.uint8)
        if index:  # the first image is good
            cv2.circle(mask, (int(rng.integers(10, 38)), int(rng.integers(10, 38))), int(rng.integers(2, 8)), 1, -1)
            cv2.rectangle(mask, (2, 2), (4, 3 + index), 1, -1)
        maps.append(rng.random(mask.shape) + 0.8 * mask)
        masks.append(mask)
    expected = _reference_aupro(maps, masks)
    assert aupro(maps, masks, num_bins=100_000) == pytest.approx(expected, abs=1e-9)  # exact bins
    assert aupro(maps, masks, num_bins=2_000) == pytest.approx(expected, abs=5e-3)
    assert aupro(maps, masks, fpr_limit=0.05) == pytest.approx(_reference_aupro(maps, masks, 0.05), abs=1e-9)
