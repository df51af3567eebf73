"""What every anomaly model shares: config, backbone, batching, fitting, saved state.

A subclass supplies four hooks: ``_embed`` (backbone features -> patch embeddings), ``_start_fit``,
``_add_embeddings`` (stream one batch into the learned state) and ``_finish_fit``, plus
``_scorer`` (the numpy patch scoring over its learned state: embeddings of one image -> patch
score grid and image score). The base class does the rest the same way for all of them:
preprocessing, batching and the tensors that go into a bundle. Inspection is the contract's
(``defectscope.models.contract``): the backbone and ``_embed`` as one network (``Embedder``, also
what goes into ONNX), then ``AnomalyHead``, the very head the torch-free runtime scores with.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from defectscope.data.images.image_set import ImageSet
from defectscope.errors import ConfigError, DataError, DefectscopeError
from defectscope.memory import release_free_memory
from defectscope.models.backbones import (
    WeightsSource,
    build_feature_extractor,
    empty_feature_extractor,
    get_backbone_spec,
)
from defectscope.models.contract import InspectionModel
from defectscope.options import make_config as build_config
from defectscope.preprocess import PreprocessConfig, Preprocessor, parse_steps
from defectscope.preprocess.tiling import training_inputs
from defectscope.scoring.heads import AnomalyHead, Scorer


@dataclasses.dataclass(frozen=True)
class AnomalyConfig:
    """Options every anomaly model shares. Subclasses add their own fields."""

    backbone: str = "efficientnet_lite0"
    layers: tuple[str, ...] = ()
    backbone_weights: str | None = None
    image_size: int = 256
    resize: str = "square"
    max_side: int = 512
    normalise: str = "standardise"  # per-image brightness/contrast: see preprocess.normalise
    steps: tuple[Mapping[str, Any], ...] = ()  # preprocessing steps: see preprocess.steps
    batch_size: int = 8
    blur_sigma: float = 4.0
    unsure_band: float | None = None  # None: sized at calibration (evaluation.thresholds)
    seed: int = 0

    def __post_init__(self) -> None:
        spec = get_backbone_spec(self.backbone)  # unknown backbone -> ConfigError listing known
        unknown = [layer for layer in self.layers if layer not in spec.stage_names]
        if unknown:
            raise ConfigError(f"layers {unknown} are not stages of {self.backbone}; choose "
                              f"from {list(spec.stage_names)} (default "
                              f"{list(spec.default_layers)})")
        if self.unsure_band is not None and not 0 <= self.unsure_band < 1:
            raise ConfigError(f"unsure_band {self.unsure_band} must be in [0, 1)")
        if self.batch_size < 1:
            raise ConfigError("batch_size must be >= 1")
        if self.blur_sigma < 0:
            raise ConfigError("blur_sigma must be >= 0")
        # Validated and stored as plain dicts, so the config stays JSON for the bundle.
        object.__setattr__(self, "steps", tuple(s.to_dict() for s in parse_steps(self.steps)))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["layers"] = list(self.layers)
        return data


def make_config(config_class: type, options: Mapping[str, Any]):
    """Build an anomaly config (``layers`` as a tuple, or one comma-separated string; None
    means the backbone's default); unknown or mistyped options are a ``ConfigError``."""
    values = dict(options)
    if isinstance(values.get("layers"), str):  # --set layers=blocks.2,blocks.3
        values["layers"] = [name.strip() for name in values["layers"].split(",") if name.strip()]
    if "layers" in values and values["layers"] is not None:
        values["layers"] = tuple(values["layers"])
    if values.get("layers") is None:
        values.pop("layers", None)
    return build_config(config_class, values)


def _batches(arrays: Iterable[np.ndarray], batch_size: int) -> Iterator[list[np.ndarray]]:
    """Consecutive arrays of equal shape, grouped up to ``batch_size``."""
    batch: list[np.ndarray] = []
    for array in arrays:
        if batch and (len(batch) == batch_size or array.shape != batch[0].shape):
            yield batch
            batch = []
        batch.append(array)
    if batch:
        yield batch


class Embedder(nn.Module):
    """``model._embed_input(x)`` as one module: the anomaly models' network."""

    def __init__(self, model: "AnomalyModel") -> None:
        super().__init__()
        self.extractor = model.extractor_  # registered here, so export and eval() see it
        self._embed_input = model._embed_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._embed_input(x)


class AnomalyModel(InspectionModel):
    """Base for models trained on good images only. ``__init__`` stores options, nothing else."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = AnomalyConfig
    channels_last = True

    def __init__(self, **options: Any) -> None:
        self.config = make_config(self.config_class, options)
        self.preprocess_config = self._preprocess_config()
        self.preprocessor = Preprocessor(self.preprocess_config)

    # -- configuration -------------------------------------------------------------------
    @property
    def layers(self) -> tuple[str, ...]:
        return self.config.layers or get_backbone_spec(self.config.backbone).default_layers

    def _preprocess_config(self) -> PreprocessConfig:
        spec = get_backbone_spec(self.config.backbone)
        return PreprocessConfig(
            image_size=self.config.image_size,
            resize=self.config.resize,
            max_side=max(self.config.max_side, self.config.image_size),
            mean=spec.mean,
            std=spec.std,
            normalise=self.config.normalise,
            steps=tuple(self.config.steps),
        )

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "extractor_")

    # -- hooks for subclasses ------------------------------------------------------------------
    def _embed_input(self, x: torch.Tensor) -> torch.Tensor:
        """A preprocessed batch -> patch embeddings: the backbone once, then ``_embed``."""
        return self._embed(self.extractor_(x))

    def _embed(self, features: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def _start_fit(self) -> None:
        raise NotImplementedError

    def _add_embeddings(self, embeddings: torch.Tensor) -> None:
        raise NotImplementedError

    def _finish_fit(self) -> None:
        raise NotImplementedError

    def _scorer(self) -> Scorer:
        """The patch scoring over the learned state: one image's embeddings (1 x D x h x w,
        numpy) -> patch scores (h x w) and the image score."""
        raise NotImplementedError

    def _learned_arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _restore_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        raise NotImplementedError

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, data: "Iterable[np.ndarray] | ImageSet", val: None = None, *, progress=None,
            log: Callable[[str], None] = print) -> "AnomalyModel":
        """Learn from good images (RGB uint8 arrays, or an ``ImageSet`` of them). Streams: the
        images are never all in memory. There is no validation set to give: an anomaly model
        learns from good images alone (``defectscope train`` calibrates its threshold after).

        ``progress``: a callable called with each batch's image count (e.g. a tqdm bar's
        ``update``), True for a bar of its own, or None. Calling ``fit`` again starts from
        scratch. Returns ``self``.
        """
        if val is not None:
            raise DataError(f"{self.name} learns from good images alone and takes no validation "
                            "set; calibrate its threshold on one (defectscope train does)")
        images = data.images if isinstance(data, ImageSet) else data
        if progress is True:
            from tqdm import tqdm

            with tqdm(desc=f"{self.name} fit", unit="img") as bar:
                self._stream_fit(images, bar.update, learn_preprocessing=True)
        else:
            self._stream_fit(images, progress or None, learn_preprocessing=True)
        self._finish_fit()
        self.threshold_ = None
        self.calibration_ = None
        return self

    def _stream_fit(self, images: Iterable[np.ndarray], progress, learn_preprocessing: bool
                    ) -> None:
        """Backbone, then every image's embeddings streamed into the unfinished learned state."""
        extractor, source = build_feature_extractor(
            self.config.backbone, self.layers, self.config.backbone_weights
        )
        self._set_extractor(extractor, source)
        self._start_fit()
        count = 0
        # learns steps' state (unless it was set from elsewhere, as for a shard), tiles
        inputs = training_inputs(self.preprocessor, images, learn=learn_preprocessing)
        with torch.inference_mode():
            for batch in _batches(inputs, self.config.batch_size):
                tensor = torch.from_numpy(np.stack(batch)).contiguous(
                    memory_format=torch.channels_last
                )
                self._add_embeddings(self._embed_input(tensor))
                del tensor
                release_free_memory()  # see defectscope.memory: the heap otherwise keeps it
                count += len(batch)
                if progress is not None:
                    progress(len(batch))
        if count == 0:
            raise DefectscopeError("fit got no images; give it at least one good image")
        self.n_train_images_ = count

    # -- fitting in shards (defectscope.distributed.training) ----------------------------------
    def partial_fit(self, images: Iterable[np.ndarray], progress=None,
                    oversample: float = 1.0) -> dict[str, Any]:
        """One shard's learned state, unfinished, for ``fit_from_partials`` to merge.

        The preprocessor's learned state must already be set (``preprocessor.fit`` on the
        driver, then ``preprocessor.restore`` here), so every shard prepares images alike.
        ``oversample``: how many times more than its share a selecting model (PatchCore) keeps.
        """
        self._oversample = oversample
        try:
            self._stream_fit(images, progress, learn_preprocessing=False)
            state = self._partial_state()
        finally:
            del self._oversample
        state["n_inputs"] = self.n_train_images_
        return state

    def fit_from_partials(self, partials: Sequence[Mapping[str, Any]]) -> "AnomalyModel":
        """Finish a fit from the shards' ``partial_fit`` states (the same backbone is built
        here, so the bundle is that of a one-machine fit). Returns ``self``."""
        if not partials:
            raise DefectscopeError("no shard states to merge; give it at least one shard")
        extractor, source = build_feature_extractor(
            self.config.backbone, self.layers, self.config.backbone_weights
        )
        self._set_extractor(extractor, source)
        self.n_train_images_ = int(sum(p["n_inputs"] for p in partials))
        self._merge_partials(partials)
        self.threshold_ = None
        self.calibration_ = None
        return self

    def _partial_state(self) -> dict[str, Any]:
        raise ConfigError(f"{self.name} cannot be fitted in shards (PatchCore and PaDiM can)")

    def _merge_partials(self, partials: Sequence[Mapping[str, Any]]) -> None:
        raise ConfigError(f"{self.name} cannot be fitted in shards (PatchCore and PaDiM can)")

    def _set_extractor(self, extractor, source: WeightsSource) -> None:
        self.extractor_ = extractor.to(memory_format=torch.channels_last)
        self.embedder_ = Embedder(self).eval()  # built once: predict must not rebuild it
        self.weights_source_ = source

    # -- inspection (the contract's predictor) -------------------------------------------------
    def network(self) -> nn.Module:
        """The backbone trunk and the patch embedding: image batch -> patch embeddings."""
        return self.embedder_

    def head(self) -> AnomalyHead:
        return AnomalyHead(self.preprocessor, self._scorer(), self.config.blur_sigma)

    # -- state for bundles ---------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """Every learned tensor, backbone trunk included, as numpy arrays (for safetensors)."""
        self._check_fitted()
        arrays = {
            f"backbone.{key}": value.detach().cpu().contiguous().numpy()
            for key, value in self.extractor_.state_dict().items()
        }
        arrays.update(self._learned_arrays())
        arrays.update({f"preprocess.{k}": v for k, v in self.preprocessor.arrays().items()})
        return arrays

    def restore(self, arrays: Mapping[str, np.ndarray], weights: WeightsSource, n_train: int):
        """Rebuild a fitted model from ``arrays`` (the inverse of ``arrays()``)."""
        extractor = empty_feature_extractor(self.config.backbone, self.layers)
        backbone = {
            key[len("backbone.") :]: torch.from_numpy(np.array(value))
            for key, value in arrays.items()
            if key.startswith("backbone.")
        }
        try:
            extractor.load_state_dict(backbone, strict=True)
        except RuntimeError as error:
            raise DefectscopeError(f"saved backbone does not match {self.config.backbone}: {error}")
        self._set_extractor(extractor, weights)
        self.preprocessor.restore(
            {k[len("preprocess."):]: v for k, v in arrays.items() if k.startswith("preprocess.")})
        self._restore_arrays({k: v for k, v in arrays.items()
                              if not k.startswith(("backbone.", "preprocess."))})
        self.n_train_images_ = n_train
        self.threshold_ = None
        self.calibration_ = None
        return self
