"""The classifier on tiny synthetic parts: it learns, its outputs, save/load, bad labels."""

from __future__ import annotations

import numpy as np
import pytest

from defectscope.data.images.image_set import ImageSet
from defectscope.bundle import load_bundle, save_bundle
from defectscope.errors import ConfigError, DataError
from defectscope.models import create_model
from defectscope.values import InspectionResult, Verdict

from tests.conftest import defective_part, good_part

FAST = {"image_size": 32, "batch_size": 8, "epochs": 3, "warmup_epochs": 2, "augment": False,
        "lr": 1e-2}


def _scratched(seed: int) -> np.ndarray:
    image = good_part(seed).copy()
    image[10:12, 5:50] = 240
    return image


@pytest.fixture(scope="module")
def data():
    images = [good_part(i) for i in range(6)] + [defective_part(50 + i)[0] for i in range(6)] \
        + [_scratched(80 + i) for i in range(6)]
    labels = ["good"] * 6 + ["blob"] * 6 + ["scratch"] * 6
    return images, labels


@pytest.fixture(scope="module")
def fitted(data):
    images, labels = data
    return create_model("classifier", **FAST).fit(ImageSet(images, labels), progress=False,
                                                  log=lambda m: None)


def test_training_loss_falls_and_classes_are_learned(fitted):
    history = fitted.training_["history"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert fitted.classes_ == ("good", "blob", "scratch")


def test_predict_gives_result_with_defect_type(fitted, data):
    fitted.set_threshold(0.5)
    result = fitted.predict(data[0][10])
    assert isinstance(result, InspectionResult)
    assert result.verdict in set(Verdict) and 0 <= result.score <= 1
    assert result.anomaly_map is None
    assert set(fitted.probabilities(data[0][0])) == {"good", "blob", "scratch"}


def test_save_then_load_gives_identical_outputs(fitted, data, tmp_path):
    fitted.set_threshold(0.5, {"rule": "manual"})
    save_bundle(fitted, tmp_path / "model")
    loaded = load_bundle(tmp_path / "model").model
    assert loaded.classes_ == fitted.classes_
    for image in data[0][::5]:
        assert loaded.probabilities(image) == fitted.probabilities(image)
        assert loaded.predict(image).defect_type == fitted.predict(image).defect_type


def test_binary_task_maps_every_defect_to_defect(data):
    model = create_model("classifier", task="binary", **{**FAST, "epochs": 1, "warmup_epochs": 1})
    model.fit(ImageSet(*data), progress=False, log=lambda m: None)
    assert model.classes_ == ("good", "defect")


def test_bad_labels_and_options_are_clear_errors(fitted, data):
    with pytest.raises(DataError, match="name no class"):
        fitted.targets_for(["good", "dent"])
    with pytest.raises(DataError, match="at least two"):
        create_model("classifier", **FAST).fit(ImageSet(data[0][:3], ["good"] * 3),
                                               progress=False)
    with pytest.raises(DataError, match="as many labels"):
        create_model("classifier", **FAST).fit(ImageSet(data[0][:3], ["good"]), progress=False)
    with pytest.raises(ConfigError, match="task"):
        create_model("classifier", task="regression")
    with pytest.raises(ConfigError, match="unknown options"):
        create_model("classifier", epochz=3)
