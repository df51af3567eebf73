"""The learned detector on tiny synthetic parts: it learns, finds sane boxes, saves and loads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from defectscope.data.boxes.dataset import Box, DetectionDataset, DetectionSample
from defectscope.data.hashing import sha256_file
from defectscope.errors import ConfigError, DataError
from defectscope.models.detector import BoxDetector
from defectscope.values import Detection

SIZE = 64
CLASSES = ("bright", "dark")
# eval_every 8 keeps the final weights: on 8 selection images mAP@0.5 saturates before the two
# classes separate, so an earlier "best" epoch would name the class by chance.
FAST = {"image_size": 64, "fpn_channels": 32, "head_convs": 1, "batch_size": 4, "epochs": 8,
        "lr": 2e-3, "warmup_epochs": 0.5, "ema_decay": 0.0, "eval_every": 8, "scale_jitter": 0.1,
        "photometric": 0.0}


def _part(seed: int) -> tuple[np.ndarray, list[Box]]:
    """Noise with one bright or one dark rectangle (class by seed parity)."""
    rng = np.random.default_rng(seed)
    image = np.clip(rng.normal(120, 12, (SIZE, SIZE)), 0, 255)
    w, h = rng.integers(14, 24, 2)
    x, y = rng.integers(4, SIZE - 4 - w), rng.integers(4, SIZE - 4 - h)
    label = CLASSES[seed % 2]
    image[y:y + h, x:x + w] = 235 if label == "bright" else 15
    return image.astype(np.uint8), [Box(float(x), float(y), float(x + w), float(y + h), label)]


def dataset_of(root, seeds, n_train: int = 24) -> DetectionDataset:
    """``_part(seed)`` for each seed, written under ``root``; the first ``n_train`` in train."""
    root.mkdir(parents=True, exist_ok=True)
    samples = []
    for i, seed in enumerate(seeds):
        image, boxes = _part(seed)
        path = root / f"{seed:02d}.png"
        Image.fromarray(image).save(path)
        samples.append(DetectionSample(path.name, sha256_file(path), SIZE, SIZE, tuple(boxes),
                                       split="train" if i < n_train else "val"))
    return DetectionDataset(root, CLASSES, samples)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> DetectionDataset:
    return dataset_of(tmp_path_factory.mktemp("parts"), range(32))


@pytest.fixture(scope="module")
def fitted(dataset) -> BoxDetector:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: one thread is faster; restored for later tests
    try:
        return BoxDetector(**FAST).fit(dataset.only("train"), dataset.only("val"),
                                       progress=False, log=lambda message: None)
    finally:
        torch.set_num_threads(threads)


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


def test_training_loss_falls(fitted):
    history = fitted.training_["history"]
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]
    assert fitted.training_["best_metric"] > 0.2


def test_detect_finds_the_rectangle_with_its_class(fitted):
    located = named = 0
    for seed in range(100, 112):
        image, (truth,) = _part(seed)
        found = fitted.detect(image)
        assert found and all(isinstance(d, Detection) and d.label in CLASSES for d in found)
        assert [d.confidence for d in found] == sorted((d.confidence for d in found), reverse=True)
        for d in found:
            x1, y1, x2, y2 = d.box
            assert 0 <= x1 < x2 <= SIZE and 0 <= y1 < y2 <= SIZE
        located += _iou(found[0].box, truth.xyxy) > 0.5
        named += found[0].label == truth.label
    assert located >= 10 and named >= 8


def test_grey_and_rgb_inputs_give_the_same_boxes(fitted):
    image, _ = _part(200)
    grey = fitted.detect(image)
    rgb = fitted.detect(np.repeat(image[..., None], 3, axis=2))
    assert grey == rgb


def test_save_then_load_gives_identical_detections(fitted):
    arrays = fitted.arrays()
    loaded = BoxDetector(**FAST).restore(arrays, fitted.weights_source_, fitted.n_train_images_)
    assert loaded.classes_ == CLASSES
    for seed in (300, 301, 302):
        image, _ = _part(seed)
        assert loaded.detect(image) == fitted.detect(image)
    result = loaded.set_threshold(0.3).predict(_part(303)[0])
    assert all(d.confidence >= 0.3 for d in result.detections)


def test_bundle_round_trip_gives_identical_detections(fitted, tmp_path):
    from defectscope.bundle import load_bundle, save_bundle

    save_bundle(fitted.set_threshold(0.3), tmp_path / "model")
    loaded = load_bundle(tmp_path / "model").model
    image, _ = _part(400)
    assert isinstance(loaded, BoxDetector) and loaded.detect(image) == fitted.detect(image)
    assert loaded.predict(image).to_dict()["detections"] == \
        fitted.predict(image).to_dict()["detections"]


def test_recorded_state(fitted):
    assert fitted.weights_source_.backbone == "mobilenet_v2"
    assert fitted.n_train_images_ == 24
    assert fitted.preprocess_config.image_size == 64


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "efficientnet_lite0"])
def test_pyramid_levels_follow_the_strides(backbone):
    from defectscope.models.detector_net import NetSpec, build_detector_net

    net, _ = build_detector_net(NetSpec(backbone, 3, min_stride=4, max_stride=64, frozen_stride=0),
                                pretrained=False)
    levels = net.backbone(torch.zeros(1, 3, 128, 128))
    assert [f.shape[-1] for f in levels.values()] == [32, 16, 8, 4, 2]
    assert all(p.requires_grad for p in net.backbone.stages[-1].parameters() if p.ndim > 1)
    out = net.eval()([torch.zeros(3, 128, 128)])[0]
    assert out["boxes"].shape[1] == 4


@pytest.mark.parametrize("options, match", [
    ({"backbone": "resnet18"}, "supports backbones"),
    ({"fpn_channels": 48}, "multiple of 32"),
    ({"frozen_stride": 3}, "frozen_stride"),
    ({"min_stride": 2}, "min_stride"),
    ({"epochs": 0}, "epochs"),
    ({"lr": 0}, "lr"),
    ({"ema_decay": 1.0}, "ema_decay"),
    ({"selection_fraction": 0.0}, "selection_fraction"),
    ({"min_confidence": 1.5}, "min_confidence"),
    ({"scale_jitter": 1.0}, "scale_jitter"),
    ({"image_size": 8}, "image_size"),
    ({"max_train_seconds": -1}, "max_train_seconds"),
    ({"colour": "red"}, "unknown options"),
])
def test_bad_config_values_raise_config_error(options, match):
    with pytest.raises(ConfigError, match=match):
        BoxDetector(**options)


def test_training_without_boxes_is_a_clear_error(dataset):
    empty = [DetectionSample(s.path, s.sha256, s.width, s.height, split="train")
             for s in dataset.select("train")]
    with pytest.raises(DataError, match="no training image has a box"):
        BoxDetector(**FAST).fit(dataset.with_samples(empty), progress=False,
                                log=lambda message: None)
