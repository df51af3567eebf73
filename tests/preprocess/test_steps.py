"""Each declarative step on synthetic images with known answers; config validation."""

import numpy as np
import pytest

from defectscope.errors import ConfigError
from defectscope.preprocess import PreprocessConfig, Preprocessor, STEP_TYPES, parse_step, parse_steps
from defectscope.preprocess.steps import to_rgb8

from tests.preprocess.helpers import board


def ramp(shape=(101, 8)) -> np.ndarray:
    column = np.arange(100, 100 + shape[0], dtype=np.uint8)
    return np.repeat(np.repeat(column[:, None, None], shape[1], 1), 3, 2)


def test_colour_16_bit_rule_matches_load_image():
    wide = np.array([[0, 257, 65535, 128]], np.uint16)
    out = parse_step({"name": "colour"}).apply(wide, {})[0]
    assert out.shape == (1, 4, 3) and out.dtype == np.uint8
    assert out[0, :, 0].tolist() == [0, 1, 255, 0]  # round(v / 257); 128/257 rounds to 0


def test_colour_grayscale_gives_three_equal_channels():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)
    out = parse_step({"name": "colour", "mode": "grayscale"}).apply(image, {})[0]
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_pipeline_starting_with_colour_accepts_grey_and_16_bit():
    pre = Preprocessor(PreprocessConfig(image_size=32, steps=[{"name": "colour"}]))
    assert pre(np.zeros((40, 40), np.uint16)).shape == (3, 32, 32)


def test_letterbox_keeps_aspect_and_reports_its_matrix():
    image = np.full((50, 100, 3), 200, np.uint8)
    out, matrix = parse_step({"name": "resize", "size": 64, "mode": "letterbox"}).apply(image, {})
    assert out.shape == (64, 64, 3)
    assert (out[:16] == 0).all() and (out[16:48] == 200).all() and (out[48:] == 0).all()
    np.testing.assert_allclose(matrix @ [100, 50, 1], [64, 48, 1])  # bottom-right corner


def test_percentile_stretch_maps_the_stated_percentiles():
    image = ramp()  # values 100..200: 10th percentile 110, 90th 190
    step = parse_step({"name": "normalise", "method": "percentile", "low": 10, "high": 90,
                       "out_low": 50, "out_high": 150})
    out = step.apply(image, {})[0]
    assert out[10, 0, 0] == 50 and out[90, 0, 0] == 150 and out[50, 0, 0] == 100


def test_histogram_matching_undoes_a_brightness_change():
    pre = Preprocessor(PreprocessConfig(image_size=64, steps=[
        {"name": "normalise", "method": "histogram"}]))
    reference = board(1)
    pre.fit([reference])
    darker = (reference.astype(np.float32) * 0.7).astype(np.uint8)
    matched = pre.prepare(darker).image.astype(float)
    assert abs(matched.mean() - reference.mean()) < 2
    assert np.abs(matched - reference).mean() < 3
    assert set(pre.arrays()) == {"0.normalise.cdf"}


def test_median_denoise_removes_salt_noise():
    image = np.full((20, 20, 3), 100, np.uint8)
    image[5, 5] = 255
    out = parse_step({"name": "denoise", "method": "median", "size": 3}).apply(image, {})[0]
    assert (out == 100).all()


@pytest.mark.parametrize("method", ["bilateral", "nlmeans"])
def test_other_denoisers_reduce_noise(method):
    rng = np.random.default_rng(0)
    clean = np.full((48, 48, 3), 120, np.uint8)
    noisy = np.clip(clean + rng.normal(0, 10, clean.shape), 0, 255).astype(np.uint8)
    out = parse_step({"name": "denoise", "method": method, "size": 5}).apply(noisy, {})[0]
    assert out.std() < noisy.std() / 2


def test_roi_box_crops_and_reports_translation():
    image = board(2, 64)
    out, matrix = parse_step({"name": "roi", "box": [10, 5, 40, 25]}).apply(image, {})
    np.testing.assert_array_equal(out, image[5:25, 10:40])
    np.testing.assert_allclose(matrix @ [10, 5, 1], [0, 0, 1])


def test_roi_polygon_masks_outside_and_fraction_units():
    image = np.full((40, 40, 3), 200, np.uint8)
    step = parse_step({"name": "roi", "polygon": [[0, 0], [0.5, 0], [0, 0.5]], "units": "fraction",
                       "crop": False, "fill": 7})
    out = step.apply(image, {})[0]
    assert out.shape == image.shape and out[1, 1, 0] == 200 and out[39, 39, 0] == 7


def test_every_step_round_trips_through_its_dict():
    for name in STEP_TYPES:
        options = {"name": name}
        if name == "roi":
            options["box"] = [0, 0, 4, 4]
        step = parse_step(options)
        assert parse_step(step.to_dict()) == step


def test_pipeline_config_round_trip_keeps_every_step():
    config = PreprocessConfig(image_size=64, steps=[
        {"name": "colour", "mode": "grayscale"}, {"name": "align", "min_quality": 0.7},
        {"name": "roi", "polygon": [[1, 1], [30, 2], [5, 40]]},
        {"name": "normalise", "method": "clahe", "clip_limit": 3.0},
        {"name": "denoise", "method": "bilateral"}, {"name": "tile", "mode": "on", "size": 32}])
    data = config.to_dict()
    assert [s["name"] for s in data["steps"]] == ["colour", "align", "roi", "normalise",
                                                 "denoise", "tile"]
    import json
    assert PreprocessConfig.from_dict(json.loads(json.dumps(data))) == config


@pytest.mark.parametrize("step, words", [
    ({"name": "sharpen"}, ["sharpen", "valid names", "denoise"]),
    ({"name": "denoise", "method": "gaussian"}, ["denoise", "method", "median"]),
    ({"name": "denoise", "method": "median", "size": 4}, ["denoise", "odd"]),
    ({"name": "denoise", "size": 99}, ["denoise", "size", "1..31"]),
    ({"name": "normalise", "low": 60}, ["normalise", "low", "0.0..50.0"]),
    ({"name": "align", "min_quality": 1.5}, ["align", "min_quality", "0.0..1.0"]),
    ({"name": "align", "features": "surf"}, ["align", "features"]),
    ({"name": "tile", "overlap": 0.95}, ["tile", "overlap", "0.0..0.9"]),
    ({"name": "roi"}, ["roi", "box or polygon"]),
    ({"name": "roi", "box": [5, 5, 2, 9]}, ["roi", "empty"]),
    ({"name": "resize", "size": 4}, ["resize", "size", "16..16384"]),
    ({"name": "colour", "shade": "red"}, ["colour", "unknown parameters", "shade"]),
    ("denoise", ["mapping"]),
])
def test_bad_steps_raise_config_error_naming_step_and_range(step, words):
    with pytest.raises(ConfigError) as error:
        PreprocessConfig(steps=[step])
    for word in words:
        assert word in str(error.value)


def test_tile_must_be_last():
    with pytest.raises(ConfigError, match="last"):
        parse_steps([{"name": "tile"}, {"name": "denoise"}])


def test_steps_do_not_mutate_their_input():
    image = board(3, 64)
    copy = image.copy()
    Preprocessor(PreprocessConfig(image_size=32, steps=[
        {"name": "normalise"}, {"name": "denoise", "method": "median"},
        {"name": "roi", "polygon": [[0, 0], [60, 0], [0, 60]], "crop": False}]))(image)
    np.testing.assert_array_equal(image, copy)


def test_to_rgb8_refuses_float():
    from defectscope.errors import ImageReadError
    with pytest.raises(ImageReadError):
        to_rgb8(np.zeros((4, 4), np.float32))
