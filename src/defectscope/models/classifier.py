"""A defect classifier by transfer learning: pass/fail (binary) or defect type (multi-class).

The pretrained EfficientNet-Lite with its ImageNet head replaced by one output per class. The
image score is the probability of "not good", so thresholds, verdicts and reports work as for
anomaly models; ``defect_type`` names the most likely defect.

>>> model = create_model("classifier", task="multiclass", image_size=128)      # doctest: +SKIP
>>> model.fit(ImageSet(images, labels), ImageSet(val_images, val_labels))     # doctest: +SKIP
>>> model.set_threshold(0.5)                                                   # doctest: +SKIP
>>> model.predict(image).defect_type                                           # doctest: +SKIP
'scratch'
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from defectscope.data.images.image_set import ImageSet
from defectscope.errors import ConfigError, DataError
from defectscope.models.backbones import WeightsSource, get_backbone_spec, load_pretrained
from defectscope.models.registry import register
from defectscope.models.contract import torch_forward
from defectscope.models.supervised_base import SupervisedConfig, SupervisedModel, targets_of
from defectscope.scoring.classification import class_probabilities
from defectscope.scoring.heads import ClassifierHead
from defectscope.values import GOOD

TASKS = ("multiclass", "binary")
DEFECT = "defect"


@dataclasses.dataclass(frozen=True)
class ClassifierConfig(SupervisedConfig):
    task: str = "multiclass"  # "binary": good vs defect; "multiclass": good plus each type
    dropout: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.task not in TASKS:
            raise ConfigError(f"task {self.task!r} unknown; use one of {TASKS}")
        if self.loss.startswith("dice"):
            raise ConfigError(f"loss {self.loss!r} is for the segmenter; use ce, weighted_ce, "
                              "focal or auto")


def macro_f1(true: Sequence[int], pred: Sequence[int], n_classes: int) -> float:
    """Mean F1 over the classes present in ``true`` (a class never predicted scores 0)."""
    true, pred = np.asarray(true), np.asarray(pred)
    scores = []
    for c in np.unique(true):
        tp = np.sum((pred == c) & (true == c))
        denominator = np.sum(pred == c) + np.sum(true == c)
        scores.append(2 * tp / denominator if denominator else 0.0)
    return float(np.mean(scores)) if scores else 0.0


@register("classifier")
class DefectClassifier(SupervisedModel):
    config_class = ClassifierConfig

    # -- classes ------------------------------------------------------------------------------
    def targets_for(self, labels: Sequence[str]) -> list[int]:
        """Class ids of ``labels``; a label naming no known class is a clear error."""
        if self.config.task == "binary":
            labels = [GOOD if label == GOOD else DEFECT for label in labels]
        index = {name: i for i, name in enumerate(self.classes_)}
        unknown = sorted({label for label in labels if label not in index})
        if unknown:
            raise DataError(f"labels {unknown} name no class this classifier knows "
                            f"({', '.join(self.classes_)}); relabel them or retrain with them")
        return [index[label] for label in labels]

    def _classes_from(self, labels: Sequence[str]) -> tuple[str, ...]:
        if self.config.task == "binary":
            return (GOOD, DEFECT)
        defects = sorted({label for label in labels if label != GOOD})
        return ((GOOD,) if GOOD in labels else ()) + tuple(defects)

    def _meta(self) -> dict[str, Any]:
        return {"classes": list(self.classes_)}

    def _set_meta(self, meta: Mapping[str, Any]) -> None:
        self.classes_ = tuple(meta["classes"])

    # -- network ------------------------------------------------------------------------------
    def _build_network(self, pretrained: bool) -> tuple[nn.Module, WeightsSource | None]:
        spec = get_backbone_spec(self.config.backbone)
        if pretrained:
            net, source = load_pretrained(spec, self.config.backbone_weights)
        else:
            net, source = spec.build(), None
        net.reset_classifier(len(self.classes_))
        net.drop_rate = self.config.dropout
        return net, source

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, data: ImageSet, val: ImageSet | None = None, *, progress: bool = True,
            log: Callable[[str], None] = print) -> "DefectClassifier":
        """Train on ``data``'s RGB uint8 images with their string ``labels``; early-stop on the
        validation macro F1 of ``val`` (the training images stand in, with a warning, when no
        validation set is given). Calling ``fit`` again starts from the pretrained weights.
        Returns ``self``."""
        from defectscope.models.fitting.loop import LoopSpec, fit_network
        from defectscope.models.fitting.losses import classification_loss
        from defectscope.models.fitting.samplers import choose_imbalance_defaults, class_weights

        images, labels, val_images, val_labels = targets_of(data, val, "labels", "classifier")
        if len(images) != len(labels) or not len(images):
            raise DataError(f"fit needs as many labels as images (got {len(images)} images, "
                            f"{len(labels)} labels), and at least one")
        self.classes_ = self._classes_from(labels)
        if len(self.classes_) < 2:
            raise DataError(f"only one class ({self.classes_[0]}) in the training labels; a "
                            "classifier needs at least two")
        y = self.targets_for(labels)
        if val_images is None or not len(val_images):
            log("warning: no validation images; early stopping uses the training images")
            val_images, val_labels = images, labels
        y_val = self.targets_for(val_labels)
        counts = Counter(self.classes_[i] for i in y)
        auto = choose_imbalance_defaults(counts)
        loss_name = auto.loss if self.config.loss == "auto" else self.config.loss
        sampler = auto.sampler if self.config.sampler == "auto" else self.config.sampler
        log(f"classes {dict(sorted(counts.items()))}: imbalance {auto.ratio:.1f}x -> sampler "
            f"{sampler}, loss {loss_name}, augmentation {'on' if self.config.augment else 'off'}")
        weights = torch.tensor(class_weights(y, len(self.classes_)), dtype=torch.float32)
        net, source = self._build_network(pretrained=True)
        x, x_val = self.prepare(images), self.prepare(val_images)

        def metric(network: nn.Module) -> float:
            return macro_f1(y_val, self._predict_ids(network, x_val), len(self.classes_))

        spec = LoopSpec(head=net.get_classifier(), sample_classes=y,
                        loss=classification_loss(loss_name, weights, self.config.focal_gamma),
                        metric=metric, targets_tensor=lambda t: torch.tensor(t, dtype=torch.long))
        self.training_ = fit_network(net, spec, x, y, config=self.config, sampler=sampler,
                                     progress=progress, log=log)
        self.net_, self.weights_source_ = net.eval(), source
        self.n_train_images_ = len(images)
        self.threshold_, self.calibration_ = None, None
        return self

    def _predict_ids(self, network: nn.Module, x: np.ndarray) -> np.ndarray:
        return self._probabilities(network, x).argmax(axis=1)

    def _probabilities(self, network: nn.Module, x: np.ndarray) -> np.ndarray:
        forward = torch_forward(network)
        return np.concatenate([class_probabilities(forward(x[start:start + 32])[0])
                               for start in range(0, len(x), 32)])

    # -- inspection (the contract's predictor) -------------------------------------------------
    def head(self) -> ClassifierHead:
        return ClassifierHead(self.preprocessor, self.classes_)

    def probabilities(self, image: np.ndarray) -> dict[str, float]:
        """The class probabilities of one RGB uint8 image."""
        self._check_fitted()
        return self.head().probabilities(torch_forward(self.net_), image)
