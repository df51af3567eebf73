"""Batch re-inspection on Ray: 1 and 2 workers (1 thread each) against a plain single-process
loop over the same images with the same runtime.

    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 PYTHONPATH=src:. \
        python benchmarks/batch_scaling.py [--n 1000] [--model EXPORTED_MODEL_DIR] [--side 128]
        [--chunk-size 16]

Images: Magnetic Tile's images from ../shared/data/magnetic-tile (cycled, resized to ``--side``
px on the long side, 0 for their own size, and each made unique by one pixel, so every image is
its own part), or synthetic striped parts where the data set is absent. Without --model: where
Magnetic Tile is present, PaDiM at its defaults is fitted on its first 100 good images and
exported (the realistic case: the work per image of a real model on real images); else a tiny
PatchCore on synthetic parts (torch is needed for that step only; the workers never import it).
``--side`` defaults to the images' own size where Magnetic Tile is present, else 128.
Checks: every image once, verdict equal to the plain loop's, score within the export's parity
tolerance x threshold. Prints throughput of each and Ray's overhead against the plain loop.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def make_images(n: int, out: Path, side: int = 128) -> tuple[list[str], str]:
    data = ROOT.parent / "shared" / "data" / "magnetic-tile"
    sources = sorted(data.glob("MT_*/Imgs/*.jpg")) if data.is_dir() else []
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        if sources:
            image = Image.open(sources[i % len(sources)]).convert("RGB")
            if side:
                image.thumbnail((side, side))
            array = np.array(image)
        else:
            rng = np.random.default_rng(i)
            x = np.arange(88)[None, :]
            grey = 110 + 40 * np.sin(x / 3.0) + rng.normal(0, 3, (72, 88))
            array = np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
        array = array.copy()
        array.reshape(-1)[i % array.size] ^= 1 + (i // array.size) % 255  # unique content
        path = out / f"{i:05d}.png"
        Image.fromarray(array).save(path)
        paths.append(str(path))
    return paths, ("magnetic-tile" if sources else "synthetic")


def realistic_model(out: Path) -> Path | None:
    """PaDiM (project defaults) on the first 100 Magnetic Tile goods, threshold at the highest
    score of 10 more, exported; None without the data set."""
    goods = sorted((ROOT.parent / "shared" / "data" / "magnetic-tile" / "MT_Free" / "Imgs")
                   .glob("*.jpg"))
    if len(goods) < 110:
        return None
    from defectscope.bundle import Reference, save_bundle
    from defectscope.data.image_io import load_image
    from defectscope.export import export_onnx
    from defectscope.models import create_model

    model = create_model("padim").fit(load_image(p) for p in goods[:100])
    held = [(p, model.anomaly(load_image(p))[0]) for p in goods[100:110]]
    model.set_threshold(max(score for _, score in held), {"rule": "benchmark: max of 10 goods"})
    save_bundle(model, out / "padim", references=[Reference(load_image(p), score, p.name)
                                                  for p, score in held[:4]])
    export_onnx(out / "padim")
    return out / "padim"


def tiny_model(out: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from defectscope.data.images.importers import import_mvtec
    from defectscope.export import export_onnx
    from defectscope.training.anomaly import train_anomaly
    from tests.conftest import FAST_OPTIONS, make_mvtec

    manifest = import_mvtec(make_mvtec(out / "parts")).manifest
    train_anomaly(manifest, "patchcore", out / "patchcore", options=FAST_OPTIONS, progress=False)
    export_onnx(out / "patchcore")
    return out / "patchcore"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--model", help="an exported bundle (default: train a tiny PatchCore)")
    parser.add_argument("--chunk-size", type=int, default=16, help="images per Ray task")
    parser.add_argument("--side", type=int, default=None,
                        help="long side of the images in px (0: Magnetic Tile's own sizes; "
                        "default: 0 with the realistic model, 128 with the tiny one)")
    args = parser.parse_args()
    from defectscope.distributed import BatchConfig, ClusterConfig, run_batch
    from defectscope.distributed.worker import load_runtime, score_paths

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model) if args.model else (
            realistic_model(Path(tmp) / "model") or tiny_model(Path(tmp) / "model"))
        if args.side is None:
            args.side = 0 if model_dir.name == "padim" and not args.model else 128
        paths, source = make_images(args.n, Path(tmp) / "images", args.side)
        model = load_runtime(model_dir, threads=1)
        model.predict(np.array(Image.open(paths[0]).convert("RGB")))  # warm-up
        start = time.perf_counter()
        plain = {row["path"]: row for row in score_paths([("m", model)], paths)}
        plain_s = time.perf_counter() - start
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"Python {platform.python_version()}; images: {args.n} ({source}, long side "
              f"{args.side or 'native'}); model "
              f"{model_dir.name} ({model.name}); NOTE: the CPU is shared with other jobs")
        print(f"plain loop (1 process, 1 thread): {plain_s:.2f} s, {args.n / plain_s:.1f} img/s")
        limit = model.tolerance * model.threshold
        results = {}
        for workers in (1, 2):
            summary = run_batch(BatchConfig(models=(str(model_dir),), inputs=(str(Path(tmp) /
                                "images"),), cluster=ClusterConfig(workers=workers, threads=1),
                                chunk_size=args.chunk_size, progress=False))
            rows = {row["path"]: row for row in summary.rows}
            assert sorted(rows) == sorted(plain), "not every image exactly once"
            mismatched = sum(rows[p]["verdict"] != plain[p]["verdict"]
                             or abs(rows[p]["score"] - plain[p]["score"]) > limit for p in plain)
            results[workers] = summary.steady_throughput
            print(f"ray, {workers} worker(s): {summary.seconds:.2f} s, {summary.throughput:.1f} "
                  f"img/s (worker start, bundle transfer and verification included); "
                  f"wall time x{summary.seconds / plain_s:.2f} the plain loop's; after the first "
                  f"chunk {summary.steady_throughput:.1f} img/s; {mismatched} rows differ from the plain loop")
        print(f"scaling 2 vs 1 worker after the first chunk: x{results[2] / results[1]:.2f} "
              f"(target >= 1.7)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
