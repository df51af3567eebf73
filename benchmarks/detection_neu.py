"""The learned detector on NEU-DET with its given split: train on ``train``, report on ``val``.

NEU-DET's ``val`` is the split published results are reported on, so it is never used to choose
the model: a seeded, class-stratified 12% slice of ``train`` picks the best epoch instead. The
figures (COCO mAP@0.5 and mAP@0.5:0.95, per-class AP@0.5, box precision/recall and image recall
at ``--score-threshold``, by default the best-F1 confidence on the selection slice) come from
``defectscope.evaluation.detection``; published YOLO results on NEU-DET are about 0.75-0.80
mAP@0.5.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/detection_neu.py --epochs 16 --image-size 256 \\
        --threads 2 --max-train-seconds 1800

``OMP_WAIT_POLICY=PASSIVE`` matters on a shared machine: OpenMP threads otherwise spin while
they wait for each other, and when other processes hold the cores a 2-thread step measured
12x slower than a 1-thread one (1.3 s vs 0.10 s per image); passive waiting makes it 0.12 s.

Figures go to stdout and to benchmarks/results/detection-neu.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from defectscope.data.boxes.dataset import load_pair
from defectscope.data.boxes.holdout import hold_out_boxes
from defectscope.data.boxes.yolo import import_yolo_boxes
from defectscope.evaluation.detection import evaluate_detections
from defectscope.models.detector import BoxDetector

DATA = Path(os.environ.get("DEFECTSCOPE_SHARED_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-train-seconds", type=float, default=None)
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--selection-fraction", type=float, default=0.12)
    parser.add_argument("--score-threshold", type=float, default=None,
                        help="confidence for precision, recall and image recall (not for mAP); "
                        "default: the best F1 on the model-selection slice")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--option", action="append", default=[], metavar="KEY=JSON",
                        help="any other detector option, e.g. --option rot90=true")
    parser.add_argument("--timing-images", type=int, default=100)
    parser.add_argument("--save-model", type=Path, default=None, help="write a bundle here")
    parser.add_argument("--out", type=Path, default=RESULTS / "detection-neu.json")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def _best_f1_threshold(model: BoxDetector, dataset, selection) -> float:
    """The confidence with the best box F1 on the model-selection slice (never on val)."""
    found = model.detect_many([load_pair(dataset, s)[0] for s in selection])
    truth = [s.boxes for s in selection]
    scored = [(evaluate_detections(truth, found, dataset.classes, score_threshold=t).f1, t)
              for t in (round(0.05 * i, 2) for i in range(1, 20))]
    return max(scored)[1]


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)  # set here, at the edge; the library never does
    if args.threads > 1 and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        print("note: OMP_WAIT_POLICY=PASSIVE is not set; on a busy machine spinning OpenMP "
              "threads can make training many times slower (see this script's docstring)")
    imported = import_yolo_boxes(DATA / "neu-det", keep_split=True)
    dataset = imported.dataset
    train, selection = hold_out_boxes(dataset.select("train"), args.selection_fraction,
                                      args.seed)
    test = dataset.select("val")
    print(f"NEU-DET {dataset.version_id}: {len(train)} train, {len(selection)} model selection "
          f"(from train), {len(test)} val (reported); {args.threads} threads")
    options = {"image_size": args.image_size, "epochs": args.epochs, "backbone": args.backbone,
               "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
               "max_train_seconds": args.max_train_seconds}
    for item in args.option:
        key, _, value = item.partition("=")
        options[key] = json.loads(value)
    model = BoxDetector(**options)
    started = time.perf_counter()
    model.fit(dataset.with_samples(train), dataset.with_samples(selection),
              progress=not args.no_progress)
    train_seconds = time.perf_counter() - started

    threshold = args.score_threshold
    if threshold is None:
        threshold = _best_f1_threshold(model, dataset, selection)
    images = [load_pair(dataset, s)[0] for s in test]
    predictions = model.detect_many(images)
    report = evaluate_detections([s.boxes for s in test], predictions, dataset.classes,
                                 score_threshold=threshold)
    times = []
    for image in images[: args.timing_images]:
        t0 = time.perf_counter()
        model.detect(image)
        times.append((time.perf_counter() - t0) * 1e3)

    result = {
        "dataset": {"name": "neu-det", "version_id": dataset.version_id, "train": len(train),
                    "model_selection": len(selection), "reported_split": "val",
                    "reported_images": len(test)},
        "map50": report.map50, "map50_95": report.map50_95,
        "per_class_ap50": report.per_class_ap50, "per_class_ap50_95": report.per_class_ap50_95,
        "score_threshold": threshold, "precision": report.precision,
        "recall": report.recall, "image_recall": report.image_recall,
        "train_seconds": round(train_seconds, 1), "threads": args.threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "epochs_run": model.training_["epochs_run"], "best_epoch": model.training_["best_epoch"],
        "selection_map50": model.training_["best_metric"],
        "inference_ms_median_batch1": round(statistics.median(times), 2),
        "inference_threads": torch.get_num_threads(),
        "config": model.config.to_dict(), "history": model.training_["history"],
        "torch": torch.__version__,
    }
    print(f"mAP@0.5 {report.map50:.4f}  mAP@0.5:0.95 {report.map50_95:.4f}  "
          f"(best epoch {result['best_epoch']} of {result['epochs_run']}, selection mAP@0.5 "
          f"{result['selection_map50']:.4f})")
    for name, ap in report.per_class_ap50.items():
        print(f"  AP@0.5 {name:16s} {ap:.4f}")
    print(f"at confidence {threshold}: precision {report.precision:.4f}, recall "
          f"{report.recall:.4f}, image recall {report.image_recall:.4f}")
    print(f"training {train_seconds:.0f} s on {args.threads} threads; inference "
          f"{result['inference_ms_median_batch1']:.1f} ms per image (median, batch 1)")
    if args.save_model is not None:
        from defectscope.bundle import save_bundle

        save_bundle(model.set_threshold(threshold), args.save_model, overwrite=True)
        print(f"bundle written to {args.save_model}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"figures written to {args.out}")
    return result


if __name__ == "__main__":
    main()
