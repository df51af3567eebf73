"""The learned detector's decoding after its network (FCOS), in numpy: no torch.

The network (``defectscope.models.detector_net.HeadOutputs``; the same graph in ONNX) stops at
FCOS's raw head outputs for a padded batch: class logits N x P x K, box distances N x P x 4 and
centre-ness logits N x P x 1 over the P points of every pyramid level, plus each level's grid
size L x 2. Everything after that is here, and ``BoxDetector.detect`` and the torch-free runtime
both call ``detect_images``, so the two cannot drift apart. It reproduces torchvision's
``FCOS.postprocess_detections`` (torchvision 0.2x):

- a level's points are its grid cells ``stride`` apart (the stride is the padded batch size //
  the grid size, as torchvision's ``AnchorGenerator``), each with a square "anchor" of the
  level's size centred on it;
- score = sqrt(sigmoid(class logit) * sigmoid(centre-ness)) per point and class; those above
  ``min_confidence`` are kept, at most ``TOPK_CANDIDATES`` per level, best first;
- boxes = point -/+ distances * anchor size (``BoxLinearCoder(normalize_by_size=True)``),
  clipped to the image before padding;
- per-class NMS (``defectscope.scoring.boxes.nms``), at most ``max_detections`` boxes;
- boxes scaled back to the original image, most confident first.

>>> settings = FcosSettings.from_config(bundle_info["model"]["config"])   # doctest: +SKIP
>>> detect_images([image], preprocess, forward, classes, settings)[0]      # doctest: +SKIP
[Detection(box=(12.5, 40.1, 88.0, 61.7), label='scratches', confidence=0.91)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from defectscope.errors import ConfigError
from defectscope.scoring.boxes import nms
from defectscope.values import Detection

TOPK_CANDIDATES = 1000  # torchvision FCOS's topk_candidates: points kept per level before NMS
SIZE_DIVISIBLE = 32  # the batch is padded to a multiple of this (GeneralizedRCNNTransform's)

# padded float32 batch N x 3 x H x W -> (class logits N x P x K, box distances N x P x 4,
# centre-ness logits N x P x 1, level grid sizes L x 2)
HeadForward = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]"]


def fcos_strides(min_stride: int, max_stride: int) -> tuple[int, ...]:
    """The pyramid levels' strides (and anchor sizes) from ``min_stride`` to ``max_stride``."""
    return tuple(s for s in (4, 8, 16, 32, 64) if min_stride <= s <= max_stride)


@dataclass(frozen=True)
class FcosSettings:
    """What decoding needs from ``DetectorConfig`` (read from its dict, as the bundle holds it,
    so the runtime needs no torch module)."""

    strides: tuple[int, ...]
    min_confidence: float
    nms_iou: float
    max_detections: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "FcosSettings":
        """From ``DetectorConfig.to_dict()``; a missing option is a ``ConfigError``."""
        try:
            return cls(fcos_strides(int(config["min_stride"]), int(config["max_stride"])),
                       float(config["min_confidence"]), float(config["nms_iou"]),
                       int(config["max_detections"]))
        except KeyError as error:
            raise ConfigError(f"the detector's config lacks {error}") from None


def pad_batch(inputs: Sequence[np.ndarray]) -> np.ndarray:
    """Preprocessed C x h x w images -> one zero-padded float32 batch, its sides the largest
    rounded up to ``SIZE_DIVISIBLE`` (what torchvision's transform does), images top-left."""
    height = max(x.shape[1] for x in inputs)
    width = max(x.shape[2] for x in inputs)
    height = -(-height // SIZE_DIVISIBLE) * SIZE_DIVISIBLE
    width = -(-width // SIZE_DIVISIBLE) * SIZE_DIVISIBLE
    batch = np.zeros((len(inputs), inputs[0].shape[0], height, width), np.float32)
    for i, x in enumerate(inputs):
        batch[i, :, : x.shape[1], : x.shape[2]] = x
    return batch


def level_anchors(level_sizes: np.ndarray, batch_hw: Sequence[int],
                  strides: Sequence[int]) -> list[np.ndarray]:
    """Each level's anchors (G x 4 float32, cells row by row), as torchvision's
    ``AnchorGenerator`` with one size per level and aspect ratio 1."""
    level_sizes = np.asarray(level_sizes, dtype=np.int64).reshape(-1, 2)
    if len(level_sizes) != len(strides):
        raise ConfigError(f"the network gave {len(level_sizes)} pyramid levels, the config "
                          f"names {len(strides)} strides {tuple(strides)}")
    anchors = []
    for (grid_h, grid_w), size in zip(level_sizes, strides):
        step_h, step_w = int(batch_hw[0]) // int(grid_h), int(batch_hw[1]) // int(grid_w)
        half = np.round(np.float32(size) / np.float32(2))
        shift_y, shift_x = np.meshgrid(np.arange(grid_h) * step_h, np.arange(grid_w) * step_w,
                                       indexing="ij")
        shift_x = shift_x.reshape(-1).astype(np.float32)
        shift_y = shift_y.reshape(-1).astype(np.float32)
        anchors.append(np.stack([shift_x - half, shift_y - half, shift_x + half, shift_y + half],
                                axis=1).astype(np.float32))
    return anchors


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (np.float32(1) / (np.float32(1) + np.exp(-x))).astype(np.float32)


def decode_boxes(distances: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """FCOS's box decoding (``BoxLinearCoder(normalize_by_size=True).decode``), float32."""
    distances = np.asarray(distances, dtype=np.float32)
    centre_x = np.float32(0.5) * (anchors[:, 0] + anchors[:, 2])
    centre_y = np.float32(0.5) * (anchors[:, 1] + anchors[:, 3])
    width, height = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    scaled = distances * np.stack([width, height, width, height], axis=1)
    return np.stack([centre_x - scaled[:, 0], centre_y - scaled[:, 1],
                     centre_x + scaled[:, 2], centre_y + scaled[:, 3]], axis=1)


def fcos_boxes(class_logits: np.ndarray, box_regression: np.ndarray, centerness: np.ndarray,
               anchors: Sequence[np.ndarray], input_hw: Sequence[int], settings: FcosSettings
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's head outputs (P x K, P x 4, P x 1) -> (boxes M x 4 float32 in the input's
    pixel frame, scores M float32, class indices M), after NMS, best first."""
    class_logits = np.asarray(class_logits, dtype=np.float32)
    box_regression = np.asarray(box_regression, dtype=np.float32)
    centerness = np.asarray(centerness, dtype=np.float32).reshape(-1, 1)
    n_classes = class_logits.shape[-1]
    height, width = float(input_hw[0]), float(input_hw[1])
    boxes, scores, labels = [], [], []
    start = 0
    for level in anchors:
        stop = start + len(level)
        level_scores = np.sqrt(_sigmoid(class_logits[start:stop])
                               * _sigmoid(centerness[start:stop])).reshape(-1)
        candidates = np.flatnonzero(level_scores > settings.min_confidence)
        order = np.argsort(-level_scores[candidates], kind="stable")[:TOPK_CANDIDATES]
        candidates = candidates[order]
        points, kinds = candidates // n_classes, candidates % n_classes
        level_boxes = decode_boxes(box_regression[start:stop][points], level[points])
        level_boxes[:, 0::2] = np.clip(level_boxes[:, 0::2], 0, width)
        level_boxes[:, 1::2] = np.clip(level_boxes[:, 1::2], 0, height)
        boxes.append(level_boxes)
        scores.append(level_scores[candidates])
        labels.append(kinds)
        start = stop
    if start != len(class_logits):
        raise ConfigError(f"the network gave {len(class_logits)} points, its levels hold {start}")
    boxes_all = np.concatenate(boxes).reshape(-1, 4)
    scores_all = np.concatenate(scores).astype(np.float32)
    labels_all = np.concatenate(labels).astype(np.int64)
    keep = nms(boxes_all, scores_all, settings.nms_iou, labels=labels_all)
    keep = keep[: settings.max_detections]
    return boxes_all[keep], scores_all[keep], labels_all[keep]


def detect_images(images: Sequence[np.ndarray], preprocess: Callable[[np.ndarray], np.ndarray],
                  forward: HeadForward, classes: Sequence[str], settings: FcosSettings
                  ) -> list[list[Detection]]:
    """Detections for RGB/grey images, most confident first, boxes in each image's pixel frame:
    preprocess, one padded batch through ``forward`` (torch or onnxruntime), ``fcos_boxes``."""
    if not len(images):
        return []
    inputs = [preprocess(image) for image in images]
    batch = pad_batch(inputs)
    class_logits, box_regression, centerness, level_sizes = forward(batch)
    anchors = level_anchors(level_sizes, batch.shape[2:], settings.strides)
    found = []
    for i, (image, x) in enumerate(zip(images, inputs)):
        boxes, scores, labels = fcos_boxes(class_logits[i], box_regression[i], centerness[i],
                                           anchors, x.shape[1:], settings)
        sx, sy = image.shape[1] / x.shape[2], image.shape[0] / x.shape[1]
        boxes = boxes.astype(np.float64) * (sx, sy, sx, sy)
        scores = scores.astype(np.float64)
        order = np.argsort(-scores, kind="stable")
        found.append([Detection((float(boxes[j, 0]), float(boxes[j, 1]), float(boxes[j, 2]),
                                 float(boxes[j, 3])), classes[labels[j]], float(scores[j]))
                      for j in order if scores[j] >= settings.min_confidence])
    return found
