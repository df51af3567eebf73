"""Patch score grid -> anomaly map at the image's own size (OpenCV only).

Shared by every anomaly model and by the torch-free runtime, so both draw the same map.

>>> anomaly_map(np.zeros((8, 8), np.float32), (128, 128), (300, 400), blur_sigma=4.0).shape
(300, 400)
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def anomaly_map(patch_scores: np.ndarray, input_hw: Sequence[int], image_hw: Sequence[int],
                blur_sigma: float) -> np.ndarray:
    """Upsample to the network input size, Gaussian-smooth, then resize to the original image.

    Smoothing at the input size (not the image size) keeps ``blur_sigma`` meaning the same thing
    whatever the camera resolution.
    """
    grid = np.ascontiguousarray(patch_scores, dtype=np.float32)
    smooth = cv2.resize(grid, (int(input_hw[1]), int(input_hw[0])), interpolation=cv2.INTER_LINEAR)
    if blur_sigma > 0:
        smooth = cv2.GaussianBlur(smooth, (0, 0), blur_sigma)
    if tuple(image_hw) != tuple(input_hw):
        smooth = cv2.resize(smooth, (int(image_hw[1]), int(image_hw[0])),
                            interpolation=cv2.INTER_LINEAR)
    return smooth
