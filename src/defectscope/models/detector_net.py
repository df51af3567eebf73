"""The learned detector's torch module: torchvision's FCOS on a pretrained feature pyramid.

Why FCOS: it is anchor-free (one point per feature-map cell, no anchor shapes to tune per
dataset), its centre-ness branch keeps loose boxes from small defects down, and torchvision
ships the head, the target assignment and the losses, so none of that is re-implemented here.

The trunk is a pretrained MobileNetV2 or EfficientNet-Lite cut at the stages whose outputs have
strides 8, 16 and 32 (optionally 4 for tiny defects), topped by torchvision's feature pyramid.
The head is slimmer than torchvision's default (2 convs of 64-128 channels instead of 4 of 256),
which is what makes training on a CPU affordable; the trunk's batch-norm layers are frozen
(their ImageNet statistics kept), as torchvision does for every detection backbone, because
detection batches are too small for reliable statistics.

Input: float tensors already resized and normalised by ``defectscope.preprocess`` (the same
code the runtime uses), so the FCOS transform here only batches; it never resizes.
Inference runs ``HeadOutputs`` (the network up to FCOS's raw head outputs, also what ONNX
holds) and decodes with ``defectscope.scoring.fcos``, not torchvision's post-processing.

>>> net = build_detector_net(NetSpec("mobilenet_v2", n_classes=6), pretrained=False)
>>> net.eval()([torch.zeros(3, 128, 128)])[0]["boxes"].shape[1]
4
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.fcos import FCOS, FCOSHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock, FeaturePyramidNetwork

from defectscope.errors import ConfigError
from defectscope.models.backbones import WeightsSource, get_backbone_spec, load_pretrained
from defectscope.scoring.fcos import fcos_strides

# Stage (module path in the backbone) whose output has each stride, per backbone.
TAPS: dict[str, dict[int, str]] = {
    "mobilenet_v2": {4: "features.3", 8: "features.6", 16: "features.13", 32: "features.17"},
    **{f"efficientnet_lite{n}": {4: "blocks.1", 8: "blocks.2", 16: "blocks.4", 32: "blocks.6"}
       for n in (0, 1, 2)},
}
# The output stride of each trunk stage: stages up to ``NetSpec.frozen_stride`` keep their
# ImageNet weights (low-level edges transfer well, and the high-resolution stages are where
# backpropagation costs most on a CPU).
STAGE_STRIDES: dict[str, dict[str, int]] = {
    "mobilenet_v2": {f"features.{i}": s for i, s in enumerate(
        (2, 2, 4, 4, 8, 8, 8, 16, 16, 16, 16, 16, 16, 16, 32, 32, 32, 32, 32))},
    **{f"efficientnet_lite{n}": {"conv_stem": 2, "bn1": 2, "blocks.0": 2, "blocks.1": 4,
                                 "blocks.2": 8, "blocks.3": 16, "blocks.4": 16, "blocks.5": 32,
                                 "blocks.6": 32} for n in (0, 1, 2)},
}


@dataclass(frozen=True)
class NetSpec:
    """What fixes the network: its shape (and so the saved tensors) and which stages train."""

    backbone: str
    n_classes: int
    min_stride: int = 8  # 4 adds a stride-4 level for defects a few pixels wide
    max_stride: int = 32  # 64 adds a level for parts much larger than the input
    fpn_channels: int = 96
    head_convs: int = 2
    frozen_stride: int = 8  # trunk stages with this output stride or finer are not trained

    def strides(self) -> tuple[int, ...]:
        return fcos_strides(self.min_stride, self.max_stride)


class _LastLevelP6(ExtraFPNBlock):
    """One extra pyramid level, a stride-2 conv on the coarsest output (as RetinaNet's P6)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.p6 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, results, x, names):
        results.append(self.p6(results[-1]))
        names.append("p6")
        return results, names


class PyramidTrunk(nn.Module):
    """Backbone stages up to the deepest tap, then a feature pyramid over the tapped outputs."""

    def __init__(self, backbone: nn.Module, spec: NetSpec) -> None:
        super().__init__()
        taps = TAPS[spec.backbone]
        stage_names = get_backbone_spec(spec.backbone).stage_names
        strides = [s for s in spec.strides() if s in taps]
        self.tap_names = [taps[s] for s in strides]
        last = stage_names.index(self.tap_names[-1])
        self.stage_names = list(stage_names[: last + 1])
        self.stages = nn.ModuleList(backbone.get_submodule(n) for n in self.stage_names)
        self._tap_index = {self.stage_names.index(n): f"p{i}" for i, n in enumerate(self.tap_names)}
        channels = self._channels()
        extra = _LastLevelP6(spec.fpn_channels) if spec.max_stride == 64 else None
        self.fpn = FeaturePyramidNetwork(channels, spec.fpn_channels, extra_blocks=extra)
        self.out_channels = spec.fpn_channels
        strides = STAGE_STRIDES[spec.backbone]
        for name, stage in zip(self.stage_names, self.stages):
            if strides[name] <= spec.frozen_stride:
                stage.requires_grad_(False)
        for module in self.stages.modules():  # batch-norm affine parameters stay ImageNet's
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.requires_grad_(False)

    def _channels(self) -> list[int]:
        with torch.no_grad():
            return [f.shape[1] for f in self._taps(torch.zeros(1, 3, 64, 64))]

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index in self._tap_index:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        taps = self._taps(x)
        return self.fpn(OrderedDict((f"p{i}", t) for i, t in enumerate(taps)))

    def train(self, mode: bool = True) -> "PyramidTrunk":
        super().train(mode)
        for module in self.stages.modules():  # keep ImageNet statistics: batches are small
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self


class _BatchOnly(GeneralizedRCNNTransform):
    """FCOS's input transform minus resizing and normalising (``defectscope.preprocess`` did
    both): it only pads the images into one batch, so boxes stay in the input's pixel frame."""

    def __init__(self) -> None:
        super().__init__(min_size=1, max_size=1, image_mean=[0.0] * 3, image_std=[1.0] * 3,
                         size_divisible=32)

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        return image

    def resize(self, image: torch.Tensor, target: Any = None):
        return image, target


class HeadOutputs(nn.Module):
    """An FCOS up to its raw head outputs, for one padded batch (N x 3 x H x W float32): class
    logits N x P x K, box distances N x P x 4 and centre-ness logits N x P x 1 over every
    level's points, and the levels' grid sizes L x 2 (int64). This is what inference runs and
    what goes into ONNX; decoding is ``defectscope.scoring.fcos``'s numpy, shared with the
    runtime, instead of torchvision's ``postprocess_detections``. Shares ``net``'s modules."""

    def __init__(self, net: FCOS) -> None:
        super().__init__()
        self.backbone = net.backbone
        self.head = net.head

    def forward(self, x: torch.Tensor):
        features = list(self.backbone(x).values())
        out = self.head(features)
        # Shapes as tensors, so the traced ONNX graph reports the sizes of the input it gets.
        sizes = torch.stack([torch._shape_as_tensor(f)[2:] for f in features])
        return out["cls_logits"], out["bbox_regression"], out["bbox_ctrness"], sizes


def build_detector_net(spec: NetSpec, pretrained: bool, weights_file: str | None = None,
                       ) -> tuple[FCOS, WeightsSource | None]:
    """An FCOS over ``spec``'s pyramid, with ImageNet trunk weights when ``pretrained``."""
    if spec.backbone not in TAPS:
        raise ConfigError(f"the detector supports backbones {sorted(TAPS)}, not {spec.backbone!r}")
    backbone_spec = get_backbone_spec(spec.backbone)
    if pretrained:
        backbone, source = load_pretrained(backbone_spec, weights_file)
    else:
        backbone, source = backbone_spec.build(), None
    trunk = PyramidTrunk(backbone, spec)
    strides = spec.strides()
    # FCOS reads each level's anchor size as its stride: points are stride apart, a level
    # answers for boxes whose largest side distance is 4-8 strides, centre sampling is 1.5 strides.
    anchors = AnchorGenerator(tuple((s,) for s in strides), ((1.0,),) * len(strides))
    head = FCOSHead(spec.fpn_channels, 1, spec.n_classes, num_convs=spec.head_convs)
    # The head clamps its box distances with a ReLU; from torchvision's zero bias, half the
    # outputs start with no gradient and a side can die (boxes cut off at the grid point).
    # Starting at one stride per side keeps every distance alive.
    nn.init.constant_(head.regression_head.bbox_reg.bias, 1.0)
    net = FCOS(trunk, spec.n_classes, anchor_generator=anchors, head=head,
               score_thresh=0.05, nms_thresh=0.6, detections_per_img=100, topk_candidates=1000)
    net.transform = _BatchOnly()
    return net, source
