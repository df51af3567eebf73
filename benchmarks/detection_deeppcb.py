"""Reference comparison on DeepPCB: mAP, per-class AP, image recall, training and inference time.

The 999 trainval pairs are split 80/20 by group (board scan; seed 0), so no scan is in both
parts. The model trains on the 80 % (selecting its checkpoint on a group-aware slice of it) and
its confidence threshold is the one with the best box F1 (IoU 0.5) on that slice; the 20 % is
read only for the figures. mAP comes from ``defectscope.evaluation.detection`` (COCO
definition).

With ``--cv`` it is leave-one-group-out instead: seven folds, each trains on six of the seven
board scans (``groupNNNNN``) and is scored on the one it never saw, which is how a new product
is met; it prints each fold, the mean, the image-weighted mean and the worst fold.
``AP@0.5 any type`` merges the defect types, so the gap to mAP@0.5 is what naming the type costs.

    python benchmarks/detection_deeppcb.py --threads 2
    python benchmarks/detection_deeppcb.py --cv --threads 2          # about 50 min on 2 cores
    python benchmarks/detection_deeppcb.py --subsample 200 --max-train-seconds 120  # quick look
    python benchmarks/detection_deeppcb.py --option epochs=16 --option crop_size=64
    python benchmarks/detection_deeppcb.py --cv --variant test_flips=false,test_scales=false
        # the same networks scored without test-time averaging too

Figures go to stdout and to benchmarks/results/detection-deeppcb.json (``-cv.json`` with
``--cv``; or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Sequence

DATA = Path(os.environ.get("DEFECTSCOPE_SHARED_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))


# what --variant may change on a fitted network: the options read at inference only
INFERENCE_OPTIONS = {"test_flips", "test_scales", "min_confidence", "nms_iou"}


def _option(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _predict(model, dataset, samples):
    """Detections per sample and milliseconds per image (batch 1, comparison included)."""
    from defectscope.data.boxes.dataset import load_pair

    predictions, milliseconds = [], []
    for sample in samples:
        image, template = load_pair(dataset, sample)
        started = time.perf_counter()
        predictions.append(model.detect(image, template))
        milliseconds.append((time.perf_counter() - started) * 1e3)
    return predictions, milliseconds


def _best_f1_threshold(samples, predictions, classes, evaluate) -> float:
    """The confidence with the best box F1 (IoU 0.5) on the selection slice: every DeepPCB
    image has defects, so there is no false-reject rate to calibrate on."""
    import numpy as np

    confidences = np.unique([d.confidence for p in predictions for d in p])
    if not len(confidences):
        return 0.5
    best = (-1.0, 0.5)
    for threshold in np.unique(np.quantile(confidences, np.linspace(0, 1, 41))):
        report = evaluate([s.boxes for s in samples], predictions, classes,
                          score_threshold=float(threshold))
        best = max(best, (report.f1, float(threshold)))
    return best[1]


def _ap50_any_type(samples, predictions, threshold: float) -> float:
    """AP@0.5 with every defect type merged into one: what is lost to localisation alone
    (mAP@0.5 below it is lost to naming the type)."""
    import dataclasses

    from defectscope.evaluation.detection import evaluate_detections

    truth = [[dataclasses.replace(b, label="defect") for b in s.boxes] for s in samples]
    found = [[dataclasses.replace(d, label="defect") for d in p] for p in predictions]
    return evaluate_detections(truth, found, ["defect"], score_threshold=threshold).map50


def _evaluate(model, dataset, selection, test) -> dict:
    """The confidence threshold chosen on the selection slice, then the figures on ``test``."""
    import numpy as np

    from defectscope.evaluation.detection import evaluate_detections

    found, _ = _predict(model, dataset, selection)
    threshold = _best_f1_threshold(selection, found, dataset.classes, evaluate_detections)
    predictions, milliseconds = _predict(model, dataset, test)
    report = evaluate_detections([s.boxes for s in test], predictions, dataset.classes,
                                 score_threshold=threshold)
    return {
        "map50": report.map50, "map50_95": report.map50_95,
        "ap50_any_type": _ap50_any_type(test, predictions, threshold),
        "per_class_ap50": report.per_class_ap50, "per_class_ap50_95": report.per_class_ap50_95,
        "threshold": threshold, "threshold_rule": "box F1 max on the selection slice",
        "precision": report.precision, "recall": report.recall, "f1": report.f1,
        "image_recall": report.image_recall, "n_test_images": report.n_images,
        "n_test_boxes": report.n_gt_boxes,
        "inference_ms_median": round(float(np.median(milliseconds)), 2),
        "inference_ms_p95": round(float(np.percentile(milliseconds, 95)), 2),
    }


def fit_and_test(dataset, train, test, options: dict, progress: bool = False,
                 save: Path | None = None, variants: Sequence[dict] = ()) -> dict:
    """Fit on ``train`` (choosing the checkpoint and the confidence threshold on the model's own
    group-aware selection slice of it), then score ``test``, read only here. Each of
    ``variants`` (inference options, e.g. ``{"test_flips": True}``) is scored too, with the same
    network and its own threshold, under ``figures["variants"]``."""
    import dataclasses

    import numpy as np

    from defectscope.models.reference import ReferenceComparison

    model = ReferenceComparison(**options)
    started = time.perf_counter()
    model.fit(dataset.with_samples(train), progress=progress)
    train_seconds = time.perf_counter() - started
    if save:
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in model.arrays().items()}, str(save))
    selection = model.selection_samples_
    figures = _evaluate(model, dataset, selection, test)
    figures.update({
        "n_train_images": model.n_train_images_, "n_selection_images": len(selection),
        "selection_groups": sorted({s.group for s in selection}),
        "train_seconds": round(train_seconds, 1), "options": model.config.to_dict(),
        "training": {k: v for k, v in model.training_.items() if k != "history"},
        "history": model.training_["history"],
    })
    fitted_config, figures["variants"] = model.config, {}
    for variant in variants:
        model.config = dataclasses.replace(fitted_config, **variant)
        figures["variants"][_variant_name(variant)] = _evaluate(model, dataset, selection, test)
    model.config = fitted_config
    return figures


def _variant_name(variant: dict) -> str:
    return ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(variant.items()))


def _variant(text: str) -> dict:
    """``KEY=VALUE[,KEY=VALUE...]`` (JSON values) -> a dict of inference options."""
    return dict(_option(part) for part in text.split(",") if part)


def _print_figures(figures: dict) -> None:
    print(f"mAP@0.5 {figures['map50']:.4f}   mAP@0.5:0.95 {figures['map50_95']:.4f}   "
          f"AP@0.5 any type {figures['ap50_any_type']:.4f}")
    print("AP50 per class: " + ", ".join(f"{k} {v:.4f}" for k, v in
                                          figures["per_class_ap50"].items() if v is not None))
    print(f"at threshold {figures['threshold']:.3f}: precision {figures['precision']:.4f}, "
          f"recall {figures['recall']:.4f}, image recall {figures['image_recall']:.4f}")
    print(f"training {figures['train_seconds']:.0f} s; inference "
          f"{figures['inference_ms_median']:.1f} ms per image (median, batch 1)", flush=True)
    for name, variant in figures.get("variants", {}).items():
        print(f"  {name}: mAP@0.5 {variant['map50']:.4f}, mAP@0.5:0.95 {variant['map50_95']:.4f}, "
              f"AP@0.5 any type {variant['ap50_any_type']:.4f}, recall {variant['recall']:.4f}, "
              f"precision {variant['precision']:.4f}, {variant['inference_ms_median']:.1f} ms "
              "per image", flush=True)


def leave_groups_out(dataset, options: dict, progress: bool = False,
                     only: Sequence[str] = (), variants: Sequence[dict] = ()) -> dict:
    """One fold per group (a board scan): fit on every other group, score the one left out.
    Returns the per-fold figures and their mean and image-weighted mean."""
    import numpy as np

    groups = sorted({s.group for s in dataset.samples})
    unknown = sorted(set(only) - set(groups))
    if unknown:
        raise SystemExit(f"--fold {', '.join(unknown)}: no such group; the groups are "
                         f"{', '.join(groups)}")
    if len(groups) < 2:
        raise SystemExit(f"--cv needs at least two groups, the data has {len(groups)}")
    folds = []
    for group in groups:
        if only and group not in only:
            continue
        train = tuple(s for s in dataset.samples if s.group != group)
        test = tuple(s for s in dataset.samples if s.group == group)
        print(f"\n== fold: test {group} ({len(test)} pairs), train {len(train)} pairs", flush=True)
        figures = fit_and_test(dataset, train, test, options, progress, variants=variants)
        figures["test_group"] = group
        _print_figures(figures)
        folds.append(figures)
    weights = np.array([f["n_test_images"] for f in folds], float)
    summary = {}
    for key in ("map50", "map50_95", "ap50_any_type", "precision", "recall", "f1", "image_recall",
                "train_seconds"):
        values = np.array([f[key] for f in folds], float)
        summary[key] = {"mean": float(values.mean()), "min": float(values.min()),
                        "weighted_mean": float((values * weights).sum() / weights.sum())}
    print("\n| test group | pairs | mAP@0.5 | mAP@0.5:0.95 | AP@0.5 any type | recall | "
          "precision | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for f in folds:
        print(f"| {f['test_group']} | {f['n_test_images']} | {f['map50']:.4f} | "
              f"{f['map50_95']:.4f} | {f['ap50_any_type']:.4f} | {f['recall']:.4f} | "
              f"{f['precision']:.4f} | {f['train_seconds']:.0f} |")
    print(f"| mean over {len(folds)} folds | | {summary['map50']['mean']:.4f} | "
          f"{summary['map50_95']['mean']:.4f} | {summary['ap50_any_type']['mean']:.4f} | "
          f"{summary['recall']['mean']:.4f} | {summary['precision']['mean']:.4f} | "
          f"{summary['train_seconds']['mean']:.0f} |")
    print(f"image-weighted mean mAP@0.5 {summary['map50']['weighted_mean']:.4f}; "
          f"worst fold {summary['map50']['min']:.4f}", flush=True)
    summary["variants"] = {}
    if variants:
        print("\n| inference | mean mAP@0.5 | image-weighted | worst fold | mean AP@0.5 any type "
              "| ms per image (median of folds) |")
        print("|---|---|---|---|---|---|")
    for name in [_variant_name(v) for v in variants]:
        rows = [f["variants"][name] for f in folds]
        values = np.array([r["map50"] for r in rows], float)
        row = {"mean": float(values.mean()), "min": float(values.min()),
               "weighted_mean": float((values * weights).sum() / weights.sum()),
               "ap50_any_type_mean": float(np.mean([r["ap50_any_type"] for r in rows])),
               "inference_ms_median": float(np.median([r["inference_ms_median"] for r in rows]))}
        summary["variants"][name] = row
        print(f"| {name} | {row['mean']:.4f} | {row['weighted_mean']:.4f} | {row['min']:.4f} | "
              f"{row['ap50_any_type_mean']:.4f} | {row['inference_ms_median']:.1f} |")
    return {"folds": folds, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA / "deeppcb")
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenCV threads")
    parser.add_argument("--max-train-seconds", type=float, default=None)
    parser.add_argument("--subsample", type=int, default=0,
                        help="train on this many training images (seeded pick); 0: all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cv", action="store_true",
                        help="leave-one-group-out cross-validation over the trainval groups "
                             "instead of one 80/20 split")
    parser.add_argument("--fold", action="append", default=[],
                        help="with --cv, run only this test group (repeatable)")
    parser.add_argument("--option", action="append", default=[], type=_option,
                        help="a model option KEY=VALUE (JSON value), repeatable")
    parser.add_argument("--variant", action="append", default=[], type=_variant,
                        help="also score each fold's network with these inference options, "
                             "KEY=VALUE[,KEY=VALUE] (e.g. test_flips=true), its own threshold "
                             "chosen alike; repeatable")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    parser.add_argument("--save", type=Path, default=None,
                        help="also write the fitted model's tensors (safetensors) here")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON figures (default benchmarks/results/detection-deeppcb.json, "
                             "-cv.json with --cv)")
    args = parser.parse_args()

    import cv2
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    from defectscope.data.boxes.deeppcb import import_deeppcb
    from defectscope.data.boxes.splits import split_detection

    imported = import_deeppcb(args.data)
    options = dict(args.option)
    options.setdefault("seed", args.seed)
    if args.max_train_seconds:
        options["max_train_seconds"] = args.max_train_seconds
    from defectscope.errors import ConfigError
    from defectscope.models.registry import create_model

    for variant in [{}] + args.variant:  # refused now, not after the first fold's training
        if set(variant) - INFERENCE_OPTIONS:
            parser.error(f"--variant takes inference options only "
                         f"({', '.join(sorted(INFERENCE_OPTIONS))}), not "
                         f"{sorted(set(variant) - INFERENCE_OPTIONS)}")
        try:
            create_model("reference", **{**options, **variant})
        except ConfigError as error:
            parser.error(str(error))
    results = Path(__file__).parent / "results"
    out = args.out or results / ("detection-deeppcb-cv.json" if args.cv
                                 else "detection-deeppcb.json")
    if args.cv:
        print(f"DeepPCB leave-one-group-out: {len(imported.dataset.samples)} pairs; options "
              f"{options}; threads {args.threads}")
        figures = leave_groups_out(imported.dataset, options, args.progress, args.fold,
                                   args.variant)
    else:
        dataset = split_detection(imported.dataset, fractions=(0.8, 0.2),
                                  names=("train", "test"), seed=args.seed)
        train, test = dataset.select("train"), dataset.select("test")
        if args.subsample and args.subsample < len(train):
            pick = np.sort(np.random.default_rng(args.seed).choice(len(train), args.subsample,
                                                                   replace=False))
            train = tuple(train[i] for i in pick)
        print(f"DeepPCB: {len(dataset.samples)} pairs; train {len(train)} "
              f"({sorted({s.group for s in train})}), test {len(test)} "
              f"({sorted({s.group for s in test})}); options {options}; threads {args.threads}")
        figures = fit_and_test(dataset, train, test, options, args.progress, args.save,
                               args.variant)
        _print_figures(figures)
    figures["threads"] = args.threads
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
