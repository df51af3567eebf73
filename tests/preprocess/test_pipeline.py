"""Preprocessing: resize modes, per-image normalisation, config round trip and validation."""

import numpy as np
import pytest

from defectscope.errors import ConfigError, ImageReadError
from defectscope.preprocess import PreprocessConfig, Preprocessor
from defectscope.preprocess.normalise import normalise_image


def grey(values, shape=(32, 48)):
    """A grey RGB image whose rows cycle through ``values``."""
    column = np.resize(np.asarray(values, np.uint8), shape[0])
    return np.repeat(np.repeat(column[:, None, None], shape[1], 1), 3, 2)


def unnormalise(array, config):
    """Network input back to 0..255 pixel values."""
    mean = np.asarray(config.mean).reshape(3, 1, 1)
    std = np.asarray(config.std).reshape(3, 1, 1)
    return (array * std + mean) * 255.0


def test_square_and_keep_aspect_sizes():
    image = np.zeros((100, 300, 3), np.uint8)
    assert Preprocessor(PreprocessConfig(image_size=64)).input_size(image.shape) == (64, 64)
    keep = Preprocessor(PreprocessConfig(image_size=64, resize="keep_aspect", max_side=128))
    assert keep.input_size(image.shape) == (48, 128)  # capped by max_side, multiples of 16
    out = keep(image)
    assert out.shape == (3, 48, 128) and out.dtype == np.float32


def test_none_leaves_pixels_alone():
    config = PreprocessConfig(image_size=32, normalise="none")
    image = grey([10, 20], shape=(32, 32))
    np.testing.assert_allclose(unnormalise(Preprocessor(config)(image), config), image.transpose(2, 0, 1), atol=1e-3)


def test_standardise_gives_mean_128_std_40():
    image = grey([50, 70])  # mean 60, std 10
    out = normalise_image(image, "standardise").astype(float)
    assert out.mean() == pytest.approx(128, abs=0.5)
    assert out.std() == pytest.approx(40, abs=0.5)
    assert set(np.unique(out)) == {88, 168}


def test_standardise_removes_gain_and_offset():
    image = grey([20, 30, 40, 60])
    brighter = (image.astype(int) * 3 + 15).astype(np.uint8)
    np.testing.assert_array_equal(normalise_image(image, "standardise"),
                                  normalise_image(brighter, "standardise"))


def test_flat_image_stays_flat():
    out = normalise_image(grey([77]), "standardise")
    assert (out == 128).all()


def test_percentile_maps_range_to_28_228():
    image = grey(list(range(100, 201)), shape=(101, 8))  # 1st percentile 101, 99th 199
    out = normalise_image(image, "percentile")
    assert out.dtype == np.uint8
    assert out[1, 0, 0] == 28 and out[99, 0, 0] == 228 and out[50, 0, 0] == 128
    assert out[0, 0, 0] == 26  # beyond the percentiles: extrapolated, clipped only at 0..255


def test_clahe_keeps_grey_grey_and_spreads_contrast():
    rng = np.random.default_rng(0)
    image = np.repeat(rng.integers(100, 120, (64, 64), dtype=np.uint8)[..., None], 3, 2)
    out = normalise_image(image, "clahe")
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert out.std() > image.std()


def test_clahe_on_colour_image_keeps_shape():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    assert normalise_image(image, "clahe").shape == image.shape


def test_normalise_is_pure():
    image = grey([20, 90])
    copy = image.copy()
    Preprocessor(PreprocessConfig(image_size=32, normalise="standardise"))(image)
    np.testing.assert_array_equal(image, copy)


def test_round_trip_to_dict_from_dict():
    config = PreprocessConfig(image_size=96, resize="keep_aspect", max_side=200,
                              mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6), normalise="clahe")
    data = config.to_dict()
    assert data["normalise"] == "clahe"
    assert PreprocessConfig.from_dict(data) == config


def test_old_dicts_without_normalise_load_as_none():
    data = PreprocessConfig().to_dict()
    del data["normalise"]
    assert PreprocessConfig.from_dict(data).normalise == "none"


@pytest.mark.parametrize("options", [
    {"normalise": "equalise"},
    {"resize": "crop"},
    {"image_size": 8},
    {"image_size": 128, "max_side": 64},
    {"multiple": 0},
    {"steps": ({"name": "sharpen"},)},
])
def test_bad_options_raise_config_error(options):
    with pytest.raises(ConfigError):
        PreprocessConfig(**options)


def test_unknown_key_in_dict_raises():
    with pytest.raises(ConfigError):
        PreprocessConfig.from_dict({"colour": "red"})


def test_rejects_non_uint8_and_grey_arrays():
    pre = Preprocessor(PreprocessConfig(image_size=32))
    with pytest.raises(ImageReadError):
        pre(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ImageReadError):
        pre(np.zeros((32, 32), np.uint8))


def test_clip_highlights_ignores_saturated_highlights():
    rng = np.random.default_rng(0)
    values = rng.integers(40, 170, size=(64, 64)).astype(np.float32)
    image = np.repeat(values[..., None], 3, axis=2).astype(np.uint8)
    # x1.3 brightening saturates nothing below the 70th percentile but clips the top at 255
    brighter = np.clip(np.rint(image.astype(np.float32) * 1.3), 0, 255).astype(np.uint8)
    a = normalise_image(image, "clip_highlights").astype(int)
    b = normalise_image(brighter, "clip_highlights").astype(int)
    assert a.min() == 28 and a.max() == 228  # 1st..70th percentiles stretched to 28..228
    assert np.abs(a - b).max() <= 2  # only rounding differs
    top = values >= np.percentile(values, 70)
    assert (a[top] == 228).all()  # highlights carry no texture


def test_normalise_step_clip_option_round_trips_and_validates():
    from defectscope.preprocess.steps import parse_step

    step = parse_step({"name": "normalise", "method": "percentile", "high": 80, "clip": True})
    assert parse_step(step.to_dict()) == step
    out, _ = step.apply(grey(list(range(100, 201)), shape=(101, 8)), None)
    assert out.max() == 228
    with pytest.raises(ConfigError, match="clip"):
        parse_step({"name": "normalise", "clip": "yes"})
