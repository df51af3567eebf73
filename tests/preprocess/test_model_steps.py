"""Steps travel with the model: fit, predict, save and load use one pipeline (asserted)."""

import json

import numpy as np
import pytest

from defectscope.bundle import load_bundle, save_bundle
from defectscope.errors import BundleError
from defectscope.models import create_model
from defectscope.values import Verdict

from tests.conftest import FAST_OPTIONS
from tests.preprocess.helpers import board, similarity, warp

ALIGN_STEPS = [{"name": "align", "min_quality": 0.6},
               {"name": "normalise", "method": "histogram"},
               {"name": "denoise", "method": "median", "size": 3}]


def shifted_boards(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    reference = board(0, 160)
    return [reference] + [warp(reference, similarity(reference.shape, rng.uniform(-2, 2), 1.0,
                                                     tuple(rng.uniform(-4, 4, 2))))
                          for _ in range(n - 1)]


@pytest.fixture(scope="module")
def aligned_model():
    model = create_model("patchcore", **FAST_OPTIONS, steps=ALIGN_STEPS)
    calls, stage = [], ["fit"]
    original = model.preprocessor.prepare

    def spy(image):
        calls.append((stage[0], id(model.preprocessor)))
        return original(image)

    model.preprocessor.prepare = spy
    model.fit(shifted_boards(5))
    stage[0] = "predict"
    model.set_threshold(1e9)
    model.predict(shifted_boards(2, seed=7)[1])
    model.spy_calls = calls
    return model


def test_train_and_predict_use_the_same_preprocessor_object(aligned_model):
    stages = {stage for stage, _ in aligned_model.spy_calls}
    objects = {obj for _, obj in aligned_model.spy_calls}
    assert stages == {"fit", "predict"}
    assert objects == {id(aligned_model.preprocessor)}
    assert aligned_model.preprocessor.config is aligned_model.preprocess_config
    assert [s.name for s in aligned_model.preprocess_config.steps] == ["align", "normalise",
                                                                       "denoise"]


def test_saved_and_loaded_model_has_the_pipeline_it_was_trained_with(aligned_model, tmp_path):
    save_bundle(aligned_model, tmp_path / "model")
    loaded = load_bundle(tmp_path / "model")
    assert loaded.model.preprocess_config == aligned_model.preprocess_config
    info = json.loads((tmp_path / "model" / "bundle.json").read_text())
    assert info["preprocess"] == aligned_model.preprocess_config.to_dict()
    a, b = aligned_model.preprocessor.arrays(), loaded.model.preprocessor.arrays()
    assert set(a) == set(b) == {"0.align.reference", "1.normalise.cdf"}
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    image = shifted_boards(3, seed=3)[2]
    assert loaded.model.anomaly(image)[0] == pytest.approx(aligned_model.anomaly(image)[0],
                                                           rel=1e-5)


def test_failed_alignment_gives_unsure_with_the_reason(aligned_model):
    result = aligned_model.predict(board(99, 160))
    assert result.verdict is Verdict.UNSURE
    assert np.isnan(result.score)
    assert result.reason.startswith("alignment failed")


def test_reference_missing_from_the_bundle_is_a_clear_error(aligned_model, tmp_path):
    from safetensors.numpy import load_file, save_file

    from defectscope.data.hashing import sha256_file

    folder = save_bundle(aligned_model, tmp_path / "model")
    tensors = load_file(str(folder / "tensors.safetensors"))
    del tensors["preprocess.0.align.reference"]
    save_file(tensors, str(folder / "tensors.safetensors"))
    info = json.loads((folder / "bundle.json").read_text())
    info["files"]["tensors.safetensors"] = sha256_file(folder / "tensors.safetensors")
    (folder / "bundle.json").write_text(json.dumps(info))
    with pytest.raises(BundleError, match="reference image"):
        load_bundle(folder)


@pytest.mark.parametrize("name", ["patchcore", "padim"])
def test_tiled_model_maps_back_to_full_size_and_finds_defects(name, good_images, defect_images):
    tile = {"name": "tile", "mode": "on", "size": 40, "overlap": 0.25}
    model = create_model(name, **FAST_OPTIONS, steps=[tile]).fit(good_images)
    assert model.preprocessor.tiles(good_images[0].shape) is not None
    image, mask = defect_images[0]
    score, anomaly_map, timings = model.anomaly(image)
    assert anomaly_map.shape == image.shape[:2]
    assert set(timings) == {"preprocess", "backbone", "scoring", "anomaly_map"}
    from tests.conftest import good_part
    good = [model.anomaly(good_part(900 + i))[0] for i in range(3)]
    assert score > max(good)
    assert anomaly_map[mask].mean() > anomaly_map[~mask].mean()


def test_roi_crop_map_is_in_original_coordinates(good_images):
    steps = [{"name": "roi", "box": [8, 4, 80, 68]}]
    model = create_model("patchcore", **FAST_OPTIONS, steps=steps).fit(good_images)
    _, anomaly_map, _ = model.anomaly(good_images[0])
    assert anomaly_map.shape == good_images[0].shape[:2]
    assert (anomaly_map[:, :8] == 0).all() and (anomaly_map[:4] == 0).all()


def test_steps_are_in_the_model_config_as_plain_dicts():
    model = create_model("patchcore", **FAST_OPTIONS, steps=[{"name": "denoise"}])
    data = model.config.to_dict()
    assert data["steps"][0]["name"] == "denoise" and data["steps"][0]["size"] == 3
    json.dumps(data)


def test_bundles_from_before_steps_never_start_tiling(good_images, tmp_path):
    model = create_model("patchcore", **FAST_OPTIONS).fit(good_images).set_threshold(1.0)
    folder = save_bundle(model, tmp_path / "model")
    info = json.loads((folder / "bundle.json").read_text())
    del info["model"]["config"]["steps"]  # as written before preprocessing steps existed
    (folder / "bundle.json").write_text(json.dumps(info))
    loaded = load_bundle(folder).model
    assert loaded.preprocessor.tile.mode == "off"
    assert loaded.preprocessor.tiles((4096, 4096, 3)) is None
    assert model.preprocessor.tile.mode == "auto"  # new models tile much larger images
