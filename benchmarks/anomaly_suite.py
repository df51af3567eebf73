"""The anomaly benchmark suite: every model on every anomaly dataset, with the defaults a user gets.

Each run is what a user does: ``train_anomaly`` (the same workflow as ``defectscope train``,
self-tuning and threshold calibration included, never reading a test image), then the bundle is
loaded back and the test split scored (``evaluate_bundle``, as ``defectscope test``). Printed per
dataset and model: image AUROC, pixel AUROC, AUPRO, F1-max, recall / false-reject rate / F1 at
the calibrated threshold, the UNSURE band, the share of test parts it sends to a person
(``unsure_share``) and the share of the threshold's errors among them (``errors_unsure``), fit
seconds (tuning included), ms per image (batch 1; ``onnx_ms``: the bundle exported to ONNX and
run by the torch-free runtime, first 50 test images), peak memory at the end of the fit
(``fit_peak_mb``) and of the whole run (``peak_mb``: the test maps are held for the pixel
metrics), then the mean over datasets. Each run is a fresh subprocess, so its peak memory is its
own.

Datasets (skipped when absent): ``magnetic-tile`` (folder layout; the first 70% of the good
images sorted by name train, the rest and every defect test, as Anomalib's anchor figures were
measured), ``bsdata`` and ``battery-weld`` (MVTec AD layout as laid out in ../shared/data), plus
any ``--data NAME=DIR`` in the MVTec AD layout.

    .venv/bin/python benchmarks/anomaly_suite.py [--models patchcore padim] [--datasets ...]
        [--data NAME=DIR] [--options JSON] [--tune auto|off] [--threshold-rule RULE]
        [--subsample N] [--json OUT.json] [--scores SCORES.json]

``--tune off --threshold-rule good_quantile`` reproduces the behaviour before self-tuning.
``--scores FILE`` also writes every run's calibration scores (good, real and synthetic defect,
as the bundle keeps them) and test scores, for ``benchmarks/threshold_rules.py``.

Figures are single runs on whatever machine runs this (printed); on a shared 2-core machine
fit times move with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILT_IN = ("magnetic-tile", "bsdata", "battery-weld")
# Anomalib 2.7, same EfficientNet-Lite0 weights, 256 px (issue 14): image / pixel AUROC.
ANCHORS = {
    "magnetic-tile": {"padim": (0.838, 0.688), "patchcore": (0.753, 0.715)},
    "bsdata": {"padim": (0.931, 0.977)},
    "battery-weld": {"padim": (0.929, 0.874), "patchcore": (0.978, 0.850)},
}
COLUMNS = ("image_auroc", "pixel_auroc", "aupro", "f1_max", "recall", "false_reject_rate",
           "f1", "unsure_band", "unsure_share", "errors_unsure", "fit_seconds", "ms_per_image",
           "onnx_ms", "fit_peak_mb", "peak_mb")
ONNX_IMAGES = 50  # test images timed on the ONNX runtime


def shared_data() -> Path:
    shared = os.environ.get("DEFECTSCOPE_SHARED_DATA")
    return Path(shared) if shared else REPO.parent / "shared" / "data"


def load_manifest(name: str, root: Path, subsample: int):
    """The dataset as a manifest with train/test splits (train = good images only)."""
    import dataclasses

    from defectscope.data.images.importers import import_dataset

    if name == "magnetic-tile" and not (root / "train").exists():
        manifest = import_dataset(root, "folder").manifest
        goods = sorted((s for s in manifest.samples if s.is_good), key=lambda s: s.path)
        train = {s.path for s in goods[: int(len(goods) * 0.7)]}
        samples = [dataclasses.replace(s, split="train" if s.path in train else "test")
                   for s in manifest.samples]
    else:
        manifest = import_dataset(root, "mvtec").manifest
        samples = list(manifest.samples)
    if subsample > 1:
        samples = sorted(samples, key=lambda s: s.path)[::subsample]
    return manifest.with_samples(samples)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def onnx_latency(model_dir: Path, manifest, records, n_images: int = ONNX_IMAGES
                 ) -> tuple[float, str]:
    """Export the bundle to ONNX (parity-checked) and time the torch-free runtime at batch 1 on
    the first test images: (median ms per image, decoded image to verdict; network input)."""
    import numpy as np

    from defectscope.data import load_image
    from defectscope.export import export_onnx
    from defectscope.runtime import RuntimeModel

    export_onnx(model_dir)
    runtime = RuntimeModel.load(model_dir)
    images = [load_image(r.path) for r in records[:n_images]]
    for image in images[:3]:
        runtime.predict(image)  # warm-up
    milliseconds = [sum(runtime.predict(image).timings.values()) for image in images]
    size = runtime.preprocessor.input_size(images[0].shape)
    return float(np.median(milliseconds)), "x".join(map(str, size))


def hold_out_defects(manifest, fraction: float, seed: int = 0):
    """(manifest without a seeded ``fraction`` of its test defects, those defects as a manifest
    of their own): what ``train --defects`` is given, kept out of the test figures."""
    import numpy as np

    pool = sorted((s for s in manifest.samples if s.split == "test" and not s.is_good),
                  key=lambda s: s.path)
    n = int(round(fraction * len(pool)))
    chosen = {pool[i].path for i in np.random.default_rng(seed).choice(len(pool), n,
                                                                       replace=False)}
    return (manifest.with_samples([s for s in manifest.samples if s.path not in chosen]),
            manifest.with_samples([s for s in manifest.samples if s.path in chosen]))


def run_one(name: str, root: Path, model: str, options: dict, subsample: int,
            tune: str = "auto", threshold_rule: str = "auto", hold_out: float = 0.0,
            use_defects: bool = False) -> dict:
    """Train, reload and test one model on one dataset in this process. ``hold_out``: that
    share of the test defects leaves the test split; with ``use_defects`` training gets them
    (``train --defects``)."""
    from defectscope.bundle import load_bundle
    from defectscope.evaluation.run import evaluate_bundle
    from defectscope.training.anomaly import train_anomaly

    manifest = load_manifest(name, root, subsample)
    defects = None
    if hold_out > 0:
        manifest, defects = hold_out_defects(manifest, hold_out)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = train_anomaly(manifest, model, Path(tmp) / "model", options=options,
                               progress=False, tune=tune, threshold_rule=threshold_rule,
                               defects=defects if use_defects else None)
        fit_seconds = time.perf_counter() - started
        fit_peak = peak_mb()  # before the test maps are held for the pixel metrics
        bundle = load_bundle(Path(tmp) / "model")
        report, records = evaluate_bundle(bundle, result.manifest, "test", progress=False)
        tuning = bundle.info.get("tuning")
        onnx_ms, onnx_input = onnx_latency(Path(tmp) / "model", result.manifest, records)
    threshold = bundle.model.threshold
    wrong = [(r.score >= threshold) != (r.label != "good") for r in records]
    unsure = [r.verdict == "UNSURE" for r in records]
    held = [u for u, w in zip(unsure, wrong) if w]
    return {
        "dataset": name, "model": model,
        "image_auroc": report["image_auroc"], "pixel_auroc": report["pixel_auroc"],
        "aupro": report["aupro"], "f1_max": report["f1_max"],
        "recall": report["recall"], "false_reject_rate": report["false_reject_rate"],
        "f1": report["f1"], "threshold_rule": bundle.info.get("calibration", {}).get("rule"),
        "unsure_band": bundle.info.get("unsure_band"),
        "unsure_share": sum(unsure) / len(unsure),  # test parts sent to a person
        "errors_unsure": sum(held) / len(held) if held else None,  # of the threshold's errors
        "fit_seconds": round(fit_seconds, 1), "ms_per_image": report["ms_per_image_median"],
        "onnx_ms": onnx_ms, "onnx_input": onnx_input,
        "fit_peak_mb": round(fit_peak), "peak_mb": round(peak_mb()),
        "n_train": result.model.n_train_images_,
        "n_test": report.get("n_images"), "chosen": (tuning or {}).get("chosen"),
        "defects_given": len(defects.samples) if use_defects and defects is not None else 0,
        "candidates": [{k: row.get(k) for k in ("candidate", "image_auroc", "pixel_auroc",
                                                 "seconds", "skipped") if row.get(k) is not None}
                       for row in (tuning or {}).get("candidates", [])],
        "scores": {"calibration": bundle.info.get("calibration_scores"),
                   "test": [r.score for r in records],
                   "test_defect": [r.label != "good" for r in records]},
    }


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"
    return str(value)


def print_table(rows: list[dict]) -> None:
    print("| dataset | model | " + " | ".join(COLUMNS) + " | anchor (img/px) |")
    print("|" + "---|" * (len(COLUMNS) + 3))
    for row in rows:
        anchor = ANCHORS.get(row["dataset"], {}).get(row["model"])
        cells = [_fmt(row.get(c)) for c in COLUMNS]
        print(f"| {row['dataset']} | {row['model']} | " + " | ".join(cells)
              + f" | {'/'.join(map(str, anchor)) if anchor else '-'} |")
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model and "error" not in r]
        means = []
        for column in COLUMNS:
            values = [r[column] for r in mine if r.get(column) is not None]
            means.append(_fmt(sum(values) / len(values)) if values else "-")
        print(f"| mean ({len(mine)}) | {model} | " + " | ".join(means) + " | |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["patchcore", "padim"])
    parser.add_argument("--datasets", nargs="+", default=list(BUILT_IN))
    parser.add_argument("--data", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--options", default="{}", help="JSON model options for every run")
    parser.add_argument("--tune", default="auto", choices=("auto", "off"))
    parser.add_argument("--threshold-rule", default="auto",
                        help="e.g. good_quantile for the rule before synthetic defects")
    parser.add_argument("--subsample", type=int, default=1, help="every N-th image (quick checks)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--hold-out-defects", type=float, default=0.0, metavar="F",
                        help="take a seeded share F of the test defects out of the test split")
    parser.add_argument("--use-defects", action="store_true",
                        help="and give them to training as train --defects DIR does")
    parser.add_argument("--scores", type=Path,
                        help="write each run's validation, synthetic and test scores here "
                             "(for benchmarks/threshold_rules.py)")
    parser.add_argument("--one", nargs=3, metavar=("NAME", "ROOT", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        options = json.loads(args.options)
    except json.JSONDecodeError as error:
        parser.error(f"--options is not JSON ({error}): e.g. '{{\"top_fraction\": 0.01}}'")
    for path in (args.json, args.scores):
        if path is not None and path.is_dir():
            parser.error(f"{path} is a folder; give a file to write (checked before the runs)")
    if args.one:
        name, root, model = args.one
        print(json.dumps(run_one(name, Path(root), model, options, args.subsample, args.tune,
                                args.threshold_rule, args.hold_out_defects,
                                args.use_defects)))
        return 0

    datasets = {name: shared_data() / name for name in args.datasets}
    for item in args.data:
        name, _, folder = item.partition("=")
        if not folder:
            parser.error(f"--data takes NAME=DIR, got {item!r}")
        datasets[name] = Path(folder)
    print(f"# {' '.join([Path(sys.argv[0]).name] + (argv or sys.argv[1:]))}")
    print(f"# machine: {platform.platform()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}")
    rows, scores = [], []
    for name, root in datasets.items():
        if not root.exists():
            print(f"# {name}: {root} absent, skipped")
            continue
        for model in args.models:
            command = [sys.executable, __file__, "--one", name, str(root), model,
                       "--options", args.options, "--subsample", str(args.subsample),
                       "--tune", args.tune, "--threshold-rule", args.threshold_rule,
                       "--hold-out-defects", str(args.hold_out_defects)]
            command += ["--use-defects"] if args.use_defects else []
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                tail = done.stderr.strip().splitlines()[-1:] or ["?"]
                rows.append({"dataset": name, "model": model, "error": tail[0]})
                print(f"# {name} {model}: failed: {tail[0]}", flush=True)
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            scores.append({"dataset": name, "model": model, **row.pop("scores")})
            rows.append(row)
            print("# " + json.dumps(row), flush=True)
    print_table([r for r in rows if "error" not in r])
    for path, content in ((args.json, rows), (args.scores, scores)):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(content, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
