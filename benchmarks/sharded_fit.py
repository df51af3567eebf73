"""PatchCore and PaDiM fitted in shards on Ray against the one-machine fit, on Magnetic Tile.

    OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src python benchmarks/sharded_fit.py \
        [--shards 4] [--workers 2] [--models patchcore padim] [--subsample 1] [--json OUT]

The split is the anomaly suite's (``benchmarks/anomaly_suite.py``): the first 70% of the good
images sorted by name train, the rest and every defect test. Both fits use each model's default
options as given (no self-tuning: ``--tune off`` style) and the same training images; the
sharded fit is ``defectscope.distributed.training.fit_sharded`` on a local Ray instance of
``--workers`` CPUs (one thread per shard task), the one-machine fit ``model.fit`` in this
process with ``torch``'s threads as the environment sets them (printed). Printed per model:
image AUROC on the test split of each fit and their difference (target for PatchCore: within
0.01), fit seconds of each (the sharded one includes starting Ray and the merge on the driver, both also printed), and for PatchCore the bank sizes; for PaDiM the largest difference
between the two fits' means and inverse covariances. Single runs on a shared machine: seconds
move with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def _scores(model, manifest, samples) -> np.ndarray:
    from defectscope.data.stream import load_verified, stream_images

    load = lambda s: load_verified(manifest.path_of(s), s.sha256)  # noqa: E731
    return np.array([model.anomaly(image)[0] for _, image in stream_images(samples, load)])


def run(model_name: str, manifest, shards: int, workers: int) -> dict:
    import torch

    from defectscope.data.stream import load_verified, stream_images
    from defectscope.distributed.cluster import ClusterConfig
    from defectscope.distributed.training import ShardedFitConfig, fit_sharded
    from defectscope.evaluation.metrics import auroc
    from defectscope.models.registry import create_model

    train = manifest.select(split="train", good=True)
    test = manifest.select(split="test")
    labels = np.array([not s.is_good for s in test])

    one = create_model(model_name)
    started = time.perf_counter()
    load = lambda s: load_verified(manifest.path_of(s), s.sha256)  # noqa: E731
    one.fit(image for _, image in stream_images(train, load))
    one_seconds = time.perf_counter() - started

    sharded = create_model(model_name)
    config = ShardedFitConfig(shards=shards, cluster=ClusterConfig(
        workers=workers, threads=1, object_store_bytes=1024 * 1024 * 1024))
    summary = fit_sharded(sharded, [(str(manifest.path_of(s)), s.sha256) for s in train], config,
                          log=lambda message: print(f"#   {message}", flush=True))

    one_auroc = auroc(_scores(one, manifest, test), labels)
    shard_auroc = auroc(_scores(sharded, manifest, test), labels)
    row = {"model": model_name, "n_train": len(train), "n_test": len(test),
           "shards": summary.shards, "shard_sizes": list(summary.shard_sizes),
           "workers": workers, "torch_threads_one_machine": torch.get_num_threads(),
           "image_auroc_one_machine": round(one_auroc, 4),
           "image_auroc_sharded": round(shard_auroc, 4),
           "auroc_difference": round(shard_auroc - one_auroc, 4),
           "fit_seconds_one_machine": round(one_seconds, 1),
           "fit_seconds_sharded": round(summary.seconds, 1),
           "ray_start_seconds": round(summary.startup_seconds, 1),
           "merge_seconds": round(summary.merge_seconds, 1)}
    if model_name == "patchcore":
        row.update(bank_one_machine=len(one.memory_bank_), bank_sharded=len(sharded.memory_bank_),
                   oversample=config.oversample)
    if model_name == "padim":
        row.update(
            max_mean_difference=float(np.abs(one.mean_.numpy() - sharded.mean_.numpy()).max()),
            max_inverse_covariance_relative_difference=float(
                np.abs(one.inverse_covariance_.numpy() - sharded.inverse_covariance_.numpy()).max()
                / np.abs(one.inverse_covariance_.numpy()).max()))
    return row


def main(argv=None) -> int:
    from anomaly_suite import load_manifest, shared_data

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["patchcore", "padim"])
    parser.add_argument("--subsample", type=int, default=1, help="every N-th image (quick runs)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    root = shared_data() / "magnetic-tile"
    if not root.exists():
        print(f"# {root} absent: nothing to measure")
        return 1
    print(f"# {' '.join([Path(sys.argv[0]).name] + (argv or sys.argv[1:]))}")
    print(f"# machine: {platform.platform()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    manifest = load_manifest("magnetic-tile", root, args.subsample)
    rows = []
    for model_name in args.models:
        print(f"# {model_name}: one-machine fit, then {args.shards} shards on "
              f"{args.workers} local Ray workers", flush=True)
        row = run(model_name, manifest, args.shards, args.workers)
        rows.append(row)
        print("# " + json.dumps(row), flush=True)
    print("| model | train | shards | AUROC one machine | AUROC sharded | difference | "
          "fit s one machine | fit s sharded (Ray start, merge) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['n_train']} | {r['shards']} | "
              f"{r['image_auroc_one_machine']:.4f} | {r['image_auroc_sharded']:.4f} | "
              f"{r['auroc_difference']:+.4f} | {r['fit_seconds_one_machine']:.1f} | "
              f"{r['fit_seconds_sharded']:.1f} ({r['ray_start_seconds']:.1f}, "
              f"{r['merge_seconds']:.1f}) |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
