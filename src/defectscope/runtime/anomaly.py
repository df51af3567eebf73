"""The anomaly models (PatchCore, PaDiM) in the runtime: ONNX backbone + numpy patch scoring.

The ONNX file holds the backbone trunk and the patch embedding; the scoring after it (faiss
nearest neighbours, Mahalanobis distance) and the anomaly map are ``defectscope.scoring``'s, with
the bundle's arrays (memory bank, Gaussians). Steps, tiles and stitching are ``score_tiled``'s.
Build with ``RuntimeModel.load``, which picks this class for patchcore and padim bundles.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from defectscope.bundle import TENSORS
from defectscope.errors import AlignmentError, BundleError
from defectscope.preprocess import Preprocessor
from defectscope.preprocess.tiling import score_tiled
from defectscope.runtime.engine import (
    ANOMALY_MODELS,
    DEFAULT_TOLERANCE,
    OUTPUT_NAME,
    RuntimeModel,
)
from defectscope.scoring import NearestNeighbours, anomaly_map, padim_scores, patchcore_scores
from defectscope.types import Failure, InspectionResult, Verdict

Scorer = Callable[[np.ndarray], "tuple[np.ndarray, float]"]


def build_scorer(name: str, arrays: dict[str, np.ndarray]) -> Scorer:
    """The model's post-backbone scoring, over the bundle's arrays (same functions as torch)."""
    try:
        if name == "patchcore":
            index = NearestNeighbours.from_array(arrays["nn_index"])
            bank = np.ascontiguousarray(arrays["memory_bank"], dtype=np.float32)
            neighbours = arrays["bank_neighbours"].astype(np.int64)
            return lambda embeddings: patchcore_scores(embeddings, index, bank, neighbours)
        if name == "padim":
            mean, inverse = arrays["mean"], arrays["inverse_covariance"]
            grid = (int(arrays["grid"][0]), int(arrays["grid"][1]))
            return lambda embeddings: padim_scores(embeddings, mean, inverse, grid)
    except KeyError as error:
        raise BundleError(f"{TENSORS} lacks the array {error} that {name} needs") from error
    raise BundleError(f"patch scoring exists for {', '.join(ANOMALY_MODELS)}, not {name!r}")


class AnomalyRuntime(RuntimeModel):
    """PatchCore or PaDiM: embeddings from ONNX, patch scores and map from numpy."""

    output_name = OUTPUT_NAME

    def __init__(self, model_dir: Path, info: dict[str, Any], session,
                 preprocessor: Preprocessor, tolerance: float = DEFAULT_TOLERANCE, *,
                 scorer: Scorer) -> None:
        super().__init__(model_dir, info, session, preprocessor, tolerance)
        self.scorer = scorer
        self.blur_sigma = float(self.config.get("blur_sigma", 0.0))

    @classmethod
    def from_arrays(cls, model_dir, info, arrays, session, preprocessor, tolerance):
        return cls(model_dir, info, session, preprocessor, tolerance,
                   scorer=build_scorer(info["model"]["name"], arrays))

    def embed(self, array: np.ndarray) -> np.ndarray:
        """Network input (3 x h x w float32) -> embeddings (1 x D x h' x w')."""
        return self.run(array[None])

    def anomaly(self, image: np.ndarray) -> tuple[float, np.ndarray, dict[str, float]]:
        """Score one RGB uint8 image: (image score, anomaly map at the image's size, timings ms).

        Steps, tiles and stitching are ``score_tiled``'s, as on the torch path.
        """
        return score_tiled(self.preprocessor, image, self._anomaly_input)

    def _anomaly_input(self, array: np.ndarray) -> tuple[float, np.ndarray, dict[str, float]]:
        """One network input (C x h x w) -> (score, anomaly map at h x w, timings ms)."""
        t1 = time.perf_counter()
        embeddings = self.embed(array)
        t2 = time.perf_counter()
        patch_scores, score = self.scorer(embeddings)
        t3 = time.perf_counter()
        heatmap = anomaly_map(patch_scores, array.shape[1:], array.shape[1:], self.blur_sigma)
        t4 = time.perf_counter()
        return float(score), heatmap, {"backbone": (t2 - t1) * 1e3, "scoring": (t3 - t2) * 1e3,
                                       "anomaly_map": (t4 - t3) * 1e3}

    def predict(self, image: np.ndarray) -> InspectionResult:
        """Score, verdict (the bundle's threshold and unsure band), anomaly map and timings.

        A failed alignment is UNSURE with the reason, never a silent OK (as on the torch path).
        """
        try:
            score, heatmap, timings = self.anomaly(image)
        except AlignmentError as error:
            return InspectionResult.failed(Failure.ALIGNMENT, str(error))
        verdict = Verdict.from_score(score, self.threshold, self.unsure_band)
        reason = "score near the threshold" if verdict is Verdict.UNSURE else None
        return InspectionResult(score=score, verdict=verdict, anomaly_map=heatmap,
                                timings=timings, reason=reason)
