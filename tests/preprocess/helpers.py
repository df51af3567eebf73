"""Synthetic images with known answers for the preprocessing tests."""

from __future__ import annotations

import cv2
import numpy as np


def board(seed: int = 0, size: int = 320) -> np.ndarray:
    """A textured 'circuit board': random rectangles and discs on a gradient, RGB uint8."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size), 90, np.uint8)
    image += (np.arange(size)[None, :] * 40 // size).astype(np.uint8)
    for _ in range(60):
        x, y = rng.integers(0, size - 20, 2)
        w, h = rng.integers(6, 30, 2)
        cv2.rectangle(image, (int(x), int(y)), (int(x + w), int(y + h)), int(rng.integers(0, 255)), -1)
    for _ in range(30):
        x, y = rng.integers(10, size - 10, 2)
        cv2.circle(image, (int(x), int(y)), int(rng.integers(3, 10)), int(rng.integers(0, 255)), -1)
    return np.repeat(image[..., None], 3, axis=2)


def similarity(shape, angle: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    h, w = shape[:2]
    matrix = np.vstack([cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale), [0, 0, 1]])
    matrix[:2, 2] += shift
    return matrix


def warp(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.warpPerspective(image, matrix, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)


def corner_error(estimated: np.ndarray, truth: np.ndarray, shape) -> float:
    h, w = shape[:2]
    corners = np.float64([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]).reshape(-1, 1, 2)
    a = cv2.perspectiveTransform(corners, estimated)
    b = cv2.perspectiveTransform(corners, truth)
    return float(np.linalg.norm(a - b, axis=2).mean())
