"""Tiny synthetic datasets for the data tests, written to ``tmp_path`` with numpy and Pillow."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_image(
    path: Path, array: np.ndarray | None = None, size: tuple[int, int] = (12, 16)
) -> Path:
    """Write ``array`` (or a small random RGB image of ``size`` = (h, w)) to ``path``."""
    if array is None:
        rng = np.random.default_rng(zlib.crc32(str(path).encode()))
        array = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def write_mask(path: Path, size: tuple[int, int] = (12, 16)) -> Path:
    """A 0/255 mask with a small defect square."""
    mask = np.zeros(size, dtype=np.uint8)
    mask[2:5, 3:7] = 255
    return write_image(path, mask)


@pytest.fixture
def image_writer() -> Callable[..., Path]:
    return write_image


@pytest.fixture
def mask_writer() -> Callable[..., Path]:
    return write_mask


@pytest.fixture
def mvtec_root(tmp_path: Path) -> Path:
    """An MVTec AD-like category: 4 train good, 2 test good, 2 scratch + masks, 1 dent (JPEG)."""
    root = tmp_path / "bottle"
    for i in range(4):
        write_image(root / "train" / "good" / f"{i:03d}.png")
    for i in range(2):
        write_image(root / "test" / "good" / f"{i:03d}.png")
        write_image(root / "test" / "scratch" / f"{i:03d}.png")
        write_mask(root / "ground_truth" / "scratch" / f"{i:03d}_mask.png")
    write_image(root / "test" / "dent" / "000.jpg")
    write_mask(root / "ground_truth" / "dent" / "000.png")
    (root / "license.txt").write_text("CC BY-NC-SA 4.0")
    return root


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    """A class-per-folder dataset like Magnetic Tile: ``MT_<Class>/Imgs/x.jpg`` + ``x.png`` mask."""
    root = tmp_path / "tiles"
    for cls, n in (("MT_Free", 4), ("MT_Crack", 3), ("MT_Blowhole", 2)):
        for i in range(n):
            write_image(root / cls / "Imgs" / f"part{i}_{cls}_{i}.jpg")
            write_mask(root / cls / "Imgs" / f"part{i}_{cls}_{i}.png")
    (root / "README.md").write_text("tiles")
    return root
