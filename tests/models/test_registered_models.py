"""One shared test over every registered model: fit, predict shapes, save/load gives equal scores."""

from __future__ import annotations

import numpy as np
import pytest

from defectscope.bundle import load_bundle, save_bundle
from defectscope.errors import ConfigError, DefectscopeError
from defectscope.models import create_model, list_models
from defectscope.values import InspectionResult, Verdict

from tests.conftest import FAST_OPTIONS


@pytest.fixture(scope="module", params=["patchcore", "padim"])
def fitted(request, good_images):
    model = create_model(request.param, **FAST_OPTIONS)
    return model.fit(good_images)


def test_builtin_models_are_registered():
    assert {"patchcore", "padim", "classifier", "segmenter", "reference",
            "detector"} <= set(list_models())


def test_predict_gives_one_result_type_with_map_at_image_size(fitted, good_images, defect_images):
    fitted.set_threshold(1.0)
    image, _ = defect_images[0]
    result = fitted.predict(image)
    assert isinstance(result, InspectionResult)
    assert result.anomaly_map.shape == image.shape[:2]
    assert result.anomaly_map.dtype == np.float32
    assert result.verdict in set(Verdict)
    assert set(result.timings) == {"preprocess", "backbone", "scoring", "anomaly_map"}


def test_defects_score_higher_than_good_parts(fitted, defect_images):
    from tests.conftest import good_part

    good = [fitted.anomaly(good_part(900 + i))[0] for i in range(4)]
    bad = [fitted.anomaly(image)[0] for image, _ in defect_images]
    assert min(bad) > max(good)


def test_anomaly_map_peaks_inside_the_defect(fitted, good_images, defect_images):
    # A 5x5 neighbourhood (PatchCore's default) smears a 6-px blob on a 64-px input; 3x3 keeps
    # it sharp enough for a 2x contrast.
    if fitted.name == "patchcore":
        fitted = type(fitted)(**FAST_OPTIONS, neighbourhood=3).fit(good_images)
    image, mask = defect_images[1]
    _, anomaly_map, _ = fitted.anomaly(image)
    assert anomaly_map[mask].mean() > 2 * anomaly_map[~mask].mean()


def test_save_then_load_gives_identical_scores(fitted, defect_images, tmp_path):
    fitted.set_threshold(1.0, {"rule": "manual"})
    save_bundle(fitted, tmp_path / "model")
    loaded = load_bundle(tmp_path / "model").model
    for image, _ in defect_images[:2]:
        a, map_a, _ = fitted.anomaly(image)
        b, map_b, _ = loaded.anomaly(image)
        assert a == b
        np.testing.assert_array_equal(map_a, map_b)
    assert loaded.threshold == 1.0


def test_fit_is_idempotent(good_images, defect_images):
    from defectscope.models.anomaly_base import AnomalyModel
    from defectscope.models.registry import model_class

    # Supervised models (classifier, segmenter) take labels; tests/models/test_classifier.py etc.
    for name in [n for n in list_models() if issubclass(model_class(n), AnomalyModel)]:
        model = create_model(name, **FAST_OPTIONS)
        first = model.fit(good_images).anomaly(defect_images[0][0])[0]
        second = model.fit(good_images).anomaly(defect_images[0][0])[0]
        assert first == pytest.approx(second, rel=1e-5)


def test_predict_before_fit_or_threshold_is_a_clear_error(good_images):
    model = create_model("padim", **FAST_OPTIONS)
    with pytest.raises(DefectscopeError, match="not fitted"):
        model.predict(good_images[0])
    model.fit(good_images)
    with pytest.raises(DefectscopeError, match="threshold"):
        model.predict(good_images[0])


def test_unknown_names_and_options_are_refused():
    with pytest.raises(ConfigError, match="known models"):
        create_model("yolo-anomaly")
    with pytest.raises(ConfigError, match="known backbones"):
        create_model("patchcore", backbone="resnet9000")
    with pytest.raises(ConfigError, match="unknown options"):
        create_model("patchcore", coreset_raito=0.1)
    with pytest.raises(ConfigError):
        create_model("patchcore", coreset_ratio=1.5)
    with pytest.raises(ConfigError, match="top_fraction"):
        create_model("patchcore", top_fraction=1.5)
    with pytest.raises(ConfigError, match="square"):
        create_model("padim", resize="keep_aspect")
    with pytest.raises(ConfigError, match=r"\['block\.3'\] are not stages of efficientnet_lite0"):
        create_model("padim", layers=["blocks.2", "block.3"])  # refused before any work


def test_layers_given_as_text_are_a_comma_separated_list():
    # --set layers=blocks.2,blocks.3 arrives as one string, not a list of characters
    assert create_model("patchcore", layers="blocks.2, blocks.3").config.layers == (
        "blocks.2", "blocks.3")
    assert create_model("patchcore", layers="blocks.3").layers == ("blocks.3",)
    assert create_model("patchcore").layers == ("blocks.2", "blocks.4")  # the backbone default


def test_fit_without_images_is_a_clear_error():
    with pytest.raises(DefectscopeError, match="no images"):
        create_model("patchcore", **FAST_OPTIONS).fit([])
