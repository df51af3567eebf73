"""Strict decoding on real data: every image file under ../shared/data must still be read.

The strict checks (libjpeg warnings, PNG CRCs and data length, one frame, known formats) refuse
broken files; this measures that they refuse no real one, and what they cost. Prints the files
read, those refused (with the reason) and the seconds, per dataset and in all.

    python benchmarks/strict_decoding.py [--data DIR]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from defectscope.data.image_io import is_image_file, load_image
from defectscope.errors import ImageReadError

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"no data folder at {args.data}; nothing to measure")
        return 0
    total, refused_all, started = 0, 0, time.perf_counter()
    for dataset in sorted(p for p in args.data.iterdir() if p.is_dir()):
        files = sorted(p for p in dataset.rglob("*") if p.is_file() and is_image_file(p))
        if not files:
            continue
        start = time.perf_counter()
        refused: Counter[str] = Counter()
        for path in files:
            try:
                load_image(path)
            except ImageReadError as error:
                refused[error.problem.split(" (")[0]] += 1
                print(f"  refused {path}: {error.problem}")
        seconds = time.perf_counter() - start
        total += len(files)
        refused_all += sum(refused.values())
        print(f"{dataset.name:<20} {len(files):>6} files  {sum(refused.values()):>4} refused  "
              f"{seconds:7.1f} s" + (f"  ({dict(refused)})" if refused else ""))
    print(f"{'all':<20} {total:>6} files  {refused_all:>4} refused  "
          f"{time.perf_counter() - started:7.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
