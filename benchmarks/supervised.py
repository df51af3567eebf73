"""Supervised models on real data: NEU (6 classes) and magnetic tile (pass/fail, segmentation).

Prints test-split figures (the split each bundle records; never seen in training or model
selection) and the anomaly models' figures on the same split. Runs through the library API the
CLI uses. Each part can be run alone:

    python benchmarks/supervised.py neu --image-size 128 --epochs 8
    python benchmarks/supervised.py tile-classifier --image-size 160 [--task multiclass]
        [--scores-out scores.json]
    python benchmarks/supervised.py tile-segmenter --image-size 192 [--synthetic 200]
        [--flip-average] [--seeds 0 1 2]
    python benchmarks/supervised.py tile-anomaly --model padim
    python benchmarks/supervised.py tile-segmenter --synthetic 200 --folds 7   # every spot tested once

Magnetic Tile holds about six exposures of each spot (NEU-DET a few re-shots too); the splits
keep each set together (near-duplicate groups, as ``defectscope data split --near-duplicates``).
``--leaky-split`` reproduces the per-image split of earlier figures. Figures go to stdout and to benchmarks/results/<part>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from defectscope.bundle import load_bundle
from defectscope.data.images.importers import import_dataset
from defectscope.data.images.splits import cross_validation_splits
from defectscope.evaluation.run import evaluate_bundle
from defectscope.evaluation.supervised import evaluate_supervised
from defectscope.training.anomaly import train_anomaly
from defectscope.training.supervised import supervised_splits, train_supervised

DATA = Path(os.environ.get("DEFECTSCOPE_SHARED_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))
KEYS = ("accuracy", "macro_f1", "binary_accuracy", "precision", "recall", "image_auroc",
        "pixel_auroc", "pixel_iou", "pixel_dice", "n_images", "n_defect", "threshold")
VAL_KEYS = ("image_auroc", "pixel_auroc", "pixel_iou")


def _tile_manifest(seed: int, leaky: bool = False, fold: tuple[int, int] | None = None):
    """Magnetic Tile split 70/15/15, the same for every model.

    By default the ~6 exposures of one spot (``data split --near-duplicates``) stay in one split;
    ``leaky=True`` gives the plain per-image split earlier figures used, where most test images
    have a re-shot of the same spot in training. ``fold=(i, k)``: split ``i`` of a k-fold
    cross-validation (seed 0) instead, every spot a test image in exactly one fold.
    """
    manifest = import_dataset(DATA / "magnetic-tile", "folder").manifest
    if not leaky:
        manifest = _grouped(manifest)
    if fold is not None:
        folds, warnings = cross_validation_splits(manifest, fold[1], seed=0)
        for warning in warnings:
            print("warning:", warning)
        return folds[fold[0]]
    return supervised_splits(manifest, seed)[0]


def _grouped(manifest):
    """The manifest with near-duplicate groups, cached per dataset version (a minute's work)."""
    from defectscope.data.images.manifest import Manifest
    from defectscope.data.near_duplicates import group_near_duplicates

    cache = Path(__file__).parent / "results" / f"groups-{manifest.version_id}.json"
    if cache.exists():
        return Manifest.load(cache)
    grouped, report = group_near_duplicates(manifest, progress=False)
    for line in report.lines():
        print(line)
    cache.parent.mkdir(exist_ok=True)
    grouped.save(cache)
    return grouped


def _recall_at_precision(report_records, min_precision: float = 0.95):
    """Best recall over thresholds with precision >= ``min_precision`` (an oracle threshold on
    test, reported beside the calibrated one)."""
    import numpy as np

    scores = np.array([r.score for r in report_records])
    defect = np.array([r.label != "good" for r in report_records])
    best = 0.0
    for t in np.unique(scores):
        pred = scores >= t
        tp = np.sum(pred & defect)
        if pred.sum() and tp / pred.sum() >= min_precision:
            best = max(best, tp / defect.sum())
    return float(best)


def _neu_manifest(label_rule: str, leaky: bool = False):
    """NEU-DET for classification; by default its few re-shots (49 of 1,800 images) are grouped
    so a 70/15/15 split keeps each set on one side."""
    manifest = import_dataset(DATA / "neu-det", "yolo", label_rule=label_rule).manifest
    return manifest if leaky else _grouped(manifest)


def _reshots_seen(manifest, raw) -> dict:
    """Per kind (good / defective): [test images with a re-shot of the same spot in train or
    val, test images] - how much a split leaks. ``raw``: the dataset as imported."""
    spot = {s.sha256: s.group or s.sha256 for s in _grouped(raw).samples}  # alone: its own spot
    seen = {spot[s.sha256] for s in manifest.samples if s.split in ("train", "val")}
    counts = {"good": [0, 0], "defective": [0, 0]}
    for sample in manifest.select(split="test"):
        kind = counts["good" if sample.is_good else "defective"]
        kind[0] += spot[sample.sha256] in seen
        kind[1] += 1
    return counts


def _write_scores(path: Path, splits: dict) -> None:
    """Per-image scores of each split as JSON, for looking at misses or combining models."""
    rows = [{"split": split, "path": r.path, "label": r.label, "score": float(r.score)}
            for split, records in splits.items() for r in records]
    Path(path).write_text(json.dumps(rows, indent=1))


SUMMARY_KEYS = ("accuracy", "image_auroc", "pixel_auroc", "pixel_iou", "recall", "precision",
                "recall_at_precision_95_oracle", "val_image_auroc", "val_pixel_auroc",
                "val_pixel_iou")


def summarise(runs: list[dict]) -> dict:
    """Mean, min and max of the main figures over runs on different seeded splits."""
    import numpy as np

    summary = {}
    for key in SUMMARY_KEYS:
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            summary[key] = {"mean": float(np.mean(values)), "min": float(min(values)),
                            "max": float(max(values)), "n": len(values)}
    return summary


def _split_name(args) -> str:
    name = "per-image (leaky)" if args.leaky_split else "near-duplicates grouped"
    return name + (f", cross-validation fold {args.fold[0]} of {args.fold[1]}" if args.fold
                   else "")


def run(part: str, args) -> dict:
    options = {"image_size": args.image_size, "epochs": args.epochs, "seed": args.seed,
               "batch_size": args.batch_size}
    if args.max_minutes:
        options["max_train_seconds"] = args.max_minutes * 60
    options.update(args.options)
    out = Path(tempfile.mkdtemp(prefix=f"bench-{part}-")) / "model"
    started = time.perf_counter()
    if part == "neu":
        manifest = _neu_manifest(args.label_rule, args.leaky_split)
        manifest = supervised_splits(manifest, args.seed)[0]
        train_supervised(manifest, "classifier", out, options=options, seed=args.seed, log=print,
                         progress=False)
    elif part in ("tile-classifier", "tile-segmenter"):
        manifest = _tile_manifest(args.seed, args.leaky_split, args.fold)
        if args.synthetic:
            from defectscope.data.images.synthesize import add_synthetic_to_train
            manifest = add_synthetic_to_train(manifest, args.synthetic, Path(out).parent / "syn",
                                              seed=args.seed)
        model, extra = (("classifier", {"task": args.task}) if part == "tile-classifier"
                        else ("segmenter", {"flip_average": args.flip_average}))
        train_supervised(manifest, model, out, options={**options, **extra}, seed=args.seed,
                         log=print, progress=False, threshold_rule="f1_max")
    elif part == "tile-anomaly":
        manifest = _tile_manifest(args.seed, args.leaky_split, args.fold)
        train_anomaly(manifest, args.model, out, options={"image_size": args.image_size},
                      seed=args.seed, progress=False, log=print, threshold_rule="f1_max")
    else:
        raise SystemExit(f"unknown part {part}")
    train_seconds = time.perf_counter() - started
    bundle = load_bundle(out)
    evaluate = evaluate_bundle if part == "tile-anomaly" else evaluate_supervised
    eval_manifest = (_tile_manifest(args.seed, args.leaky_split, args.fold) if args.synthetic
                     else manifest)  # real images only: synthetic ones never score as test
    report, records = evaluate(bundle, eval_manifest, "test", progress=False)
    val_report, val_records = evaluate(bundle, eval_manifest, "val", progress=False)
    if args.scores_out:
        _write_scores(args.scores_out, {"val": val_records, "test": records})
    figures = {k: report.get(k) for k in KEYS}
    # Validation figures, to compare settings without looking at test (the val split also
    # picked the checkpoint and the threshold, so these are optimistic).
    figures.update({f"val_{k}": val_report.get(k) for k in VAL_KEYS})
    raw = (import_dataset(DATA / "neu-det", "yolo", label_rule=args.label_rule) if part == "neu"
           else import_dataset(DATA / "magnetic-tile", "folder")).manifest
    figures["test_with_reshot_in_train_or_val"] = _reshots_seen(eval_manifest, raw)
    figures.update(part=part, train_seconds=round(train_seconds, 1),
                   recall_at_precision_95_oracle=_recall_at_precision(records),
                   options=options, split=_split_name(args),
                   n_left_out=report.get("n_left_out_seen_in_training"),
                   fit=bundle.info["metrics"].get("best_epoch"))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("neu", "tile-classifier", "tile-segmenter",
                                         "tile-anomaly"))
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="run once per seed (each its own seeded split and training) and "
                             "print mean/min/max: Magnetic Tile's test split holds only ~35 "
                             "spots, so one split's figures move by points")
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--label-rule", default="prefix", choices=("boxes", "prefix"))
    parser.add_argument("--synthetic", type=int, default=0,
                        help="tile-classifier/-segmenter: add N synthetic defects made from "
                             "train good images")
    parser.add_argument("--flip-average", action="store_true",
                        help="tile-segmenter: average each map over the image's mirror images")
    parser.add_argument("--model", default="padim", help="tile-anomaly: padim or patchcore")
    parser.add_argument("--task", default="binary", choices=("binary", "multiclass"),
                        help="tile-classifier: pass/fail head, or good plus each defect type "
                             "(the score is then 1 - P(good))")
    parser.add_argument("--leaky-split", action="store_true",
                        help="split image by image as before (Magnetic Tile: re-shots of one spot "
                             "land in train and test; NEU: its few re-shots may), for comparison "
                             "with earlier figures")
    parser.add_argument("--options", type=json.loads, default={},
                        help='more model options as JSON, e.g. \'{"select_metric": '
                             '"pixel_auroc"}\'')
    parser.add_argument("--tag", default="",
                        help="appended to the results file name (to keep variants apart)")
    parser.add_argument("--scores-out", type=Path, default=None,
                        help="write every val and test image's score to this JSON file")
    parser.add_argument("--folds", type=int, default=None,
                        help="Magnetic Tile: k-fold cross-validation by spot instead of one "
                             "split (7 folds: ~71/14/14 train/val/test; every spot tested once)")
    args = parser.parse_args()
    args.fold = None
    if args.folds and args.part == "neu":
        raise SystemExit("--folds is for the Magnetic Tile parts")
    if args.seeds or args.folds:
        runs = []
        for index in (range(args.folds) if args.folds else args.seeds):
            if args.folds:
                args.fold = (index, args.folds)
            else:
                args.seed = index
            runs.append(run(args.part, args))
            print(json.dumps(runs[-1], indent=2))
        figures = {"part": args.part, "seeds": args.seeds, "folds": args.folds,
                   "summary": summarise(runs), "runs": runs}
        for key, row in figures["summary"].items():
            print(f"{key:32s} mean {row['mean']:.3f}  min {row['min']:.3f}  max {row['max']:.3f}"
                  f"  (n={row['n']})")
    else:
        figures = run(args.part, args)
        print(json.dumps(figures, indent=2))
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    name = args.part + (f"-syn{args.synthetic}" if args.synthetic else "") + (
        f"-{args.model}" if args.part == "tile-anomaly" else "") + (
        "-leaky" if args.leaky_split else "") + ("-flips" if args.flip_average else "") + (
        "-seeds" + "-".join(map(str, args.seeds)) if args.seeds else "") + (
        f"-folds{args.folds}" if args.folds else "") + (f"-{args.tag}" if args.tag else "")
    (results / f"{name}.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
