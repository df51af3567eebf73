"""The reference comparison's inference around its network (numpy and OpenCV, no torch).

One image and its template -> comparison (``reference_compare``), the largest ``max_candidates``
regions, a window and a crop per region, the window network (any ``forward``: torch's in
``ReferenceComparison``, onnxruntime's in the runtime), then the boxes decoded from the window
fractions, mapped back to the image's frame and turned into detections by
``defectscope.scoring.detection``. The torch model and the torch-free runtime both call
``detect_boxes``, so the two paths differ only by the network's floating-point noise.

>>> settings = ReferenceSettings.from_config(bundle_info["model"]["config"])  # doctest: +SKIP
>>> detect_boxes(image, template, settings, classes, forward)                # doctest: +SKIP
[Detection(box=(466.0, 441.0, 493.0, 470.0), label='mousebite', confidence=0.98)]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from defectscope.errors import ConfigError
from defectscope.scoring.reference_compare import (
    CompareConfig,
    Comparison,
    compare,
    crop_windows,
    decode_boxes,
    extract_crops,
)
from defectscope.scoring.classification import class_probabilities
from defectscope.scoring.detection import box_detections
from defectscope.values import Detection

GOLDEN_TEMPLATE_KEY = "golden_template"  # the product template in the bundle, when stored
WINDOW_BATCH = 256  # windows per network call

# float32 N x 3 x s x s window input -> (class logits N x (K + 1), box fractions N x 4)
WindowForward = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray]"]


@dataclass(frozen=True)
class ReferenceSettings:
    """What inference needs from ``ReferenceConfig`` (built from its dict, as the bundle holds
    it, so the runtime reads it without the torch model's module)."""

    compare: CompareConfig
    max_candidates: int
    context: int
    region_scale: float
    crop_size: int
    min_confidence: float
    nms_iou: float
    # test-time averaging: over the eight flips / quarter turns of each window, and over these
    # window scales (1.0 alone: none); bundles saved before them have neither
    test_flips: bool = False
    test_scales: tuple[float, ...] = (1.0,)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "ReferenceSettings":
        """From ``ReferenceConfig.to_dict()``; a missing option is a ``ConfigError``."""
        names = [f.name for f in dataclasses.fields(CompareConfig)]
        try:
            return cls(CompareConfig(**{name: config[name] for name in names}),
                       int(config["max_candidates"]), int(config["context"]),
                       float(config["region_scale"]), int(config["crop_size"]),
                       float(config["min_confidence"]), float(config["nms_iou"]),
                       bool(config.get("test_flips", False)),
                       window_scales(float(config.get("scale_jitter", 0.0)))
                       if config.get("test_scales", False) else (1.0,))
        except KeyError as error:
            raise ConfigError(f"the reference model's config lacks {error}") from None


def window_scales(jitter: float) -> tuple[float, ...]:
    """The window scales training draws from with ``scale_jitter`` = ``jitter``: 1, then
    1 / (1 + jitter) and 1 + jitter when it is above 0."""
    return (1.0, 1.0 / (1.0 + jitter), 1.0 + jitter) if jitter > 0 else (1.0,)


def scaled_settings(settings: ReferenceSettings, scale: float) -> ReferenceSettings:
    """``settings`` with windows ``scale`` times as large (context and region scale alike)."""
    return dataclasses.replace(settings, context=max(8, int(round(settings.context * scale))),
                               region_scale=max(1.0, settings.region_scale * scale))


def candidate_comparison(image: np.ndarray, template: np.ndarray | None,
                         settings: ReferenceSettings) -> Comparison:
    """``compare`` with at most ``max_candidates`` regions, the largest ones (a wrong template
    guard), kept in their original order."""
    comparison = compare(image, template, settings.compare)
    regions = comparison.regions
    if len(regions) > settings.max_candidates:
        area = (regions[:, 2] - regions[:, 0]) * (regions[:, 3] - regions[:, 1])
        keep = np.sort(np.argsort(-area, kind="stable")[:settings.max_candidates])
        comparison = dataclasses.replace(comparison, regions=regions[keep])
    return comparison


def candidate_windows(comparison: Comparison, settings: ReferenceSettings
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(windows N x 3: x0, y0, side; uint8 crops N x 3 x s x s) around every candidate."""
    windows = crop_windows(comparison.regions, settings.context, settings.region_scale)
    return windows, extract_crops(comparison, windows, settings.crop_size)


def window_input(crops: np.ndarray) -> np.ndarray:
    """uint8 crops -> float32 in [-1, 1], the network's input (as ``reference_net.to_input``)."""
    return np.asarray(crops, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)


def dihedral_crops(crops: np.ndarray, code: int) -> np.ndarray:
    """One of the eight flips / quarter turns of N x C x s x s windows (``code`` bits, applied in
    this order: transpose, flip x, flip y; as training's ``reference_loop.dihedral``)."""
    if code & 1:
        crops = crops.transpose(0, 1, 3, 2)
    if code & 2:
        crops = crops[:, :, :, ::-1]
    if code & 4:
        crops = crops[:, :, ::-1, :]
    return np.ascontiguousarray(crops)


def undo_dihedral_boxes(boxes: np.ndarray, code: int) -> np.ndarray:
    """Box fractions (N x 4: x1, y1, x2, y2) predicted on ``dihedral_crops(crops, code)`` as
    fractions of the untransformed windows: the three steps undone in reverse order."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if code & 4:
        boxes = np.stack([boxes[:, 0], 1 - boxes[:, 3], boxes[:, 2], 1 - boxes[:, 1]], axis=1)
    if code & 2:
        boxes = np.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], axis=1)
    if code & 1:
        boxes = boxes[:, [1, 0, 3, 2]]
    return boxes


def _window_outputs_once(forward: WindowForward, crops: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    probabilities, offsets = [], []
    for start in range(0, len(crops), WINDOW_BATCH):
        batch = window_input(crops[start:start + WINDOW_BATCH])
        logits, boxes = forward(np.ascontiguousarray(batch))
        probabilities.append(class_probabilities(logits))
        offsets.append(np.asarray(boxes, dtype=np.float32))
    return np.concatenate(probabilities), np.concatenate(offsets)


def window_outputs(forward: WindowForward, crops: np.ndarray, flips: bool = False
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(class probabilities N x (K + 1) float64, box fractions N x 4) of uint8 crops; with
    ``flips`` the mean over the eight flips / quarter turns of every window (boxes mapped back
    to the window first)."""
    if not flips:
        return _window_outputs_once(forward, crops)
    probabilities, offsets = 0.0, 0.0
    for code in range(8):
        p, b = _window_outputs_once(forward, dihedral_crops(crops, code))
        probabilities, offsets = probabilities + p, offsets + undo_dihedral_boxes(b, code)
    return probabilities / 8.0, (offsets / 8.0).astype(np.float32)


def detect_boxes(image: np.ndarray, template: np.ndarray | None, settings: ReferenceSettings,
                 classes: Sequence[str], forward: WindowForward) -> list[Detection]:
    """Every box with a defect probability >= ``min_confidence``, best first.

    Raises as ``compare`` does: ``DefectscopeError`` without a template, ``DataError`` for one
    of another size (without ``align``), ``AlignmentError`` when ``align`` cannot register.
    """
    comparison = candidate_comparison(image, template, settings)
    if not len(comparison.regions):
        return []
    probabilities, boxes = 0.0, 0.0
    for scale in settings.test_scales:  # test-time averaging over window scales, if asked
        windows, crops = candidate_windows(comparison, scaled_settings(settings, scale))
        p, offsets = window_outputs(forward, crops, settings.test_flips)
        probabilities, boxes = probabilities + p, boxes + decode_boxes(offsets, windows)
    n = len(settings.test_scales)
    boxes = comparison.to_image_frame(boxes / n)
    probabilities = probabilities / n
    return box_detections(probabilities, boxes, np.shape(image)[:2], classes,
                          settings.min_confidence, settings.nms_iou)
