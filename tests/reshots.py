"""Synthetic part surfaces and re-shots of them (other lighting, a small shift, sensor noise),
for the near-duplicate and leak-check tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def surface(seed: int, size=(180, 220)) -> np.ndarray:
    """A grey part surface with its own pits and scratches (what makes a spot recognisable)."""
    rng = np.random.default_rng(seed)
    h, w = size
    noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.5)
    image = 120 + 25 * noise / noise.std()
    image += 6 * np.sin(np.arange(w) / 1.7)[None, :]  # brushing lines every part shares
    for _ in range(12):
        centre = (int(rng.integers(10, w - 10)), int(rng.integers(10, h - 10)))
        cv2.circle(image, centre, int(rng.integers(2, 5)), float(rng.integers(30, 70)), -1)
    for _ in range(4):
        a = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        b = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(image, a, b, 200.0, 1)
    return np.clip(image, 0, 255).astype(np.uint8)


def reshoot(grey: np.ndarray, seed: int) -> np.ndarray:
    """The same spot under other lighting, shifted by a few pixels, with sensor noise, as RGB."""
    rng = np.random.default_rng(seed)
    h, w = grey.shape
    shift = np.float32([[1, 0, rng.uniform(-4, 4)], [0, 1, rng.uniform(-4, 4)]])
    moved = cv2.warpAffine(grey.astype(np.float32), shift, (w, h), borderMode=cv2.BORDER_REFLECT)
    shading = np.linspace(rng.uniform(0.6, 0.9), rng.uniform(1.0, 1.3), w)[None, :]
    image = moved * shading + rng.uniform(-20, 20) + rng.normal(0, 2, (h, w))
    return cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)


def spots(n_spots: int, shots: int, first_seed: int = 0) -> list[np.ndarray]:
    images = []
    for spot in range(n_spots):
        base = surface(first_seed + spot)
        images += [reshoot(base, 1000 * spot + k) for k in range(shots)]
    return images


def write_reshot_dataset(root: Path) -> Path:
    """good/ holds 6 spots x 3 shots; scratch/ 3 spots x 3 shots, one re-shot also in good/."""
    for label, first_seed in (("good", 0), ("scratch", 100)):
        folder = root / label
        folder.mkdir(parents=True)
        n_spots = 6 if label == "good" else 3
        for spot, image in enumerate(spots(n_spots, 3, first_seed)):
            cv2.imwrite(str(folder / f"{label}_{spot:02d}.png"), image)
    conflict = reshoot(surface(100), 77)  # scratch spot 0, filed as good by mistake
    cv2.imwrite(str(root / "good" / "good_zz.png"), conflict)
    return root
