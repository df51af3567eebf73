"""What the box-finding models (reference comparison, learned detector) share.

A detection model finds boxes with a defect type and a confidence. Everything else follows the
other models' contract, so bundles, thresholds, verdicts and the line work unchanged:

- ``detect(image, template=None)`` returns every box above ``config.min_confidence``, best first;
- the decision threshold is a confidence: ``predict`` keeps boxes at or above it, the image score
  is the best box's confidence (0.0 with no box), NG when a box reaches the threshold;
- ``fit(dataset, val)`` learns from a ``DetectionDataset``'s samples (the model loads the
  images it needs, so a large dataset is never held in memory at once);
- ``arrays()`` / ``restore()`` carry the learned tensors and a JSON meta record into the bundle.

>>> model = create_model("reference")                                       # doctest: +SKIP
>>> model.fit(dataset.only("train"), dataset.only("val"))                   # doctest: +SKIP
>>> model.set_threshold(0.5).predict(image, template).detections            # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from defectscope.tensor_meta import META_KEY, decode_meta, encode_meta
from defectscope.data.boxes.dataset import DetectionDataset
from defectscope.errors import ConfigError, DefectscopeError
from defectscope.models.contract import InspectionModel, torch_forward
from defectscope.options import make_config
from defectscope.scoring.box_heads import BoxHead
from defectscope.values import Detection


class DetectionModel(InspectionModel):
    """Base for models that return boxes. ``__init__`` stores options, nothing else.

    Subclasses set ``config_class`` (a frozen dataclass with ``to_dict``, ``unsure_band``,
    ``min_confidence``) and ``preprocess_config`` (recorded in the bundle), and implement
    ``fit``, ``network``, ``head`` (a ``BoxHead``), ``_tensors``, ``_meta`` and ``_restore``.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type]
    needs_template: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        self.config = make_config(self.config_class, options)

    # -- hooks ----------------------------------------------------------------------------------
    def fit(self, data: DetectionDataset, val: DetectionDataset | None = None, *,
            progress: bool = True, log: Callable[[str], None] = print) -> "DetectionModel":
        raise NotImplementedError

    def _tensors(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _meta(self) -> dict[str, Any]:
        raise NotImplementedError

    def _restore(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        raise NotImplementedError

    # -- state ----------------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return getattr(self, "fitted_", False)

    def _check_threshold(self, threshold: float) -> None:
        if not np.isfinite(threshold) or not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"a detection threshold is a confidence in [0, 1], not {threshold}")

    def arrays(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        arrays = dict(self._tensors())
        arrays[META_KEY] = encode_meta(self._meta())
        return arrays

    def restore(self, arrays: Mapping[str, np.ndarray], weights, n_train: int):
        if META_KEY not in arrays:
            raise DefectscopeError(f"saved {self.name} lacks {META_KEY}; the bundle is incomplete")
        self._restore(arrays, decode_meta(arrays[META_KEY]))
        self.fitted_ = True
        self.weights_source_ = weights
        self.n_train_images_ = n_train
        self.threshold_ = None
        self.calibration_ = None
        return self

    # -- inspection: the contract's predictor, and the boxes alone ---------------------------
    def head(self) -> BoxHead:
        raise NotImplementedError

    def detect(self, image: np.ndarray, template: np.ndarray | None = None) -> list[Detection]:
        """Every box at or above ``min_confidence``, best first (the head's, over the torch
        network: what the runtime does over an exported one)."""
        self._check_fitted()
        return self.head().detect(torch_forward(self.network()), image, template)
