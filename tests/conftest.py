"""Shared fixtures: tiny synthetic 'parts' (a striped texture) and defects with exact masks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SIZE = (72, 88)  # height, width: not square on purpose


def shared_data_dir() -> Path:
    """``../shared/data`` beside the repository, or ``$DEFECTSCOPE_SHARED_DATA``."""
    env = os.environ.get("DEFECTSCOPE_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def good_part(seed: int, size=SIZE) -> np.ndarray:
    """A defect-free part: vertical stripes, a soft gradient and a little sensor noise."""
    rng = np.random.default_rng(seed)
    h, w = size
    x = np.arange(w)[None, :]
    y = np.arange(h)[:, None]
    base = 110 + 40 * np.sin(x / 3.0 + rng.uniform(0, 0.3)) + 0.2 * y
    grey = base + rng.normal(0, 3, size)
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def defective_part(seed: int, size=SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A part with a dark blob; returns the image and its exact boolean mask."""
    image = good_part(seed, size).copy()
    rng = np.random.default_rng(seed + 1000)
    cy, cx = rng.integers(15, size[0] - 15), rng.integers(15, size[1] - 15)
    yy, xx = np.ogrid[: size[0], : size[1]]
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= 36
    image[mask] = 20
    return image, mask


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture(scope="session")
def good_images() -> list[np.ndarray]:
    return [good_part(i) for i in range(10)]


@pytest.fixture(scope="session")
def defect_images() -> list[tuple[np.ndarray, np.ndarray]]:
    return [defective_part(100 + i) for i in range(4)]


def make_mvtec(root: Path, n_train: int = 12, n_test_good: int = 4, n_defect: int = 4) -> Path:
    for i in range(n_train):
        save(root / "train" / "good" / f"{i:03d}.png", good_part(i))
    for i in range(n_test_good):
        save(root / "test" / "good" / f"{i:03d}.png", good_part(500 + i))
    for i in range(n_defect):
        image, mask = defective_part(700 + i)
        save(root / "test" / "blob" / f"{i:03d}.png", image)
        save(root / "ground_truth" / "blob" / f"{i:03d}_mask.png", mask.astype(np.uint8) * 255)
    return root


@pytest.fixture
def tiny_mvtec(tmp_path: Path) -> Path:
    """A small MVTec-layout dataset of synthetic parts (PNG images, PNG masks)."""
    return make_mvtec(tmp_path / "parts")


FAST_OPTIONS = {"image_size": 64, "max_side": 96, "batch_size": 4}
