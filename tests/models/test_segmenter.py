"""The segmenter on tiny synthetic parts: map shapes, learning, save/load, bad masks."""

from __future__ import annotations

import numpy as np
import pytest

from defectscope.data.images.image_set import ImageSet
from defectscope.bundle import load_bundle, save_bundle
from defectscope.errors import ConfigError, DataError
from defectscope.models import create_model
from defectscope.models.segmenter import dice_score, pixel_auroc

from tests.conftest import defective_part, good_part

FAST = {"image_size": 32, "batch_size": 8, "epochs": 3, "warmup_epochs": 2, "augment": False,
        "lr": 1e-2}


@pytest.fixture(scope="module")
def data():
    defects = [defective_part(200 + i) for i in range(6)]
    images = [good_part(i) for i in range(4)] + [image for image, _ in defects]
    masks = [None] * 4 + [mask for _, mask in defects]
    return images, masks


@pytest.fixture(scope="module")
def fitted(data):
    return create_model("segmenter", **FAST).fit(ImageSet(data[0], masks=data[1]), progress=False,
                                                 log=lambda m: None)


def test_training_loss_falls_and_map_has_image_size(fitted, data):
    history = fitted.training_["history"]
    assert history[-1]["loss"] < history[0]["loss"]
    fitted.set_threshold(0.5)
    image = data[0][-1]
    result = fitted.predict(image)
    assert result.anomaly_map.shape == image.shape[:2]
    assert result.anomaly_map.dtype == np.float32
    assert 0.0 <= result.anomaly_map.min() and result.anomaly_map.max() <= 1.0
    assert result.score == pytest.approx(fitted.anomaly(image)[0])


def test_save_then_load_gives_identical_maps(fitted, data, tmp_path):
    fitted.set_threshold(0.5, {"rule": "manual"})
    save_bundle(fitted, tmp_path / "model")
    loaded = load_bundle(tmp_path / "model").model
    for image in data[0][::4]:
        a, map_a, _ = fitted.anomaly(image)
        b, map_b, _ = loaded.anomaly(image)
        assert a == b
        np.testing.assert_array_equal(map_a, map_b)


def test_no_defect_masks_or_mismatched_masks_are_clear_errors(data):
    images = data[0][:4]
    with pytest.raises(DataError, match="defect masks"):
        create_model("segmenter", **FAST).fit(ImageSet(images, masks=[None] * 4), progress=False)
    with pytest.raises(DataError, match="does not fit"):
        create_model("segmenter", **FAST).fit(ImageSet(images, masks=[np.ones((5, 5), bool)] * 4),
                                              progress=False)


def test_flip_average_is_the_mean_of_the_four_mirrors_and_mirror_equivariant(fitted, data):
    import torch

    from defectscope.models.contract import torch_forward
    from defectscope.scoring.segmentation import defect_probabilities

    image = np.ascontiguousarray(data[0][-1][:, :40])  # not square: mirrors must map back exactly
    batch = torch.from_numpy(fitted.prepare([image]))
    with torch.inference_mode():
        plain = [torch.sigmoid(fitted.net_(batch.flip(d) if d else batch)) for d in
                 ((), (-1,), (-2,), (-2, -1))]
        expected = (plain[0] + plain[1].flip(-1) + plain[2].flip(-2) + plain[3].flip(-2, -1)) / 4
    forward = torch_forward(fitted.net_)
    mean = defect_probabilities(lambda b: forward(b)[0], batch.numpy(), flip_average=True)
    np.testing.assert_allclose(mean, expected.numpy(), rtol=1e-6, atol=1e-7)
    averaged = create_model("segmenter", **FAST, flip_average=True)
    averaged.restore(fitted.arrays(), fitted.weights_source_, fitted.n_train_images_)
    score, prob, _ = averaged.anomaly(image)
    mirrored_score, mirrored_prob, _ = averaged.anomaly(np.ascontiguousarray(image[:, ::-1]))
    np.testing.assert_allclose(mirrored_prob, prob[:, ::-1], atol=1e-5)
    assert mirrored_score == pytest.approx(score, abs=1e-5)
    assert not np.allclose(fitted.anomaly(image[:, ::-1])[1], fitted.anomaly(image)[1][:, ::-1],
                           atol=1e-5)  # without averaging the network is not equivariant


def test_pixel_auroc_selection_keeps_the_checkpoint_with_the_best_validation_auroc(data):
    images, masks = data
    model = create_model("segmenter", **FAST, select_metric="pixel_auroc").fit(
        ImageSet(images, masks=masks), ImageSet(images, masks=masks), progress=False,
        log=lambda m: None)
    history = [row["val"] for row in model.training_["history"]]
    assert model.training_["best_metric"] == max(history)
    y_val = np.stack(model._masks_at_input(images, masks))
    kept = pixel_auroc(model._probability_maps(model.net_, model.prepare(images)), y_val)
    assert kept == pytest.approx(model.training_["best_metric"], abs=1e-9)
    assert kept != pytest.approx(dice_score(
        model._probability_maps(model.net_, model.prepare(images)), y_val))


def test_pixel_auroc_selection_falls_back_to_dice_without_defect_pixels(data):
    images, masks = data
    messages = []
    create_model("segmenter", **{**FAST, "epochs": 2}, select_metric="pixel_auroc").fit(
        ImageSet(images, masks=masks), ImageSet(images[:4], masks=masks[:4]), progress=False,
        log=messages.append)
    assert any("picked on Dice" in m for m in messages)


def test_unknown_select_metric_is_a_config_error():
    with pytest.raises(ConfigError, match="select_metric"):
        create_model("segmenter", select_metric="iou")


def test_with_ema_the_kept_weights_are_the_validated_average(data):
    images, masks = data
    options = {**FAST, "select_metric": "pixel_auroc"}
    data = ImageSet(images, masks=masks)
    plain = create_model("segmenter", **options).fit(data, data, progress=False,
                                                     log=lambda m: None)
    averaged = create_model("segmenter", **options, ema_decay=0.9).fit(
        data, data, progress=False, log=lambda m: None)
    x, y_val = averaged.prepare(images), np.stack(averaged._masks_at_input(images, masks))
    kept = pixel_auroc(averaged._probability_maps(averaged.net_, x), y_val)
    assert kept == pytest.approx(averaged.training_["best_metric"], abs=1e-9)
    assert not np.allclose(averaged._probability_maps(averaged.net_, x),
                           plain._probability_maps(plain.net_, x))
    with pytest.raises(ConfigError, match="ema_decay"):
        create_model("segmenter", ema_decay=1.0)
