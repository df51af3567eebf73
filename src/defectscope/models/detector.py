"""A learned object detector: boxes with a defect type, trained from labelled boxes.

torchvision's FCOS on a pretrained MobileNetV2 or EfficientNet-Lite feature pyramid (see
``detector_net``), trained with augmentation that moves the boxes with the image, AdamW with a
warm-up and a time-aware cosine, and the best epoch chosen by mAP@0.5 on held-out images. The
same ``defectscope.preprocess`` code resizes and normalises in training and inspection; boxes
come back in the input image's pixel frame.

>>> model = create_model("detector", image_size=256, epochs=30)                   # doctest: +SKIP
>>> model.fit(dataset.only("train"))  # holds out 12% of train for selection      # doctest: +SKIP
>>> model.detect(image)[0]                                                        # doctest: +SKIP
Detection(box=(12.5, 40.1, 88.0, 61.7), label='scratches', confidence=0.91)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from defectscope.data.boxes.augment import BoxAugmentConfig, augment_with_boxes
from defectscope.data.boxes.dataset import DetectionDataset, DetectionSample, load_pair
from defectscope.data.boxes.holdout import hold_out_boxes
from defectscope.errors import ConfigError, DataError
from defectscope.models.backbones import get_backbone_spec
from defectscope.models.contract import torch_forward
from defectscope.models.box_base import DetectionModel
from defectscope.models.contract import load_network_arrays, network_arrays
from defectscope.models.detector_net import TAPS, HeadOutputs, NetSpec, build_detector_net
from defectscope.models.registry import register
from defectscope.preprocess import PreprocessConfig, Preprocessor
from defectscope.preprocess.steps import Colour
from defectscope.scoring.box_heads import DetectorHead
from defectscope.scoring.fcos import FcosSettings
from defectscope.values import Detection


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """Options of the learned detector; the training schedule travels with the model.

    ``image_size`` is the network input side (NEU-DET's 200 px images train well at 256).
    ``min_stride`` 4 adds a finer pyramid level for defects only a few pixels across.
    ``frozen_stride`` keeps the trunk's stages up to that output stride at their ImageNet
    weights (8 trains about a third faster on a CPU; 0 trains the whole trunk).
    ``max_train_seconds`` caps training; the schedule shrinks to fit rather than stop midway.
    ``selection_fraction`` of ``train`` is held out for choosing the best epoch when ``fit`` gets
    no validation images. ``min_confidence`` is the lowest box confidence ``detect`` returns.
    """

    backbone: str = "mobilenet_v2"
    backbone_weights: str | None = None
    image_size: int = 256
    resize: str = "square"
    max_side: int = 1024
    min_stride: int = 8
    max_stride: int = 32
    fpn_channels: int = 96
    head_convs: int = 2
    frozen_stride: int = 8
    batch_size: int = 8
    epochs: int = 30
    warmup_epochs: float = 0.5
    lr: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 10.0
    ema_decay: float = 0.999
    eval_every: int = 1
    max_train_seconds: float | None = None
    selection_fraction: float = 0.12
    augment: bool = True
    hflip: bool = True
    vflip: bool = True
    rot90: bool = False
    scale_jitter: float = 0.2
    photometric: float = 0.5
    min_confidence: float = 0.05
    nms_iou: float = 0.6
    max_detections: int = 100
    unsure_band: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        get_backbone_spec(self.backbone)
        if self.backbone not in TAPS:
            raise ConfigError(f"the detector supports backbones {sorted(TAPS)}, not "
                              f"{self.backbone!r}")
        if self.min_stride not in (4, 8) or self.max_stride not in (32, 64):
            raise ConfigError("min_stride must be 4 or 8 and max_stride 32 or 64")
        if self.frozen_stride not in (0, 2, 4, 8, 16):
            raise ConfigError(f"frozen_stride must be 0 (train the whole trunk), 2, 4, 8 or 16, "
                              f"not {self.frozen_stride}")
        if self.fpn_channels < 32 or self.fpn_channels % 32:
            raise ConfigError(f"fpn_channels must be a positive multiple of 32 (group norm), "
                              f"not {self.fpn_channels}")
        _positive(self, "head_convs", "batch_size", "epochs", "eval_every", "max_detections")
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip < 0 or self.warmup_epochs < 0:
            raise ConfigError("need lr > 0 and weight_decay, grad_clip, warmup_epochs >= 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), not {self.ema_decay}")
        if self.max_train_seconds is not None and self.max_train_seconds <= 0:
            raise ConfigError(f"max_train_seconds must be > 0, not {self.max_train_seconds}")
        if not 0.0 < self.selection_fraction < 1.0:
            raise ConfigError(f"selection_fraction must be in (0, 1), not "
                              f"{self.selection_fraction}")
        for name in ("min_confidence", "nms_iou"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], not {getattr(self, name)}")
        if not 0.0 <= self.unsure_band < 1.0:
            raise ConfigError(f"unsure_band {self.unsure_band} must be in [0, 1)")
        self.preprocess()  # image_size, resize, max_side
        self.augmentation()  # scale_jitter, photometric

    def net_spec(self, n_classes: int) -> NetSpec:
        return NetSpec(self.backbone, n_classes, self.min_stride, self.max_stride,
                       self.fpn_channels, self.head_convs, self.frozen_stride)

    def preprocess(self) -> PreprocessConfig:
        spec = get_backbone_spec(self.backbone)
        # ``colour`` first: grey, 16-bit and RGBA images are inspected like RGB ones.
        return PreprocessConfig(image_size=self.image_size, resize=self.resize,
                                max_side=max(self.max_side, self.image_size), multiple=32,
                                mean=spec.mean, std=spec.std, steps=(Colour(),))

    def augmentation(self) -> BoxAugmentConfig:
        if not self.augment:
            return BoxAugmentConfig.none()
        return BoxAugmentConfig(hflip=self.hflip, vflip=self.vflip, rot90=self.rot90,
                                scale_jitter=self.scale_jitter, shift=self.scale_jitter / 2,
                                photometric=self.photometric)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _positive(config: DetectorConfig, *names: str) -> None:
    for name in names:
        if int(getattr(config, name)) < 1:
            raise ConfigError(f"{name} must be >= 1, not {getattr(config, name)}")


@register("detector")
class BoxDetector(DetectionModel):
    config_class = DetectorConfig

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.preprocess_config = self.config.preprocess()
        self.preprocessor = Preprocessor(self.preprocess_config)

    # -- fitting --------------------------------------------------------------------------------
    def fit(self, data: DetectionDataset, val: DetectionDataset | None = None, *,
            progress: bool = True, log: Callable[[str], None] = print) -> "BoxDetector":
        """Train on ``data``'s samples; choose the best epoch by mAP@0.5 on ``val``'s, or, when
        there are none, on ``selection_fraction`` of the training samples held out (seeded).
        Starts from the pretrained backbone each call. Returns ``self``."""
        from defectscope.models.fitting.detector_loop import fit_detection_network

        dataset = data
        # Validation images load from their own dataset (the training one's when held out).
        val_source = val if val is not None and val.samples else data
        train, val = list(data.samples), list(val.samples if val is not None else ())
        self.classes_ = tuple(dataset.classes)
        if not self.classes_:
            raise DataError(f"{dataset.root}: the dataset names no classes; nothing to detect")
        if not any(s.boxes for s in train):
            raise DataError("no training image has a box; a detector learns from labelled boxes")
        if not val:
            train, val = (list(part) for part in hold_out_boxes(
                train, self.config.selection_fraction, self.config.seed))
            log(f"no validation images: held out {len(val)} of {len(train) + len(val)} training "
                f"images (seed {self.config.seed}) to choose the best epoch")
        torch.manual_seed(self.config.seed)  # the new head's initial weights
        net, source = build_detector_net(self.config.net_spec(len(self.classes_)),
                                         pretrained=True,
                                         weights_file=self.config.backbone_weights)
        self._configure(net)
        n_batches = -(-len(train) // self.config.batch_size)
        log(f"detector: FCOS on {self.config.backbone}, input {self.config.image_size} px, "
            f"{len(train)} training / {len(val)} selection images, {len(self.classes_)} classes, "
            f"{n_batches} batches per epoch, {torch.get_num_threads()} threads")

        def batches(epoch: int) -> Iterator:
            rng = np.random.default_rng([self.config.seed, epoch])
            order = rng.permutation(len(train))
            for start in range(0, len(order), self.config.batch_size):
                yield self._batch(dataset, [train[i] for i in order[start:start +
                                                                    self.config.batch_size]], rng)

        def validate(network) -> float:
            from defectscope.evaluation.detection import evaluate_detections

            found = self._detect_samples(network, val_source, val)
            report = evaluate_detections([s.boxes for s in val], found, self.classes_,
                                         score_threshold=self.config.min_confidence)
            return report.map50 or 0.0

        self.training_ = fit_detection_network(net, batches, n_batches, config=self.config,
                                               validate=validate, progress=progress, log=log)
        self.net_, self.weights_source_ = net.eval(), source
        self.n_train_images_ = len(train)
        self.fitted_ = True
        self.threshold_, self.calibration_ = None, None
        return self

    def _batch(self, dataset: DetectionDataset, samples: Sequence[DetectionSample],
               rng: np.random.Generator):
        index = {name: i for i, name in enumerate(self.classes_)}
        augmentation = self.config.augmentation()
        images, targets = [], []
        for sample in samples:
            image, _ = load_pair(dataset, sample)
            boxes = np.array([b.xyxy for b in sample.boxes], np.float32).reshape(-1, 4)
            labels = np.array([index[b.label] for b in sample.boxes], np.int64)
            if self.config.augment:
                image, boxes, labels = augment_with_boxes(image, boxes, labels, augmentation, rng)
            x = self.preprocessor(image)
            scale = np.array([x.shape[2] / image.shape[1], x.shape[1] / image.shape[0]] * 2,
                             np.float32)
            images.append(torch.from_numpy(x))
            targets.append({"boxes": torch.from_numpy(boxes * scale).reshape(-1, 4),
                            "labels": torch.from_numpy(labels)})
        return images, targets

    # -- inference ------------------------------------------------------------------------------
    def _configure(self, net) -> None:
        net.score_thresh = self.config.min_confidence
        net.nms_thresh = self.config.nms_iou
        net.detections_per_img = self.config.max_detections

    def _detect_arrays(self, net, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Detections for RGB/grey images by ``net`` (a network being trained, or ``net_``)."""
        return self.head().detect_many(torch_forward(HeadOutputs(net)), images)

    def _detect_samples(self, net, dataset: DetectionDataset,
                        samples: Sequence[DetectionSample]) -> list[list[Detection]]:
        found: list[list[Detection]] = []
        step = self.config.batch_size
        for start in range(0, len(samples), step):
            images = [load_pair(dataset, s)[0] for s in samples[start:start + step]]
            found.extend(self._detect_arrays(net, images))
        return found

    # -- inspection (the contract's predictor) -------------------------------------------------
    def network(self) -> nn.Module:
        """The network up to FCOS's raw head outputs and the pyramid's level sizes."""
        return HeadOutputs(self.net_)

    def head(self) -> DetectorHead:
        return DetectorHead(self.preprocessor, self.classes_,
                            FcosSettings.from_config(self.config.to_dict()))

    def detect_many(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """``detect`` for several images at once (batched: faster per image)."""
        self._check_fitted()
        found: list[list[Detection]] = []
        for start in range(0, len(images), self.config.batch_size):
            found.extend(self._detect_arrays(self.net_, images[start:start +
                                                               self.config.batch_size]))
        return found

    # -- saving ---------------------------------------------------------------------------------
    def _tensors(self) -> dict[str, np.ndarray]:
        return network_arrays(self.net_)

    def _meta(self) -> dict[str, Any]:
        return {"classes": list(self.classes_)}

    def _restore(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        self.classes_ = tuple(meta["classes"])
        net, _ = build_detector_net(self.config.net_spec(len(self.classes_)), pretrained=False)
        load_network_arrays(net, arrays, self.name)
        self._configure(net)
        net.requires_grad_(False)
        self.net_ = net.eval()
