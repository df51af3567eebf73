"""Rebuild the bundled demo sample from the magnetic-tile dataset (run from the repo root).

    .venv/bin/python scripts/make_sample.py ../shared/data/magnetic-tile

Picks every k-th image of each class by sorted file name (deterministic) and writes them in the
MVTec AD layout under src/defectscope/sample_data/magnetic_tile/. The images are the authors'
files, copied byte for byte; masks are renamed to <stem>_mask.png.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

N_TRAIN_GOOD, N_TEST_GOOD, N_PER_DEFECT = 48, 12, 4
DEFECTS = ("Blowhole", "Break", "Crack", "Fray", "Uneven")


def spread(items: list, n: int, offset: int = 0) -> list:
    step = len(items) / n
    return [items[int(i * step + offset) % len(items)] for i in range(n)]


def main(source: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    free = sorted((source / "MT_Free" / "Imgs").glob("*.jpg"))
    train = spread(free, N_TRAIN_GOOD)
    rest = [p for p in free if p not in train]
    test = spread(rest, N_TEST_GOOD, offset=3)
    for folder, files in (("train/good", train), ("test/good", test)):
        (out / folder).mkdir(parents=True)
        for file in files:
            shutil.copyfile(file, out / folder / file.name)
    for defect in DEFECTS:
        images = [p for p in sorted((source / f"MT_{defect}" / "Imgs").glob("*.jpg"))
                  if np.asarray(Image.open(p.with_suffix(".png"))).any()]
        name = defect.lower()
        (out / "test" / name).mkdir(parents=True)
        (out / "ground_truth" / name).mkdir(parents=True)
        for file in spread(images, N_PER_DEFECT):
            shutil.copyfile(file, out / "test" / name / file.name)
            shutil.copyfile(file.with_suffix(".png"), out / "ground_truth" / name / f"{file.stem}_mask.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path("src/defectscope/sample_data/magnetic_tile"))
