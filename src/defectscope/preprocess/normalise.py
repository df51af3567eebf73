"""Per-image brightness and contrast normalisation: pure numpy/OpenCV functions.

Why: a camera's exposure, gain or lighting drifts between sessions. A model trained on one
session then scores every image of a brighter session as anomalous (on Magnetic Tile, the good
test images come from sessions whose mean brightness the training set never saw). Normalising
each image on its own statistics removes that nuisance before the network sees it.

Methods (``normalise`` in ``PreprocessConfig``):
- ``"none"``: leave the image as it is.
- ``"standardise"``: ``(x - mean) / std * 40 + 128`` over all pixels and channels (one shift and
  one scale per image, so colours keep their relations). Exact for a gain/offset change.
- ``"percentile"``: map the 1st..99th percentiles to 28..228 (robust to a few extreme pixels).
- ``"clahe"``: OpenCV CLAHE on the lightness channel (local contrast; also evens out shading).
- ``"clip_highlights"``: clip to the image's 1st..70th percentiles, then stretch those to
  28..228. Highlights carry no texture afterwards, in training and in inspection alike, so a
  brighter exposure that saturates them changes little the model sees. On Magnetic Tile a x1.3
  brightening saturates ~8% of pixels and costs PatchCore 0.275 image AUROC with
  ``standardise``; with this, ~0.01 (clipping at the 80th/90th percentile: ~0.02/0.07), while
  dark defects (blowholes, cracks) keep their contrast (``benchmarks/preprocess_targets.py
  --only norm``). Use it where exposure drifts upward or highlights saturate.

>>> import numpy as np
>>> image = np.full((4, 4, 3), 10, np.uint8); image[0, 0] = 30
>>> normalise_image(image, "standardise").dtype
dtype('uint8')
"""

from __future__ import annotations

import cv2
import numpy as np

NORMALISE_METHODS = ("none", "standardise", "percentile", "clahe", "clip_highlights")
TARGET_MEAN = 128.0
TARGET_STD = 40.0  # leaves +-3 std inside 0..255
PERCENTILES = (1.0, 99.0)
PERCENTILE_RANGE = (28.0, 228.0)
CLIP_PERCENTILES = (1.0, 70.0)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def standardise(image: np.ndarray) -> np.ndarray:
    """Shift and scale so the image's mean is 128 and its standard deviation 40."""
    values = image.astype(np.float32)
    mean, std = cv2.meanStdDev(values.reshape(-1, 1))
    scale = TARGET_STD / max(float(std[0, 0]), 1e-3)  # a flat image stays flat, mid-grey
    return _to_uint8((values - float(mean[0, 0])) * scale + TARGET_MEAN)


def stretch_percentiles(
    image: np.ndarray,
    percentiles: tuple[float, float] = PERCENTILES,
    out_range: tuple[float, float] = PERCENTILE_RANGE,
    clip: bool = False,
) -> np.ndarray:
    """Map the ``percentiles`` (default 1st and 99th) of all pixel values to ``out_range``;
    with ``clip``, values outside those percentiles are first clipped to them."""
    values = image.astype(np.float32)
    low, high = np.percentile(values, percentiles)
    if clip:
        values = np.clip(values, low, high)
    out_low, out_high = out_range
    scale = (out_high - out_low) / max(float(high - low), 1.0)
    return _to_uint8((values - low) * scale + out_low)


def clahe(image: np.ndarray, clip_limit: float = 2.0, tiles: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of lightness (grey images stay grey)."""
    equalise = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles, tiles))
    if np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2]):
        grey = equalise.apply(np.ascontiguousarray(image[..., 0]))
        return np.repeat(grey[..., None], 3, axis=2)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    lab[..., 0] = equalise.apply(np.ascontiguousarray(lab[..., 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def grey_cdf(grey: np.ndarray) -> np.ndarray:
    """Cumulative distribution (256 values, last = 1) of a uint8 grey image."""
    hist = cv2.calcHist([np.ascontiguousarray(grey)], [0], None, [256], [0, 256]).ravel()
    return np.cumsum(hist, dtype=np.float64) / max(float(hist.sum()), 1.0)


def mean_cdf(greys: list[np.ndarray]) -> np.ndarray:
    """The reference distribution histogram matching maps to: the mean CDF of ``greys``."""
    if not greys:
        raise ValueError("histogram matching needs at least one training image")
    return np.mean([grey_cdf(g) for g in greys], axis=0)


def match_histogram(image: np.ndarray, reference_cdf: np.ndarray) -> np.ndarray:
    """Map grey levels so the image's grey histogram matches ``reference_cdf``.

    One lookup table from the grey channel is applied to every channel, so colours keep their
    relations; a gain/offset change of the image is undone up to quantisation.
    """
    reference_cdf = np.asarray(reference_cdf, np.float64)
    if reference_cdf.shape != (256,):
        raise ValueError(f"reference CDF must have 256 values, not {reference_cdf.shape}")
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    cdf = grey_cdf(grey)
    # The midpoint of each level's probability mass, so a level maps to the middle of its match.
    mid = cdf - 0.5 * np.diff(np.r_[0.0, cdf])
    lut = np.clip(np.searchsorted(reference_cdf, mid, side="left"), 0, 255).astype(np.uint8)
    return cv2.LUT(image, lut)


def normalise_image(image: np.ndarray, method: str) -> np.ndarray:
    """Apply ``method`` to an RGB uint8 image; returns a new uint8 image of the same shape."""
    if method == "none":
        return image
    if method == "standardise":
        return standardise(image)
    if method == "percentile":
        return stretch_percentiles(image)
    if method == "clahe":
        return clahe(image)
    if method == "clip_highlights":
        return stretch_percentiles(image, CLIP_PERCENTILES, clip=True)
    raise ValueError(f"unknown normalise method {method!r}; choose from {NORMALISE_METHODS}")
