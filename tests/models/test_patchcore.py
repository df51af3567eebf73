"""PatchCore's second scale (``context_downscale``): what it adds, that it saves, exports and
loads, and that old bundles keep one scale."""

from __future__ import annotations

import json

import pytest
import torch

from defectscope.bundle import Reference, load_bundle, save_bundle
from defectscope.errors import ConfigError
from defectscope.models import create_model

from tests.conftest import FAST_OPTIONS, good_part

TWO_SCALES = {**FAST_OPTIONS, "neighbourhood": 3, "context_downscale": 2}


@pytest.fixture(scope="module")
def two_scale(good_images):
    return create_model("patchcore", **TWO_SCALES).fit(good_images)


def test_every_patch_carries_the_features_of_both_scales(two_scale, good_images):
    one_scale = create_model("patchcore", **{**TWO_SCALES, "context_downscale": 1})
    one_scale.fit(good_images[:2])
    batch = torch.from_numpy(two_scale.preprocessor(good_images[0])[None])
    with torch.inference_mode():
        both = two_scale.network()(batch)
        fine = one_scale.network()(batch)
    assert both.shape[1] == 2 * fine.shape[1] and both.shape[2:] == fine.shape[2:]
    torch.testing.assert_close(both[:, :fine.shape[1]], fine)  # the full-size half is unchanged
    assert two_scale.memory_bank_.shape[1] == both.shape[1]


def test_two_scales_still_rank_defects_above_good_parts(two_scale, defect_images):
    good = [two_scale.anomaly(good_part(900 + i))[0] for i in range(4)]
    bad = [two_scale.anomaly(image)[0] for image, _ in defect_images]
    assert min(bad) > max(good)


def test_two_scales_save_load_and_export_with_the_same_scores(two_scale, defect_images, tmp_path):
    from defectscope.export import export_onnx
    from defectscope.runtime import RuntimeModel

    two_scale.set_threshold(1.0, {"rule": "manual"})
    references = [Reference(image, two_scale.anomaly(image)[0], f"part-{i}")
                  for i, (image, _) in enumerate(defect_images)]
    folder = save_bundle(two_scale, tmp_path / "model", references=references)
    loaded = load_bundle(folder).model
    assert loaded.config.context_downscale == 2
    export_onnx(folder)  # checks the ONNX network against torch on the reference images
    runtime = RuntimeModel.load(folder)
    for image, _ in defect_images[:2]:
        expected = two_scale.anomaly(image)[0]
        assert loaded.anomaly(image)[0] == expected
        assert runtime.predict(image).score == pytest.approx(expected, rel=1e-3)


def test_odd_sized_inputs_shrink_without_error(good_images):
    model = create_model("patchcore", **{**TWO_SCALES, "image_size": 61, "max_side": 61,
                                         "resize": "square"}).fit(good_images[:3])
    assert model.anomaly(good_images[4])[1].shape == good_images[4].shape[:2]


def test_bundles_from_before_the_second_scale_load_with_one(good_images, tmp_path):
    model = create_model("patchcore", **FAST_OPTIONS).fit(good_images[:3])
    model.set_threshold(1.0, {"rule": "manual"})
    folder = save_bundle(model, tmp_path / "model")
    info_path = folder / "bundle.json"
    info = json.loads(info_path.read_text())
    for key in ("context_downscale", "context_neighbourhood"):
        del info["model"]["config"][key]
    info_path.write_text(json.dumps(info))
    loaded = load_bundle(folder).model
    assert loaded.config.context_downscale == 1
    assert loaded.anomaly(good_images[5])[0] == model.anomaly(good_images[5])[0]


@pytest.mark.parametrize("options, message", [
    ({"context_downscale": 0}, "context_downscale"),
    ({"context_downscale": 1.5}, "context_downscale"),
    ({"context_neighbourhood": 4}, "context_neighbourhood"),
])
def test_bad_second_scale_options_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        create_model("patchcore", **options)

