"""Reference comparison on DeepPCB: mAP, per-class AP, image recall, training and inference time.

The 999 trainval pairs are split 80/20 by group (board scan; seed 0), so no scan is in both
parts. The model trains on the 80 % (selecting its checkpoint on a group-aware slice of it) and
its confidence threshold is the one with the best box F1 (IoU 0.5) on that slice; the 20 % is
read only for the figures. mAP comes from ``defectscope.evaluation.detection`` (COCO
definition).

    python benchmarks/detection_deeppcb.py --threads 2
    python benchmarks/detection_deeppcb.py --subsample 200 --max-train-seconds 120  # quick look
    python benchmarks/detection_deeppcb.py --option epochs=16 --option crop_size=64

Figures go to stdout and to benchmarks/results/detection-deeppcb.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

DATA = Path(os.environ.get("DEFECTSCOPE_SHARED_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA / "deeppcb")
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenCV threads")
    parser.add_argument("--max-train-seconds", type=float, default=None)
    parser.add_argument("--subsample", type=int, default=0,
                        help="train on this many training images (seeded pick); 0: all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--option", action="append", default=[], type=_option,
                        help="a model option KEY=VALUE (JSON value), repeatable")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    parser.add_argument("--save", type=Path, default=None,
                        help="also write the fitted model's tensors (safetensors) here")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "detection-deeppcb.json")
    args = parser.parse_args()

    import cv2
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    from defectscope.data.boxes.deeppcb import import_deeppcb
    from defectscope.data.boxes.splits import split_detection
    from defectscope.evaluation.detection import evaluate_detections
    from defectscope.models.reference import ReferenceComparison

    imported = import_deeppcb(args.data)
    dataset = split_detection(imported.dataset, fractions=(0.8, 0.2), names=("train", "test"),
                              seed=args.seed)
    train, test = dataset.select("train"), dataset.select("test")
    if args.subsample and args.subsample < len(train):
        pick = np.sort(np.random.default_rng(args.seed).choice(len(train), args.subsample,
                                                               replace=False))
        train = tuple(train[i] for i in pick)
    options = dict(args.option)
    options.setdefault("seed", args.seed)
    if args.max_train_seconds:
        options["max_train_seconds"] = args.max_train_seconds
    print(f"DeepPCB: {len(dataset.samples)} pairs; train {len(train)} "
          f"({sorted({s.group for s in train})}), test {len(test)} "
          f"({sorted({s.group for s in test})}); options {options}; threads {args.threads}")

    model = ReferenceComparison(**options)
    started = time.perf_counter()
    model.fit(dataset.with_samples(train), progress=args.progress)
    train_seconds = time.perf_counter() - started

    if args.save:
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in model.arrays().items()},
                  str(args.save))
    selection = model.selection_samples_
    found, _ = _predict(model, dataset, selection)
    threshold = _best_f1_threshold(selection, found, dataset.classes, evaluate_detections)
    predictions, milliseconds = _predict(model, dataset, test)
    report = evaluate_detections([s.boxes for s in test], predictions, dataset.classes,
                                 score_threshold=threshold)

    figures = {
        "map50": report.map50, "map50_95": report.map50_95,
        "per_class_ap50": report.per_class_ap50, "per_class_ap50_95": report.per_class_ap50_95,
        "threshold": threshold, "threshold_rule": "box F1 max on the selection slice",
        "precision": report.precision, "recall": report.recall, "f1": report.f1,
        "image_recall": report.image_recall, "n_test_images": report.n_images,
        "n_test_boxes": report.n_gt_boxes, "n_train_images": model.n_train_images_,
        "n_selection_images": len(selection),
        "train_seconds": round(train_seconds, 1),
        "inference_ms_median": round(float(np.median(milliseconds)), 2),
        "inference_ms_p95": round(float(np.percentile(milliseconds, 95)), 2),
        "threads": args.threads, "options": model.config.to_dict(),
        "training": {k: v for k, v in model.training_.items() if k != "history"},
        "history": model.training_["history"],
    }
    print(f"mAP@0.5 {report.map50:.4f}   mAP@0.5:0.95 {report.map50_95:.4f}")
    print("AP50 per class: " + ", ".join(f"{k} {v:.4f}" for k, v in
                                          report.per_class_ap50.items() if v is not None))
    print(f"at threshold {threshold:.3f}: precision {report.precision:.4f}, recall "
          f"{report.recall:.4f}, image recall {report.image_recall:.4f}")
    print(f"training {train_seconds:.0f} s on {args.threads} thread(s); inference "
          f"{figures['inference_ms_median']:.1f} ms per image (median, batch 1)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
