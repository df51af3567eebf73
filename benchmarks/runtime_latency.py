"""Batch-1 latency and throughput of the torch path and the torch-free runtime's backends.

For PatchCore and PaDiM at their default settings: fit on good Magnetic Tile images, write a
bundle, export it (``export_onnx`` with ``formats=("onnx", "openvino")``, parity-checked), then
time the three engines side by side in one run (torch, ONNX Runtime, OpenVINO; the last two run
the same numpy scoring after the network) on the same decoded test images, from the decoded
RGB array to the verdict (``predict``: preprocessing, backbone, scoring, anomaly map, verdict).
Image decoding is left out: every engine gets the same arrays.

Data: ``$DEFECTSCOPE_SHARED_DATA/magnetic-tile`` or ``<repo>/../shared/data/magnetic-tile``
(MT_Free sorted by name, first 70% to train, as benchmarks/anomaly_magnetic_tile.py), else the
bundled sample ``src/defectscope/sample_data/magnetic_tile``. Threads: each library's default.

    .venv/bin/python benchmarks/runtime_latency.py [--models patchcore padim] [--data PATH]
        [--images 200] [--train-subsample 1] [--engines torch onnxruntime openvino]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "src" / "defectscope" / "sample_data" / "magnetic_tile"
STAGES = ("preprocess", "backbone", "scoring", "anomaly_map")


def default_data() -> Path:
    shared = os.environ.get("DEFECTSCOPE_SHARED_DATA")
    path = (Path(shared) if shared else REPO.parent / "shared" / "data") / "magnetic-tile"
    return path if path.is_dir() else SAMPLE


def split(data: Path) -> tuple[list[Path], list[Path]]:
    """Training images (good) and test images (good and defective) of either layout."""
    if (data / "MT_Free").is_dir():
        free = sorted((data / "MT_Free" / "Imgs").glob("*.jpg"))
        cut = int(len(free) * 0.7)
        defects = sorted(p for d in data.glob("MT_*") if d.name != "MT_Free"
                         for p in (d / "Imgs").glob("*.jpg"))
        return free[:cut], free[cut:] + defects
    return (sorted((data / "train" / "good").glob("*.*")),
            sorted((data / "test").glob("*/*.*")))


def time_engine(predict, images: list[np.ndarray], warmup: int = 5) -> dict:
    for image in images[:warmup]:
        predict(image)
    latency, scores, stages = [], [], []
    start = time.perf_counter()
    for image in images:
        t0 = time.perf_counter()
        result = predict(image)
        latency.append((time.perf_counter() - t0) * 1e3)
        scores.append(result.score)
        stages.append(result.timings)
    total = time.perf_counter() - start
    return {"median": float(np.median(latency)), "p95": float(np.percentile(latency, 95)),
            "per_s": len(images) / total, "scores": np.asarray(scores),
            "stages": {k: float(np.median([t[k] for t in stages])) for k in STAGES}}


ENGINES = ("torch", "onnxruntime", "openvino")


def run_model(name: str, train: list[Path], images: list[np.ndarray], root: Path,
              engines: tuple[str, ...] = ENGINES) -> list[dict]:
    from defectscope.bundle import Reference, load_bundle, save_bundle
    from defectscope.data import load_image
    from defectscope.models import create_model
    from defectscope.runtime import RuntimeModel
    from defectscope.export import export_onnx

    model = create_model(name).fit(load_image(path) for path in train)
    good = [model.anomaly(load_image(path))[0] for path in train[-20:]]
    model.set_threshold(float(np.max(good)) * 1.1)  # a plausible threshold; latency is the point
    references = [Reference(image, model.anomaly(image)[0], f"test-{i}")
                  for i, image in enumerate(images[:4])]
    model_dir = save_bundle(model, root / name, references=references)
    start = time.perf_counter()
    export_onnx(model_dir, formats=("onnx", "openvino") if "openvino" in engines else ("onnx",))
    export_s = time.perf_counter() - start
    runners = {engine: load_bundle(model_dir).model if engine == "torch"
               else RuntimeModel.load(model_dir, backend=engine) for engine in engines}
    rows = []
    for engine, runner in runners.items():
        row = time_engine(runner.predict, images)
        rows.append({"model": name, "engine": engine, "export_s": export_s,
                     "input": "x".join(map(str, runner.preprocessor.input_size(images[0].shape))),
                     "bank": len(getattr(model, "memory_bank_", ())) or None, **row})
    scores = {row["engine"]: row.pop("scores") for row in rows}
    if "torch" in scores:
        for row in rows[1:]:
            differences = np.abs(scores["torch"] - scores[row["engine"]]) / model.threshold
            row["max_diff"] = float(differences.max())
            worst = int(differences.argmax())
            print(f"{name}: {row['engine']}: worst image {worst}: torch "
                  f"{scores['torch'][worst]:.6g}, {row['engine']} "
                  f"{scores[row['engine']][worst]:.6g}, threshold {model.threshold:.6g}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["patchcore", "padim"])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--images", type=int, default=200, help="test images to time")
    parser.add_argument("--train-subsample", type=int, default=1,
                        help="keep every N-th training image (quick runs only)")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES,
                        help="engines to time (torch first for the score differences)")
    args = parser.parse_args()
    from defectscope.data import load_image

    data = args.data or default_data()
    train, test = split(data)
    train = train[:: args.train_subsample]
    step = max(1, len(test) // args.images)
    images = [load_image(path) for path in test[::step][: args.images]]
    print(f"data {data}: {len(train)} training images, {len(images)} timed test images "
          f"(batch 1, decoded image -> verdict), {os.cpu_count()} CPUs, "
          f"{len(os.sched_getaffinity(0))} usable")
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for name in args.models:
            rows += run_model(name, train, images, Path(root), tuple(args.engines))
    print(f"\n{'model':10} {'engine':11} {'input':>8} {'bank':>7} {'median ms':>10} "
          f"{'p95 ms':>8} {'img/s':>7} {'max |Δscore|/thr':>17}   median ms per stage: "
          + " / ".join(STAGES))
    for r in rows:
        diff = f"{r['max_diff']:.2e}" if "max_diff" in r else "-"
        stages = " / ".join(f"{r['stages'][k]:.1f}" for k in STAGES)
        print(f"{r['model']:10} {r['engine']:11} {r['input']:>8} {r['bank'] or '-':>7} "
              f"{r['median']:>10.2f} {r['p95']:>8.2f} {r['per_s']:>7.1f} {diff:>17}   {stages}")


if __name__ == "__main__":
    main()
