"""A defect segmenter: the pretrained backbone as encoder and a light FPN decoder to a per-pixel
defect probability.

The image score is the highest probability reached over at least ``min_area`` of the image (the
k-th largest pixel, k = ``min_area`` x pixels): a single hot pixel does not reject a part, a
defect of that area does. The probability map is the ``anomaly_map`` of the result.

>>> model = create_model("segmenter", image_size=256)                    # doctest: +SKIP
>>> model.fit(ImageSet(images, masks=masks), ImageSet(val_images, masks=val_masks))  # doctest: +SKIP
>>> model.set_threshold(0.5)                                                         # doctest: +SKIP
>>> model.predict(image).anomaly_map.shape == image.shape[:2]            # doctest: +SKIP
True
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from defectscope.data.images.image_set import ImageSet
from defectscope.errors import ConfigError, DataError, DefectscopeError
from defectscope.models.backbones import (
    WeightsSource,
    build_feature_extractor,
    empty_feature_extractor,
)
from defectscope.models.registry import register
from defectscope.models.contract import torch_forward
from defectscope.models.supervised_base import SupervisedConfig, SupervisedModel, targets_of
from defectscope.scoring.heads import SegmenterHead
from defectscope.scoring.segmentation import defect_probabilities

ENCODER_LAYERS = ("blocks.1", "blocks.2", "blocks.4", "blocks.6")  # strides 4, 8, 16, 32
SELECT_METRICS = ("dice", "pixel_auroc")


@dataclasses.dataclass(frozen=True)
class SegmenterConfig(SupervisedConfig):
    loss: str = "dice_bce"
    decoder_channels: int = 64
    min_area: float = 0.0005  # fraction of the image a defect must cover to set the score
    flip_average: bool = False  # average the probabilities of the image and its 3 mirror images
    # The validation figure that picks the checkpoint: Dice of the mask at probability 0.5, or
    # the pixel AUROC of the probability map (threshold-free, what the pixel target measures).
    select_metric: str = "dice"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss not in ("dice_bce", "dice_focal"):
            raise ConfigError(f"segmenter loss {self.loss!r}: use dice_bce or dice_focal")
        if self.select_metric not in SELECT_METRICS:
            raise ConfigError(f"select_metric {self.select_metric!r} unknown; use one of "
                              f"{SELECT_METRICS}")
        if not 0 <= self.min_area < 1:
            raise ConfigError("min_area is a fraction of the image, in [0, 1)")


class FPNDecoder(nn.Module):
    """Lateral 1x1 convolutions, a top-down sum, then 3x3 + 1x1 convolutions to one logit map."""

    def __init__(self, in_channels: Sequence[int], channels: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.head = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1),
                                  nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, 1, 1))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.lateral[-1](features[-1])
        for lateral, feature in zip(self.lateral[-2::-1], features[-2::-1]):
            x = lateral(feature) + F.interpolate(x, size=feature.shape[-2:], mode="bilinear",
                                                 align_corners=False)
        return self.head(x)


class SegmentationNet(nn.Module):
    """Encoder + decoder; returns logits N x 1 x H x W at the input size."""

    def __init__(self, encoder: nn.Module, channels: int) -> None:
        super().__init__()
        self.encoder = encoder
        with torch.no_grad():
            widths = [f.shape[1] for f in encoder.eval()(torch.zeros(1, 3, 64, 64))]
        self.decoder = FPNDecoder(widths, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.decoder(self.encoder(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def dice_score(prob: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> float:
    """Global Dice of ``prob >= threshold`` against ``mask`` (1.0 when both are empty)."""
    pred = prob >= threshold
    denominator = pred.sum() + mask.sum()
    return float(2 * np.logical_and(pred, mask).sum() / denominator) if denominator else 1.0


def pixel_auroc(prob: np.ndarray, mask: np.ndarray) -> float:
    """AUROC of every pixel's probability against ``mask``; needs both kinds of pixel."""
    from defectscope.evaluation.metrics import auroc  # pure numpy (scikit-learn is dev-only)

    return float(auroc(prob.ravel(), mask.ravel()))


@register("segmenter")
class DefectSegmenter(SupervisedModel):
    config_class = SegmenterConfig

    def _meta(self) -> dict[str, Any]:
        return {"layers": list(ENCODER_LAYERS)}

    def _set_meta(self, meta: Mapping[str, Any]) -> None:
        if tuple(meta.get("layers", ())) != ENCODER_LAYERS:
            raise DefectscopeError(f"saved segmenter taps {meta.get('layers')}, this version "
                                   f"{list(ENCODER_LAYERS)}")

    def _build_network(self, pretrained: bool) -> tuple[nn.Module, WeightsSource | None]:
        if pretrained:
            encoder, source = build_feature_extractor(self.config.backbone, ENCODER_LAYERS,
                                                      self.config.backbone_weights)
        else:
            encoder, source = empty_feature_extractor(self.config.backbone, ENCODER_LAYERS), None
        torch.manual_seed(self.config.seed)  # the decoder's initial weights
        return SegmentationNet(encoder, self.config.decoder_channels), source

    def _masks_at_input(self, images: Sequence[np.ndarray],
                        masks: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        out = []
        for image, mask in zip(images, masks):
            h, w = self.preprocessor.input_size(image.shape)
            if mask is None:
                out.append(np.zeros((h, w), dtype=bool))
                continue
            if mask.shape[:2] != image.shape[:2]:
                raise DataError(f"a mask of shape {mask.shape[:2]} does not fit its image "
                                f"{image.shape[:2]}")
            out.append(cv2.resize(mask.astype(np.uint8), (w, h),
                                  interpolation=cv2.INTER_NEAREST).astype(bool))
        return out

    def fit(self, data: ImageSet, val: ImageSet | None = None, *, progress: bool = True,
            log: Callable[[str], None] = print) -> "DefectSegmenter":
        """Train on ``data``'s RGB uint8 images and boolean ``masks`` (None: a good image, no
        defect); early-stop on ``val``'s ``select_metric``. Returns ``self``."""
        from defectscope.models.fitting.loop import LoopSpec, fit_network
        from defectscope.models.fitting.losses import segmentation_loss

        images, masks, val_images, val_masks = targets_of(data, val, "masks", "segmenter")
        if len(images) != len(masks) or not len(images):
            raise DataError(f"fit needs one mask (or None) per image (got {len(images)} images, "
                            f"{len(masks)} masks), and at least one")
        y = self._masks_at_input(images, masks)
        has_defect = [bool(m.any()) for m in y]
        if not any(has_defect):
            raise DataError("no training mask marks a defect; the segmenter needs defect masks "
                            "(use `defectscope data synthesize` to make some from good images)")
        if val_images is None or not len(val_images):
            log("warning: no validation images; early stopping uses the training images")
            val_images, val_masks = images, masks
        y_val = np.stack(self._masks_at_input(val_images, val_masks))
        n_defect = sum(has_defect)
        sampler = self.config.sampler
        if sampler == "auto":
            ratio = max(n_defect, len(y) - n_defect) / max(min(n_defect, len(y) - n_defect), 1)
            sampler = "oversample" if ratio > 3 else "shuffle"
        log(f"{n_defect} images with defect masks, {len(y) - n_defect} without -> sampler "
            f"{sampler}, loss {self.config.loss}, augmentation "
            f"{'on' if self.config.augment else 'off'}")
        net, source = self._build_network(pretrained=True)
        x, x_val = self.prepare(images), self.prepare(val_images)

        select = self.config.select_metric
        if select == "pixel_auroc" and (y_val.all() or not y_val.any()):
            log("warning: the validation masks hold only one kind of pixel; the checkpoint is "
                "picked on Dice instead of pixel AUROC")
            select = "dice"
        score = pixel_auroc if select == "pixel_auroc" else dice_score

        def metric(network: nn.Module) -> float:
            return score(self._probability_maps(network, x_val), y_val)

        spec = LoopSpec(head=net.decoder, loss=segmentation_loss(self.config.loss,
                                                                 self.config.focal_gamma),
                        metric=metric, masks=True, sample_classes=[int(d) for d in has_defect],
                        targets_tensor=lambda t: torch.from_numpy(np.stack(t)[:, None]))
        self.training_ = fit_network(net, spec, x, y, config=self.config, sampler=sampler,
                                     progress=progress, log=log)
        self.net_, self.weights_source_ = net.eval(), source
        self.n_train_images_ = len(images)
        self.threshold_, self.calibration_ = None, None
        return self

    # -- inference ----------------------------------------------------------------------------
    # Logits -> probabilities (flip-averaged or not) -> score and map is ``defectscope.scoring``'s,
    # the same functions the torch-free runtime calls.
    def _probability_maps(self, network: nn.Module, x: np.ndarray) -> np.ndarray:
        """N x H x W defect probabilities of a preprocessed stack (flip-averaged if configured)."""
        forward = torch_forward(network)
        return np.concatenate([
            defect_probabilities(lambda b: forward(b)[0], x[start:start + 16],
                                 self.config.flip_average)[:, 0]
            for start in range(0, len(x), 16)])

    def head(self) -> SegmenterHead:
        return SegmenterHead(self.preprocessor, self.config.min_area, self.config.flip_average)
