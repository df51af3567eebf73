"""Synthetic defects: the mask is exactly the changed pixels; the dataset imports as MVTec."""

from __future__ import annotations

import numpy as np
import pytest

from defectscope.cli import main
from defectscope.data.images.importers import import_dataset
from defectscope.data.images.synthesize import KINDS, perlin_noise, synthesize_defect
from defectscope.errors import ConfigError, DataError

from tests.conftest import good_part, save


@pytest.mark.parametrize("kind", KINDS)
def test_mask_covers_exactly_the_changed_pixels(kind):
    rng = np.random.default_rng(3)
    for seed in range(5):
        image = good_part(seed)
        out, mask, used = synthesize_defect(image, rng, [good_part(50 + seed)], kinds=[kind])
        assert used == kind and out.shape == image.shape and out.dtype == np.uint8
        np.testing.assert_array_equal((out != image).any(axis=2), mask)
        assert mask.sum() >= 4
        assert not np.shares_memory(out, image)


def test_perlin_noise_is_smooth_and_seeded():
    a = perlin_noise((32, 48), 4, np.random.default_rng(0))
    b = perlin_noise((32, 48), 4, np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (32, 48) and np.abs(np.diff(a, axis=1)).max() < 0.5


def test_bad_kinds_and_flat_images_are_clear_errors():
    with pytest.raises(ConfigError, match="kinds"):
        synthesize_defect(good_part(0), np.random.default_rng(0), kinds=["crack"])


def test_cli_writes_an_mvtec_dataset_that_imports(tmp_path, capsys):
    for i in range(10):
        save(tmp_path / "good" / f"{i}.png", good_part(i))
    out = tmp_path / "synthetic"
    assert main(["data", "synthesize", "--from", str(tmp_path / "good"), "--out", str(out),
                 "--n", "6", "--seed", "1"]) == 0
    manifest = import_dataset(out, "mvtec").manifest
    defects = manifest.select(good=False)
    assert len(defects) == 6 and all(s.mask_path for s in defects)
    assert len(manifest.select(split="train", good=True)) == 8
    with pytest.raises(DataError, match="not empty"):
        from defectscope.data.images.synthesize import synthesize_dataset
        synthesize_dataset(tmp_path / "good", out, 2)
