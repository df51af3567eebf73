"""The segmenter's decision after the network: logits -> defect probabilities, score and map.

numpy and OpenCV only, so the torch model (``defectscope.models.segmenter``) and the torch-free
runtime call these very functions and cannot drift apart. The network itself is a ``forward``
function (N x 3 x H x W float32 -> logits N x 1 x H x W): torch's or onnxruntime's.

- ``defect_probabilities``: the sigmoid of the logits, or with ``flip_average`` the mean of the
  probabilities of the batch and its three mirror images (each mirrored back). The four mirrors
  form a group, so the averaged map of a mirrored image is exactly the mirrored map.
- ``area_score``: the highest probability reached over at least ``min_area`` of the image (the
  k-th largest pixel, k = ``min_area`` x pixels): one hot pixel does not reject a part.
- ``probability_map``: the map resized to the image's size (bilinear).
- ``segmentation_result``: score, verdict and map as the ``InspectionResult``.

>>> prob = np.zeros((10, 10), np.float32); prob[:2, :5] = 0.5; prob[0, 0] = 1.0
>>> area_score(prob, 0.0), area_score(prob, 0.05)
(1.0, 0.5)
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import cv2
import numpy as np

from defectscope.values import InspectionResult, Verdict

MIRRORS = ((), (-1,), (-2,), (-2, -1))  # identity, left-right, up-down, both (180 degrees)

Forward = Callable[[np.ndarray], np.ndarray]


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """The logistic function, float32 (computed without overflow in float64)."""
    x = np.asarray(logits, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x)).astype(np.float32)


def defect_probabilities(forward: Forward, batch: np.ndarray,
                         flip_average: bool = False) -> np.ndarray:
    """N x 1 x H x W float32 defect probabilities of a preprocessed batch (N x 3 x H x W).

    With ``flip_average`` the network runs four times (the batch and its three mirrors).
    """
    mirrors = MIRRORS if flip_average else MIRRORS[:1]
    total: np.ndarray | None = None
    for axes in mirrors:
        flipped = np.ascontiguousarray(np.flip(batch, axes)) if axes else batch
        prob = sigmoid(forward(flipped))
        prob = np.flip(prob, axes) if axes else prob
        total = prob if total is None else total + prob
    assert total is not None
    return np.ascontiguousarray(total / np.float32(len(mirrors)), dtype=np.float32)


def area_score(prob: np.ndarray, min_area: float) -> float:
    """The k-th largest probability, k = max(1, round(``min_area`` x pixels))."""
    k = max(1, int(round(min_area * prob.size)))
    return float(np.partition(prob.ravel(), -k)[-k])


def probability_map(prob: np.ndarray, image_hw: Sequence[int]) -> np.ndarray:
    """A probability map (h x w, network input size) at the image's size, float32."""
    prob = np.asarray(prob, dtype=np.float32)
    height, width = int(image_hw[0]), int(image_hw[1])
    if prob.shape != (height, width):
        prob = cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(prob, dtype=np.float32)


def segmentation_output(prob: np.ndarray, image_hw: Sequence[int], min_area: float
                        ) -> tuple[float, np.ndarray]:
    """One image's probabilities (h x w) -> (image score, map at the image's size).

    The score is taken at the network's resolution, before resizing, as in training.
    """
    prob = np.asarray(prob, dtype=np.float32)
    return area_score(prob, min_area), probability_map(prob, image_hw)


def segmentation_result(score: float, heatmap: np.ndarray, threshold: float,
                        unsure_band: float = 0.0,
                        timings: Mapping[str, float] | None = None) -> InspectionResult:
    """The result of one image: verdict by ``Verdict.from_score``, the map as its anomaly map."""
    verdict = Verdict.from_score(score, threshold, unsure_band)
    return InspectionResult(score=score, verdict=verdict, anomaly_map=heatmap,
                            timings=dict(timings or {}),
                            reason="score near the threshold" if verdict is Verdict.UNSURE
                            else None)
