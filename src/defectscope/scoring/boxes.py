"""Box geometry in numpy: pairwise IoU and non-maximum suppression (no torch).

The detectors, the torch-free runtime and the evaluation all call these, so a box is judged the
same way everywhere. Boxes are ``(x1, y1, x2, y2)`` pixel corners with x2/y2 exclusive (a box
``(0, 0, 2, 2)`` has area 4), the convention of ``defectscope.data.boxes.dataset.Box`` and of
pycocotools' IoU.

>>> box_iou([[0, 0, 2, 2]], [[1, 0, 3, 2], [4, 4, 5, 5]]).round(4).tolist()
[[0.3333, 0.0]]
>>> nms([[0, 0, 2, 2], [0, 0, 2, 1.9], [4, 4, 5, 5]], [0.9, 0.8, 0.7], iou=0.5).tolist()
[0, 2]
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from defectscope.errors import ConfigError

__all__ = ["box_iou", "nms"]


def _as_boxes(boxes: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ConfigError(f"{name} must be an (N, 4) array of x1, y1, x2, y2; got shape "
                          f"{array.shape}")
    return array


def box_iou(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Intersection over union of every box of ``a`` (N x 4) with every box of ``b`` (M x 4).

    Returns an (N, M) float64 array; a pair with zero union (two empty boxes) has IoU 0.
    """
    a, b = _as_boxes(a, "a"), _as_boxes(b, "b")
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def nms(boxes: ArrayLike, scores: ArrayLike, iou: float, labels: ArrayLike | None = None
        ) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first.

    A box is dropped when it overlaps a kept, higher-scored box by IoU > ``iou``. With
    ``labels``, only boxes of the same label suppress each other (class-wise NMS). Ties in score
    keep the earlier box, so the result is deterministic.
    """
    array = _as_boxes(boxes, "boxes")
    score = np.asarray(scores, dtype=np.float64).ravel()
    if score.size != len(array):
        raise ConfigError(f"{len(array)} boxes but {score.size} scores; give one score per box")
    if not 0.0 <= float(iou) <= 1.0:
        raise ConfigError(f"nms iou must be between 0 and 1, got {iou!r}")
    group = np.zeros(len(array), dtype=np.int64) if labels is None else \
        np.unique(np.asarray(labels).ravel(), return_inverse=True)[1].ravel()
    if len(group) != len(array):
        raise ConfigError(f"{len(array)} boxes but {len(group)} labels; give one label per box")
    order = np.argsort(-score, kind="stable")
    suppressed = np.zeros(len(array), dtype=bool)
    keep = []
    for position, index in enumerate(order):
        if suppressed[index]:
            continue
        keep.append(index)
        rest = order[position + 1:]
        rest = rest[~suppressed[rest] & (group[rest] == group[index])]
        if rest.size:
            overlaps = box_iou(array[index:index + 1], array[rest])[0]
            suppressed[rest[overlaps > iou]] = True
    return np.asarray(keep, dtype=np.int64)
