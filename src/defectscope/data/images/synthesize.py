"""Synthetic defects made from good images, each with an exact mask.

Four kinds: ``patch`` (a rectangle cut from another good image, turned, pasted), ``perlin`` (a
DRAEM-style blend of a foreign texture inside a Perlin-noise blob), ``scratch`` (a thin drawn
polyline) and ``blob`` (a filled ellipse). The mask is, by construction, exactly the set of
pixels whose value changed. Uses: train the segmenter when real defects are few, or calibrate an
anomaly model's threshold when no real defect exists.

>>> image, mask, kind = synthesize_defect(good, np.random.default_rng(0), sources=[other])
>>> bool(((image != good).any(axis=2) == mask).all())
True
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from defectscope.data.hashing import sha256_file
from defectscope.data.image_io import is_image_file, load_image
from defectscope.data.images.manifest import Manifest
from defectscope.errors import ConfigError, DataError
from defectscope.values import Sample

KINDS = ("patch", "perlin", "scratch", "blob")


def perlin_noise(shape: tuple[int, int], cells: int, rng: np.random.Generator) -> np.ndarray:
    """2-D Perlin gradient noise (values about -1..1) with ``cells`` lattice cells per side."""
    h, w = shape
    angles = rng.uniform(0, 2 * np.pi, (cells + 1, cells + 1))
    gradients = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    y = np.linspace(0, cells, h, endpoint=False)[:, None] * np.ones((1, w))
    x = np.linspace(0, cells, w, endpoint=False)[None, :] * np.ones((h, 1))
    y0, x0 = y.astype(int), x.astype(int)
    fy, fx = y - y0, x - x0

    def dot(dy: int, dx: int) -> np.ndarray:
        g = gradients[y0 + dy, x0 + dx]
        return g[..., 0] * (fx - dx) + g[..., 1] * (fy - dy)

    def fade(t: np.ndarray) -> np.ndarray:
        return t * t * t * (t * (t * 6 - 15) + 10)

    u, v = fade(fx), fade(fy)
    top = dot(0, 0) * (1 - u) + dot(0, 1) * u
    bottom = dot(1, 0) * (1 - u) + dot(1, 1) * u
    return (top * (1 - v) + bottom * v) * np.sqrt(2)


def _colour(image: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A flat colour that stands out from the region's mean (darker or brighter)."""
    mean = image[region].mean(axis=0) if region.any() else image.reshape(-1, 3).mean(axis=0)
    shift = rng.uniform(50, 110) * (1 if mean.mean() < 128 else -1)
    return np.clip(mean + shift, 0, 255)


def _apply(image: np.ndarray, region: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = image.copy()
    out[region] = np.clip(np.rint(values), 0, 255).astype(np.uint8)[region] \
        if values.ndim == 3 else np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return out


def paste_patch(image, source, rng):
    h, w = image.shape[:2]
    ph, pw = (max(4, int(rng.uniform(0.08, 0.25) * s)) for s in (h, w))
    src = np.rot90(source, int(rng.integers(1, 4)))
    src = cv2.resize(np.ascontiguousarray(src), (w, h))
    sy, sx = rng.integers(0, h - ph + 1), rng.integers(0, w - pw + 1)
    ty, tx = rng.integers(0, h - ph + 1), rng.integers(0, w - pw + 1)
    region = np.zeros((h, w), dtype=bool)
    region[ty:ty + ph, tx:tx + pw] = True
    values = image.astype(np.float64)
    values[ty:ty + ph, tx:tx + pw] = src[sy:sy + ph, sx:sx + pw]
    return _apply(image, region, values), region


def perlin_blend(image, source, rng):
    h, w = image.shape[:2]
    noise = perlin_noise((h, w), int(rng.integers(2, 6)), rng)
    region = noise > rng.uniform(0.35, 0.6)
    texture = cv2.resize(np.ascontiguousarray(np.rot90(source, int(rng.integers(1, 4)))), (w, h))
    texture = 255 - texture if rng.random() < 0.5 else texture
    beta = rng.uniform(0.3, 0.9)
    values = (1 - beta) * image.astype(np.float64) + beta * texture
    return _apply(image, region, values), region


def draw_scratch(image, rng):
    h, w = image.shape[:2]
    points = [np.array([rng.uniform(0, w), rng.uniform(0, h)])]
    direction = rng.uniform(0, 2 * np.pi)
    for _ in range(int(rng.integers(2, 5))):
        direction += rng.normal(0, 0.3)
        step = rng.uniform(0.1, 0.3) * min(h, w)
        points.append(points[-1] + step * np.array([np.cos(direction), np.sin(direction)]))
    canvas = np.zeros((h, w), dtype=np.uint8)
    cv2.polylines(canvas, [np.round(points).astype(np.int32)], False, 1,
                  thickness=int(rng.integers(1, 4)))
    region = canvas.astype(bool)
    return _apply(image, region, _colour(image, region, rng)), region


def draw_blob(image, rng):
    h, w = image.shape[:2]
    canvas = np.zeros((h, w), dtype=np.uint8)
    centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
    axes = tuple(max(2, int(rng.uniform(0.02, 0.1) * min(h, w))) for _ in range(2))
    cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, thickness=-1)
    region = canvas.astype(bool)
    return _apply(image, region, _colour(image, region, rng)), region


def synthesize_defect(image: np.ndarray, rng: np.random.Generator,
                      sources: Sequence[np.ndarray] = (), kinds: Sequence[str] = KINDS,
                      ) -> tuple[np.ndarray, np.ndarray, str]:
    """A defective copy of ``image`` (RGB uint8), its exact mask and the kind used.

    ``sources`` are other good images for the patch and Perlin kinds (the image itself is used
    when none is given). The mask is exactly the pixels whose value changed.
    """
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise ConfigError(f"unknown defect kinds {unknown}; choose from {KINDS}")
    for _ in range(20):
        kind = str(rng.choice(list(kinds)))
        source = sources[int(rng.integers(len(sources)))] if len(sources) else image
        if kind == "patch":
            out, _ = paste_patch(image, source, rng)
        elif kind == "perlin":
            out, _ = perlin_blend(image, source, rng)
        elif kind == "scratch":
            out, _ = draw_scratch(image, rng)
        else:
            out, _ = draw_blob(image, rng)
        mask = (out != image).any(axis=2)
        if mask.sum() >= 4:
            return out, mask, kind
    raise DataError("could not change the image (is it flat?); try other kinds of defects")


def _write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = array if array.ndim == 2 else cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), image):
        raise DataError(f"{path}: could not write")
    return path


def synthesize_dataset(from_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                       n: int, *, seed: int = 0, kinds: Sequence[str] = KINDS,
                       test_fraction: float = 0.2) -> dict[str, int]:
    """Write an MVTec-layout dataset: train/good, test/good, test/<kind>, ground_truth/<kind>.

    ``test_fraction`` of the good images go to test/good; the ``n`` defects are made from those
    held-out images only, so no training image reappears (with a defect) in test.
    """
    from_dir, out = Path(from_dir), Path(out_dir)
    if n < 1:
        raise ConfigError("n must be >= 1")
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out}: already exists and is not empty; choose another --out")
    files = sorted(p for p in from_dir.rglob("*") if p.is_file() and is_image_file(p)
                   and "mask" not in p.stem.lower())
    if len(files) < 2:
        raise DataError(f"{from_dir}: need at least 2 good images, found {len(files)}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(files))
    n_test = max(1, int(round(test_fraction * len(files))))
    held, train = [files[i] for i in order[:n_test]], [files[i] for i in order[n_test:]]
    for i, path in enumerate(train):
        _write(out / "train" / "good" / f"{i:04d}.png", load_image(path))
    held_images = [load_image(p) for p in held]
    for i, image in enumerate(held_images):
        _write(out / "test" / "good" / f"{i:04d}.png", image)
    counts = {"train_good": len(train), "test_good": len(held)}
    for i in range(n):
        base = held_images[i % len(held_images)]
        image, mask, kind = synthesize_defect(base, rng, held_images, kinds)
        _write(out / "test" / kind / f"{i:04d}.png", image)
        _write(out / "ground_truth" / kind / f"{i:04d}_mask.png", mask.astype(np.uint8) * 255)
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def add_synthetic_to_train(manifest: Manifest, n: int, out_dir: str | os.PathLike[str], *,
                           seed: int = 0, kinds: Sequence[str] = KINDS) -> Manifest:
    """``manifest`` plus ``n`` synthetic defects (label ``synthetic_<kind>``, split train) made
    from its good training images and written under ``out_dir``."""
    goods = manifest.select(split="train", good=True)
    if not goods:
        raise DataError("no good training images to make synthetic defects from")
    rng = np.random.default_rng(seed)
    out = Path(out_dir).resolve()
    added = []
    for i in range(n):
        base = load_image(manifest.path_of(goods[int(rng.integers(len(goods)))]))
        other = load_image(manifest.path_of(goods[int(rng.integers(len(goods)))]))
        image, mask, kind = synthesize_defect(base, rng, [other], kinds)
        path = _write(out / f"{i:05d}.png", image)
        mask_path = _write(out / f"{i:05d}_mask.png", mask.astype(np.uint8) * 255)
        added.append(Sample(path=str(path), label=f"synthetic_{kind}", sha256=sha256_file(path),
                            mask_path=str(mask_path), mask_sha256=sha256_file(mask_path),
                            split="train"))
    return dataclasses.replace(manifest, samples=manifest.samples + tuple(added),
                               parent_version=manifest.version_id)
