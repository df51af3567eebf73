"""Pixel-level metrics: pixel AUROC and AUPRO (MVTec AD's per-region overlap), in pure numpy.

A test set easily holds 60 million pixels, too many to sort comfortably. Both metrics therefore
share one scheme: every pixel's score is put into one of ``num_bins`` bins whose edges are
quantiles of (a deterministic sample of) all scores, and the metrics are computed from the
per-bin counts. Thresholds fall on bin edges, so with ``num_bins=10_000`` the curves have
thousands of points and pixel AUROC differs from the exact value by well under 1e-3 (pixels of
opposite classes in the same bin count as half-ties). When the data hold at most ``num_bins``
distinct scores (and few enough pixels to see them all), each bin holds one value and both
metrics are exact. Cost: one pass over the pixels; 60 million float32 pixels take about 7 s per
metric on one CPU core and little memory beyond the maps themselves.

Images whose mask is ``None`` are left out. A mask pixel is defective when it is non-zero; a good
image with an all-zero mask contributes only defect-free pixels.

>>> import numpy as np
>>> mask = np.zeros((8, 8), np.uint8); mask[2:4, 2:4] = 1
>>> pixel_auroc([mask.astype(np.float32)], [mask])
1.0
>>> round(aupro([mask.astype(np.float32)], [mask]), 6)
1.0
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from defectscope.errors import ConfigError

__all__ = ["aupro", "pixel_auroc"]

_MAX_SAMPLE = 2_000_000  # scores used to place the bin edges


def _pairs(
    anomaly_maps: Sequence[np.ndarray], masks: Sequence[np.ndarray | None]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Validated ``(map as float, mask as bool)`` pairs of the images that have a mask."""
    if len(anomaly_maps) != len(masks):
        raise ConfigError(f"{len(anomaly_maps)} anomaly maps but {len(masks)} masks: give one each")
    pairs = []
    for index, (amap, mask) in enumerate(zip(anomaly_maps, masks)):
        if mask is None:
            continue
        if amap is None:
            raise ConfigError(f"image {index} has a mask but no anomaly map")
        amap, mask = np.asarray(amap), np.asarray(mask)
        if amap.shape != mask.shape:
            raise ConfigError(
                f"image {index}: anomaly map shape {amap.shape} differs from mask shape "
                f"{mask.shape}; resize the map to the image size first"
            )
        if amap.ndim != 2:
            raise ConfigError(f"image {index}: anomaly map must be 2-D (height, width): {amap.shape}")
        if np.isnan(amap).any():
            raise ConfigError(f"image {index}: anomaly map contains NaN")
        pairs.append((amap, mask != 0))
    return pairs


def _bin_edges(maps: Sequence[np.ndarray], num_bins: int) -> np.ndarray:
    """Ascending, distinct lower edges of the score bins (quantiles of a strided sample)."""
    if num_bins < 2:
        raise ConfigError(f"num_bins must be at least 2, got {num_bins}")
    total = sum(m.size for m in maps)
    stride = max(1, -(-total // _MAX_SAMPLE))
    sample = np.concatenate([m.ravel()[::stride] for m in maps]).astype(np.float64)
    distinct = np.unique(sample)
    if stride == 1 and distinct.size <= num_bins:
        return distinct  # one bin per distinct value: exact
    return np.unique(np.quantile(sample, np.linspace(0.0, 1.0, num_bins)))


def _bin_index(amap: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of every pixel: bin ``i`` holds ``[edges[i], edges[i+1])``; lower scores go to bin 0."""
    index = np.searchsorted(edges, amap.ravel().astype(np.float64), side="right") - 1
    return np.clip(index, 0, edges.size - 1)


def _tail_sums(hist: np.ndarray) -> np.ndarray:
    """``out[i] = hist[i:].sum()``: the count with ``score >= edges[i]``."""
    return np.cumsum(hist[::-1])[::-1]


def pixel_auroc(
    anomaly_maps: Sequence[np.ndarray], masks: Sequence[np.ndarray | None], *, num_bins: int = 10_000
) -> float | None:
    """Pixel AUROC over every pixel of the images that have a mask; ``None`` if a class is missing.

    Accuracy: exact when at most ``num_bins`` distinct scores exist (and <= 2 million pixels);
    otherwise within about 1e-3 of the exact value (see the module docstring).

    >>> import numpy as np
    >>> pixel_auroc([np.array([[0.1, 0.9]])], [np.array([[0, 1]])])
    1.0
    """
    pairs = _pairs(anomaly_maps, masks)
    if not pairs:
        return None
    edges = _bin_edges([amap for amap, _ in pairs], num_bins)
    positives = np.zeros(edges.size, dtype=np.float64)
    negatives = np.zeros(edges.size, dtype=np.float64)
    for amap, mask in pairs:
        index = _bin_index(amap, edges)
        flat_mask = mask.ravel()
        positives += np.bincount(index[flat_mask], minlength=edges.size)
        negatives += np.bincount(index[~flat_mask], minlength=edges.size)
    n_pos, n_neg = positives.sum(), negatives.sum()
    if n_pos == 0 or n_neg == 0:
        return None
    negatives_below = np.cumsum(negatives) - negatives
    wins = np.sum(positives * (negatives_below + 0.5 * negatives))
    return float(wins / (n_pos * n_neg))


def _area_up_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoid area under ``y(x)`` (``x`` ascending) from ``x[0]`` to ``x_max``, interpolating
    the point at ``x_max`` when it falls between two points."""
    inside = int(np.searchsorted(x, x_max, side="right"))
    xs, ys = x[:inside], y[:inside]
    area = float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2.0))
    if inside < x.size and x[inside - 1] < x_max:
        x0, x1, y0, y1 = x[inside - 1], x[inside], y[inside - 1], y[inside]
        y_at = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        area += 0.5 * (y0 + y_at) * (x_max - x0)
    return float(area)


def aupro(
    anomaly_maps: Sequence[np.ndarray],
    masks: Sequence[np.ndarray | None],
    fpr_limit: float = 0.3,
    num_bins: int = 10_000,
) -> float | None:
    """Area under the PRO curve up to ``fpr_limit``, normalised so a perfect map gives 1.0.

    The MVTec AD definition: each 8-connected region of a ground-truth mask is one defect. At a
    threshold, PRO is the mean over all regions (of all images) of the fraction of the region's
    pixels scoring ``>=`` the threshold; FPR is the fraction of all defect-free pixels (outside
    every mask, across all images with masks) scoring ``>=`` it. PRO is integrated over FPR from 0
    to ``fpr_limit`` with the trapezoid rule and divided by ``fpr_limit``. Thresholds are the
    shared bin edges (see the module docstring), so small regions weigh as much as large ones.

    Returns ``None`` when there is no defect region or no defect-free pixel.

    >>> import numpy as np
    >>> mask = np.zeros((4, 4), np.uint8); mask[0, 0] = 1
    >>> round(aupro([np.full((4, 4), 0.5)], [mask]), 6)  # a constant map: PRO = FPR
    0.15
    """
    if not 0.0 < fpr_limit <= 1.0:
        raise ConfigError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    pairs = _pairs(anomaly_maps, masks)
    if not pairs:
        return None
    edges = _bin_edges([amap for amap, _ in pairs], num_bins)
    region_weight = np.zeros(edges.size, dtype=np.float64)  # sum of 1/area over region pixels
    negatives = np.zeros(edges.size, dtype=np.float64)
    n_regions = 0
    for amap, mask in pairs:
        index = _bin_index(amap, edges)
        flat_mask = mask.ravel()
        negatives += np.bincount(index[~flat_mask], minlength=edges.size)
        if not flat_mask.any():
            continue
        count, regions = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        region_of_pixel = regions.ravel()[flat_mask]
        areas = np.bincount(region_of_pixel, minlength=count).astype(np.float64)
        region_weight += np.bincount(
            index[flat_mask], weights=1.0 / areas[region_of_pixel], minlength=edges.size
        )
        n_regions += count - 1
    if n_regions == 0 or negatives.sum() == 0:
        return None
    # Thresholds from high to low: FPR and PRO both rise from (0, 0) towards (1, 1).
    fpr = np.r_[0.0, _tail_sums(negatives)[::-1] / negatives.sum()]
    pro = np.r_[0.0, _tail_sums(region_weight)[::-1] / n_regions]
    return float(_area_up_to(fpr, np.minimum(pro, 1.0), fpr_limit) / fpr_limit)
