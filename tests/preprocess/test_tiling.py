"""Tiling: every pixel covered, known maps stitched back exactly, clear errors."""

import numpy as np
import pytest

from defectscope.errors import ConfigError, DataError
from defectscope.preprocess import PreprocessConfig, Preprocessor
from defectscope.preprocess.tiling import Tile, plan_tiles, stitch, tile_boxes


@pytest.mark.parametrize("shape, size, overlap", [
    ((300, 500), 256, 0.25), ((256, 256), 256, 0.5), ((1000, 777), 128, 0.0), ((97, 300), 97, 0.1)])
def test_tiles_cover_every_pixel_and_stay_inside(shape, size, overlap):
    boxes = tile_boxes(shape, size, overlap)
    covered = np.zeros(shape, int)
    for y0, x0, y1, x1 in boxes:
        assert 0 <= y0 and 0 <= x0 and y1 <= shape[0] and x1 <= shape[1]
        assert (y1 - y0, x1 - x0) == (size, size)
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1


@pytest.mark.parametrize("merge", ["max", "mean"])
def test_known_map_is_stitched_back_exactly(merge):
    rng = np.random.default_rng(0)
    full = rng.random((300, 410)).astype(np.float32)
    boxes = tile_boxes(full.shape, 128, 0.3)
    maps = [full[y0:y1, x0:x1].copy() for y0, x0, y1, x1 in boxes]
    np.testing.assert_allclose(stitch(maps, boxes, full.shape, merge), full, rtol=1e-6)


def test_max_merge_keeps_the_higher_overlap_value():
    boxes = [(0, 0, 4, 4), (0, 2, 4, 6)]
    maps = [np.zeros((4, 4), np.float32), np.ones((4, 4), np.float32)]
    out = stitch(maps, boxes, (4, 6), "max")
    assert out[:, :2].max() == 0 and out[:, 2:].min() == 1
    assert stitch(maps, boxes, (4, 6), "mean")[0, 2] == 0.5


def test_image_smaller_than_a_tile_is_a_clear_error():
    with pytest.raises(DataError, match="smaller than the 256 px tile"):
        plan_tiles((100, 400), Tile(mode="on", size=256), 256)


def test_auto_tiles_only_much_larger_images():
    assert plan_tiles((1024, 1200), Tile(), 256) is None        # 1024 < 16 * 256
    assert plan_tiles((900, 900), Tile(), 128) is None          # an ordinary camera image
    assert len(plan_tiles((2048, 2048), Tile(mode="on", max_tiles=200), 256)) == 121  # 11 x 11
    assert len(plan_tiles((4096, 4096), Tile(), 256)) <= 16
    assert plan_tiles((4096, 4096), Tile(), 256, input_side=512) is None
    assert plan_tiles((4096, 4096), Tile(mode="off"), 256) is None


def test_preprocessor_uses_the_tile_step():
    pre = Preprocessor(PreprocessConfig(image_size=32, steps=[{"name": "tile", "mode": "on",
                                                               "size": 48, "overlap": 0}]))
    assert pre.tiles((96, 96, 3)) == [(0, 0, 48, 48), (0, 48, 48, 96), (48, 0, 96, 48),
                                      (48, 48, 96, 96)]
    assert Preprocessor(PreprocessConfig(image_size=32)).tiles((40, 40, 3)) is None


def test_tile_cap_bounds_the_work_and_still_covers_every_pixel():
    boxes = plan_tiles((6000, 6000), Tile(mode="on"), 128)
    assert 1 < len(boxes) <= 16
    covered = np.zeros((6000, 6000), bool)
    for y0, x0, y1, x1 in boxes:
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    assert len(plan_tiles((6000, 6000), Tile(mode="on", max_tiles=4), 128)) <= 4


def test_image_too_elongated_for_the_cap_is_scored_whole():
    assert plan_tiles((128, 20000), Tile(mode="on", max_tiles=8), 128) is None


def test_bad_tile_cap_is_refused():
    with pytest.raises(ConfigError):
        Tile(max_tiles=0).validate()
