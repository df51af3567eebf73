"""How PatchCore's fit scales: coreset selection time and peak memory against the training set.

The issue's anchors, measured with Anomalib 2.7 and the same Lite0 weights: 304 s to fit 231
images at a 1% coreset (about 45 min at its default 10%), 4 GB peak for 231 images and ~18 GB
for 666. This script fits our PatchCore at 256 px (square, so every image gives 32 x 32 patches)
with the default 10% coreset on the first N good magnetic-tile images, each N in a fresh
process, and prints the seconds spent selecting the coreset, the whole fit, and peak memory.

    .venv/bin/python benchmarks/patchcore_fit_scaling.py [--sizes 231 666] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_DATA = Path(os.environ.get("DEFECTSCOPE_SHARED_DATA", Path(__file__).resolve().parents[2]
                                   / "shared" / "data")) / "magnetic-tile"


def worker(data: Path, n: int) -> dict:
    from defectscope.data import load_image
    from defectscope.models import create_model
    from defectscope.models import coreset

    paths = sorted((data / "MT_Free" / "Imgs").glob("*.jpg"))[:n]
    spent = {"coreset_s": 0.0}
    original = coreset.greedy_coreset

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent["coreset_s"] += time.perf_counter() - started

    coreset.greedy_coreset = timed  # the model looks the function up at call time
    model = create_model("patchcore", image_size=256, resize="square")
    started = time.perf_counter()
    model.fit(load_image(p) for p in paths)
    fit_s = time.perf_counter() - started
    return {"images": len(paths), "patches": int(model.n_patches_seen_),
            "bank": int(model.memory_bank_.shape[0]),
            "coreset_ratio": model.config.coreset_ratio,
            "coreset_s": round(spent["coreset_s"], 2), "fit_s": round(fit_s, 2),
            "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[231, 666])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (args.data / "MT_Free" / "Imgs").is_dir():
        print(f"magnetic-tile data not found at {args.data} (use --data)", file=sys.stderr)
        return 2
    if args.worker:
        print(json.dumps(worker(args.data, args.worker)))
        return 0
    print(f"{'images':>7} {'patches':>9} {'bank':>7} {'coreset s':>10} {'fit s':>7} {'peak MB':>8}")
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--data", str(args.data), "--worker",
                              str(n)], capture_output=True, text=True, check=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        print(f"{row['images']:>7} {row['patches']:>9} {row['bank']:>7} {row['coreset_s']:>10} "
              f"{row['fit_s']:>7} {row['peak_mb']:>8}   {json.dumps(row)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
