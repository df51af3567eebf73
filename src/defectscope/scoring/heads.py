"""Every model family's scoring head: what follows the network, up to the one result type.

A head is the part of inspection that does not care which backend ran the network. It takes a
``Forward`` (a preprocessed float32 batch -> the network's outputs, in the order of the head's
``outputs``: a torch module's, an ONNX Runtime session's or an OpenVINO compiled model's) and
turns an RGB uint8 image into ``(score, map, timings)`` (``anomaly``) and an ``InspectionResult``
(``predict``). The torch models and the torch-free runtime build the same head class (the torch
model from its live state, the runtime from the bundle's arrays with ``from_bundle``), so the two
paths cannot drift apart: they differ only by the network's floating-point noise.

- ``AnomalyHead`` (patchcore, padim): steps, tiles and stitching (``score_tiled``), patch scoring
  over the bundle's memory bank or Gaussians, the smoothed anomaly map;
- ``ClassifierHead``: softmax, score = P(not good), defect type;
- ``SegmenterHead``: (flip-averaged) probabilities, the area score, the probability map;
- the box heads (``defectscope.scoring.box_heads``): reference comparison and detector.

``defectscope.scoring.families`` registers each model name's head once.
"""

from __future__ import annotations

import time
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from defectscope.errors import AlignmentError, BundleError
from defectscope.preprocess.tiling import score_tiled
from defectscope.scoring.anomaly_map import anomaly_map
from defectscope.scoring.classification import (
    class_probabilities,
    classification_result,
    not_good_score,
    probabilities_by_class,
)
from defectscope.scoring.nn_index import NearestNeighbours
from defectscope.scoring.padim import padim_scores
from defectscope.scoring.patchcore import patchcore_scores
from defectscope.scoring.segmentation import (
    defect_probabilities,
    segmentation_output,
    segmentation_result,
)
from defectscope.tensor_meta import META_KEY, decode_meta
from defectscope.values import Failure, InspectionResult, Verdict

# The network's input and output names (the ONNX file's, and the order a Forward returns).
INPUT_NAME = "image"
EMBEDDINGS_NAME = "embeddings"  # the anomaly models' network: the backbone's patch embeddings
LOGITS_NAME = "logits"  # the supervised models' network: the whole one's logits
BOXES_NAME = "boxes"  # the reference model's second output (box fractions per window)
# The detector's outputs: FCOS's raw head outputs and the pyramid levels' grid sizes.
FCOS_OUTPUTS = ("cls_logits", "bbox_regression", "bbox_ctrness", "level_sizes")

# A preprocessed float32 batch -> the network's outputs, in the head's ``outputs`` order.
Forward = Callable[[np.ndarray], Sequence[np.ndarray]]
# One image's patch embeddings (1 x D x h x w) -> (patch scores h x w, image score).
Scorer = Callable[[np.ndarray], "tuple[np.ndarray, float]"]
Timings = dict[str, float]


def near_threshold(verdict: Verdict) -> str | None:
    """The reason an UNSURE score gives; None for OK and NG."""
    return "score near the threshold" if verdict is Verdict.UNSURE else None


def bundle_array(arrays: Mapping[str, np.ndarray], key: str, name: str) -> np.ndarray:
    """``arrays[key]``; a missing one is a ``BundleError`` naming the model that needs it."""
    try:
        return arrays[key]
    except KeyError:
        raise BundleError(f"the bundle's tensors lack the array {key!r} that {name} needs"
                          ) from None


class Head:
    """The contract every family's head keeps (see the module docstring)."""

    outputs: ClassVar[tuple[str, ...]] = ()
    takes_template: ClassVar[bool] = False

    @classmethod
    def from_bundle(cls, name: str, config: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                    preprocessor) -> "Head":
        """The head of a saved model: its config, its arrays but the network's and the
        preprocessing's, its restored preprocessor. A missing array is a ``BundleError``."""
        raise NotImplementedError

    def anomaly(self, forward: Forward, image: np.ndarray, template: np.ndarray | None = None
                ) -> tuple[float, np.ndarray | None, Timings]:
        """(image score, map at the image's size or None, timings ms) of one RGB uint8 image."""
        raise NotImplementedError

    def predict(self, forward: Forward, image: np.ndarray, threshold: float, unsure_band: float,
                template: np.ndarray | None = None) -> InspectionResult:
        """Score, verdict at ``threshold`` (UNSURE within ``unsure_band``) and what else the
        family reports."""
        raise NotImplementedError


def build_scorer(name: str, arrays: Mapping[str, np.ndarray],
                 config: Mapping[str, Any] | None = None) -> Scorer:
    """The patch scoring of a saved ``patchcore`` or ``padim`` over its arrays and config (a
    PatchCore bundle saved before ``top_fraction`` existed scores by its largest patch, one
    saved before ``context_downscale`` has one scale)."""
    config = config or {}
    if name == "patchcore":
        index = NearestNeighbours.from_array(bundle_array(arrays, "nn_index", name))
        return patchcore_scorer(index, bundle_array(arrays, "memory_bank", name),
                                bundle_array(arrays, "bank_neighbours", name),
                                float(config.get("top_fraction", 0.0)),
                                int(config.get("context_downscale", 1)) > 1)
    if name == "padim":
        grid = bundle_array(arrays, "grid", name)
        return padim_scorer(bundle_array(arrays, "mean", name),
                            bundle_array(arrays, "inverse_covariance", name),
                            (int(grid[0]), int(grid[1])))
    raise BundleError(f"patch scoring exists for patchcore, padim, not {name!r}")


def patchcore_scorer(index: NearestNeighbours, bank: np.ndarray, neighbours: np.ndarray,
                     top_fraction: float = 0.0, two_scales: bool = False) -> Scorer:
    """``two_scales``: the bank's rows are the full input's channels, then the shrunk input's
    as many again; the map measures the first half (see ``patchcore_scores``)."""
    bank = np.ascontiguousarray(bank, dtype=np.float32)
    neighbours = np.asarray(neighbours, dtype=np.int64)
    map_dims = bank.shape[1] // 2 if two_scales else 0
    return lambda embeddings: patchcore_scores(embeddings, index, bank, neighbours, top_fraction,
                                               map_dims)


def padim_scorer(mean: np.ndarray, inverse: np.ndarray, grid: tuple[int, int]) -> Scorer:
    return lambda embeddings: padim_scores(embeddings, mean, inverse, grid)


class AnomalyHead(Head):
    """PatchCore or PaDiM after the backbone: patch scores, image score, smoothed map."""

    outputs = (EMBEDDINGS_NAME,)

    def __init__(self, preprocessor, scorer: Scorer, blur_sigma: float) -> None:
        self.preprocessor = preprocessor
        self.scorer = scorer
        self.blur_sigma = float(blur_sigma)

    @classmethod
    def from_bundle(cls, name, config, arrays, preprocessor) -> "AnomalyHead":
        return cls(preprocessor, build_scorer(name, arrays, config),
                   float(config.get("blur_sigma", 0.0)))

    def anomaly(self, forward, image, template=None):
        """Steps, tiles and stitching are ``score_tiled``'s (the anomaly map is never None)."""
        return score_tiled(self.preprocessor, image, lambda array: self._input(forward, array))

    def _input(self, forward: Forward, array: np.ndarray) -> tuple[float, np.ndarray, Timings]:
        """One network input (C x h x w) -> (score, anomaly map at h x w, timings ms)."""
        t1 = time.perf_counter()
        embeddings = forward(array[None])[0]
        t2 = time.perf_counter()
        patch_scores, score = self.scorer(embeddings)
        t3 = time.perf_counter()
        heatmap = anomaly_map(patch_scores, array.shape[1:], array.shape[1:], self.blur_sigma)
        t4 = time.perf_counter()
        return float(score), heatmap, {"backbone": (t2 - t1) * 1e3, "scoring": (t3 - t2) * 1e3,
                                       "anomaly_map": (t4 - t3) * 1e3}

    def predict(self, forward, image, threshold, unsure_band, template=None):
        """A part that cannot be aligned is UNSURE with the reason, never a silent OK."""
        try:
            score, heatmap, timings = self.anomaly(forward, image)
        except AlignmentError as error:
            return InspectionResult.failed(Failure.ALIGNMENT, str(error))
        verdict = Verdict.from_score(score, threshold, unsure_band)
        return InspectionResult(score=score, verdict=verdict, anomaly_map=heatmap,
                                timings=timings, reason=near_threshold(verdict))


def timed_network(preprocessor, forward: Callable[[np.ndarray], Any], image: np.ndarray
                  ) -> tuple[Any, Timings]:
    """(``forward`` of the whole preprocessed image, no tiling; timings ms so far)."""
    t0 = time.perf_counter()
    array = preprocessor(image)
    t1 = time.perf_counter()
    output = forward(array[None])
    t2 = time.perf_counter()
    return output, {"preprocess": (t1 - t0) * 1e3, "network": (t2 - t1) * 1e3}


def class_names(arrays: Mapping[str, np.ndarray], name: str) -> tuple[str, ...]:
    """The class names a classifier or box model's tensors record; none is a ``BundleError``."""
    classes = decode_meta(bundle_array(arrays, META_KEY, name)).get("classes")
    if not classes:
        raise BundleError(f"the {name}'s {META_KEY} names no classes")
    return tuple(classes)


class ClassifierHead(Head):
    """The defect classifier: score = P(not good), defect type = the likeliest defect class."""

    outputs = (LOGITS_NAME,)

    def __init__(self, preprocessor, classes: Sequence[str]) -> None:
        self.preprocessor = preprocessor
        self.classes: tuple[str, ...] = tuple(classes)

    @classmethod
    def from_bundle(cls, name, config, arrays, preprocessor) -> "ClassifierHead":
        return cls(preprocessor, class_names(arrays, name))

    def class_probabilities(self, forward: Forward, image: np.ndarray
                            ) -> tuple[np.ndarray, Timings]:
        (logits, *_), timings = timed_network(self.preprocessor, forward, image)
        t2 = time.perf_counter()
        probabilities = class_probabilities(logits[0])
        timings["scoring"] = (time.perf_counter() - t2) * 1e3
        return probabilities, timings

    def probabilities(self, forward: Forward, image: np.ndarray) -> dict[str, float]:
        """The class probabilities of one RGB uint8 image, by class name."""
        return probabilities_by_class(self.class_probabilities(forward, image)[0], self.classes)

    def anomaly(self, forward, image, template=None):
        """(score = probability of not good, no map, timings); 1.0 when no class is good."""
        probabilities, timings = self.class_probabilities(forward, image)
        return not_good_score(probabilities, self.classes), None, timings

    def predict(self, forward, image, threshold, unsure_band, template=None):
        probabilities, timings = self.class_probabilities(forward, image)
        return classification_result(probabilities, self.classes, threshold, unsure_band,
                                     timings)


class SegmenterHead(Head):
    """The defect segmenter: a probability map, scored over ``min_area`` of the image; with
    ``flip_average`` the network runs on the image and its three mirror images."""

    outputs = (LOGITS_NAME,)

    def __init__(self, preprocessor, min_area: float, flip_average: bool) -> None:
        self.preprocessor = preprocessor
        self.min_area = float(min_area)
        self.flip_average = bool(flip_average)

    @classmethod
    def from_bundle(cls, name, config, arrays, preprocessor) -> "SegmenterHead":
        try:
            min_area = float(config["min_area"])
        except (KeyError, TypeError, ValueError) as error:
            raise BundleError(f"the segmenter's config lacks a valid min_area ({error!r})"
                              ) from error
        # Bundles written before flip averaging existed were trained and scored without it.
        return cls(preprocessor, min_area, bool(config.get("flip_average", False)))

    def anomaly(self, forward, image, template=None):
        """(image score, probability map at the image's size, timings ms)."""
        def probabilities(batch: np.ndarray) -> np.ndarray:
            return defect_probabilities(lambda b: forward(b)[0], batch, self.flip_average)

        prob, timings = timed_network(self.preprocessor, probabilities, image)
        t2 = time.perf_counter()
        score, heatmap = segmentation_output(prob[0, 0], image.shape[:2], self.min_area)
        timings["scoring"] = (time.perf_counter() - t2) * 1e3
        return score, heatmap, timings

    def predict(self, forward, image, threshold, unsure_band, template=None):
        score, heatmap, timings = self.anomaly(forward, image)
        return segmentation_result(score, heatmap, threshold, unsure_band, timings)
