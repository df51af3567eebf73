"""``defectscope batch``: re-inspect an archive on Ray (local by default). Parsing and printing.

    defectscope batch --model MODEL_DIR [--model MODEL_DIR_B] --input DIR|MANIFEST
        [--address auto|ray://HOST:PORT] [--workers N] [--db URL] [--out results.parquet]
"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch", help="re-inspect archived images on Ray with exported models",
        description="Score every image of the inputs with each model's ONNX runtime on Ray "
        "workers (a local Ray instance unless --address is given). Each bundle travels to the "
        "workers once and is verified there as at load. Part ids are the image's sha256 plus "
        "the model version, so reruns and retried tasks never duplicate a row. With two or more "
        "--model, both verdicts are written per part and the disagreements summarised.")
    parser.add_argument("--model", required=True, action="append", metavar="MODEL_DIR",
                        help="exported model folder (defectscope export); repeat to compare")
    parser.add_argument("--input", required=True, action="append", metavar="DIR|MANIFEST",
                        help="folder of images (recursive) or a manifest JSON; repeatable")
    parser.add_argument("--address", metavar="auto|ray://HOST:PORT",
                        help="Ray cluster to use (default: start a local one)")
    parser.add_argument("--workers", type=int, default=2, metavar="N",
                        help="local Ray workers, one CPU each (default 2)")
    parser.add_argument("--threads", type=int, default=1, metavar="T",
                        help="threads per worker (default 1)")
    parser.add_argument("--db", metavar="URL", help="results log to write (SQLAlchemy URL)")
    parser.add_argument("--out", metavar="results.parquet", help="Parquet file to write")
    parser.add_argument("--backend", default="onnxruntime", choices=("onnxruntime",),
                        help="runtime on the workers")
    parser.add_argument("--chunk-size", type=int, default=16, metavar="K",
                        help="images per Ray task (default 16)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run_batch_command)


def run_batch_command(args: argparse.Namespace) -> int:
    from defectscope.distributed import BatchConfig, ClusterConfig, run_batch

    cluster = ClusterConfig(address=args.address, workers=args.workers, threads=args.threads)
    summary = run_batch(BatchConfig(
        models=tuple(args.model), inputs=tuple(args.input), cluster=cluster, out=args.out,
        db=args.db, backend=args.backend, chunk_size=args.chunk_size,
        progress=not args.no_progress))
    if args.json:
        print(json.dumps(summary.to_dict()))
    else:
        print(f"batch: {summary.images} images, {len(summary.rows)} rows in "
              f"{summary.seconds:.1f} s ({summary.throughput:.1f} images/s); "
              f"{summary.failures} could not be inspected"
              + (f"; results log: {summary.written_to_db} written, {summary.already_in_db} "
                 "already there" if args.db else "")
              + (f"; wrote {args.out}" if args.out else ""))
        comparison = summary.comparison
        if comparison:
            print(f"compare {' vs '.join(comparison['models'])}: {comparison['disagree']} of "
                  f"{comparison['parts']} parts disagree (agreement "
                  f"{comparison['agreement']:.3f})")
            for pair, n in comparison["verdict_pairs"].items():
                print(f"  {pair}: {n}")
    return 1 if summary.failures else 0
