"""What the supervised models (classifier, segmenter) share: config, preprocessing, batching,
and the tensors that go into a bundle.

The network is a plain ``nn.Module`` (``net_``, the contract's ``network()``, exported whole to
ONNX); the model class knows fit, save and load, and inspects through its head
(``defectscope.models.contract``). Fitting
runs the plain loop in ``defectscope.training.supervised`` (warm-up with a frozen backbone, then
fine-tuning at a lower learning rate, early stopping on a validation metric, best checkpoint kept).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
from torch import nn

from defectscope.data.images.image_set import ImageSet
from defectscope.errors import ConfigError, DataError, DefectscopeError
from defectscope.models.backbones import WeightsSource, get_backbone_spec
from defectscope.models.contract import InspectionModel, load_network_arrays, network_arrays
from defectscope.options import make_config
from defectscope.preprocess import PreprocessConfig, Preprocessor
from defectscope.tensor_meta import META_KEY, decode_meta, encode_meta

LOSSES = ("auto", "ce", "weighted_ce", "focal", "dice_bce", "dice_focal")
SAMPLERS = ("auto", "shuffle", "oversample")


@dataclasses.dataclass(frozen=True)
class SupervisedConfig:
    """Options the supervised models share; the training schedule travels with the model."""

    backbone: str = "efficientnet_lite0"
    backbone_weights: str | None = None
    image_size: int = 224
    resize: str = "square"
    max_side: int = 512
    normalise: str = "none"
    batch_size: int = 16
    unsure_band: float = 0.0
    seed: int = 0
    epochs: int = 15  # warm-up + fine-tuning epochs, at most
    warmup_epochs: int = 2  # backbone frozen, head only, at ``lr``
    lr: float = 1e-3
    finetune_lr: float = 1e-4  # whole network after the warm-up
    freeze_bn: bool = True  # keep the backbone's batch-norm statistics while fine-tuning
    weight_decay: float = 1e-4
    patience: int = 4  # fine-tuning epochs without a better validation metric before stopping
    loss: str = "auto"
    focal_gamma: float = 2.0
    sampler: str = "auto"
    augment: bool = True
    max_train_seconds: float | None = None  # stop (keeping the best checkpoint) after this
    ema_decay: float = 0.0  # > 0: validate and keep a moving average of the weights

    def __post_init__(self) -> None:
        get_backbone_spec(self.backbone)
        if not get_backbone_spec(self.backbone).name.startswith("efficientnet_lite"):
            raise ConfigError("supervised models support the efficientnet_lite backbones")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss {self.loss!r} unknown; use one of {LOSSES}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler {self.sampler!r} unknown; use one of {SAMPLERS}")
        if self.epochs < 1 or not 0 <= self.warmup_epochs <= self.epochs:
            raise ConfigError("need epochs >= 1 and 0 <= warmup_epochs <= epochs")
        if self.batch_size < 1 or self.patience < 1:
            raise ConfigError("batch_size and patience must be >= 1")
        if not 0 <= self.unsure_band < 1:
            raise ConfigError(f"unsure_band {self.unsure_band} must be in [0, 1)")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay {self.ema_decay} must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def targets_of(data: ImageSet, val: ImageSet | None, field: str, model: str) -> tuple:
    """(images, targets, val images or None, val targets or None) of a supervised ``fit``:
    ``field`` is what ``model`` learns from (``labels`` or ``masks``); missing ones are a
    ``DataError`` saying how to give them."""
    targets = getattr(data, field)
    if targets is None:
        raise DataError(f"the {model} learns from {field}: give ImageSet(images, {field}=...)")
    if val is None:
        return data.images, targets, None, None
    if getattr(val, field) is None:
        raise DataError(f"the validation ImageSet has no {field}")
    return data.images, targets, val.images, getattr(val, field)


class SupervisedModel(InspectionModel):
    """Base for models trained on labelled images. ``__init__`` stores options, nothing else."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = SupervisedConfig

    def __init__(self, **options: Any) -> None:
        self.config = make_config(self.config_class, options)
        spec = get_backbone_spec(self.config.backbone)
        self.preprocess_config = PreprocessConfig(
            image_size=self.config.image_size, resize=self.config.resize,
            max_side=max(self.config.max_side, self.config.image_size), mean=spec.mean,
            std=spec.std, normalise=self.config.normalise)
        self.preprocessor = Preprocessor(self.preprocess_config)

    # -- hooks ----------------------------------------------------------------------------------
    def _build_network(self, pretrained: bool) -> tuple[nn.Module, WeightsSource | None]:
        raise NotImplementedError

    def _meta(self) -> dict[str, Any]:
        raise NotImplementedError

    def _set_meta(self, meta: Mapping[str, Any]) -> None:
        raise NotImplementedError

    # -- state ----------------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "net_")

    def prepare(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Preprocess RGB uint8 images once, to a float32 stack N x 3 x h x w."""
        return np.stack([self.preprocessor(image) for image in images]).astype(np.float32)

    def network(self) -> nn.Module:
        return self.net_

    def arrays(self) -> dict[str, np.ndarray]:
        """Every learned tensor (whole network) plus the class list etc. as a JSON byte tensor."""
        self._check_fitted()
        arrays = network_arrays(self.net_)
        arrays[META_KEY] = encode_meta(self._meta())
        return arrays

    def restore(self, arrays: Mapping[str, np.ndarray], weights: WeightsSource, n_train: int):
        """Rebuild a fitted model from ``arrays`` (the inverse of ``arrays()``)."""
        if META_KEY not in arrays:
            raise DefectscopeError(f"saved {self.name} lacks {META_KEY}; the bundle is incomplete")
        self._set_meta(decode_meta(arrays[META_KEY]))
        net, _ = self._build_network(pretrained=False)
        self.net_ = load_network_arrays(net, arrays, self.name)
        self.weights_source_ = weights
        self.n_train_images_ = n_train
        self.threshold_ = None
        self.calibration_ = None
        return self
