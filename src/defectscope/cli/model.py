"""``defectscope train|test|predict``: the model verbs. Parsing and printing only.

    defectscope train --data DIR --format mvtec --model patchcore --out MODEL_DIR
    defectscope test --model MODEL_DIR --data DIR --report report.json
    defectscope predict --model MODEL_DIR IMAGE_OR_DIR... --json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from defectscope.cli.data import add_dataset_arguments, load_dataset
from defectscope.data.image_io import DEFAULT_MAX_PIXELS
from defectscope.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    _add_train(subparsers)
    _add_test(subparsers)
    _add_predict(subparsers)


def _add_train(subparsers) -> None:
    from defectscope.models.backbones import list_backbones

    parser = subparsers.add_parser(
        "train", help="train a model and calibrate its threshold; writes a model folder",
        description="Train an anomaly model on the good images of the train split, calibrate "
        "the decision threshold on the validation split (with --format mvtec: a seeded slice of "
        "train/good), and write a model folder (bundle). Test images are never read.")
    add_dataset_arguments(parser, "dataset folder, or a manifest .json")
    parser.add_argument("--model", required=True, metavar="NAME",
                        help="model to train: patchcore or padim (good images only), classifier "
                        "or segmenter (labelled defects; e.g. --set task=binary, --set epochs=8), "
                        "reference (boxes by comparison with a template: --format deeppcb) or "
                        "detector (boxes: --format yolo|coco|deeppcb)")
    parser.add_argument("--out", required=True, metavar="MODEL_DIR", help="model folder to write")
    parser.add_argument("--backbone", metavar="NAME",
                        help=f"pretrained backbone (default efficientnet_lite0): "
                        f"{', '.join(list_backbones())}")
    parser.add_argument("--backbone-weights", metavar="FILE",
                        help="your own weights for the backbone's architecture (.pth state dict "
                        "or .safetensors); its sha256 is recorded in the bundle")
    parser.add_argument("--image-size", type=int, metavar="PX", help="network input size")
    parser.add_argument("--coreset-ratio", type=float, metavar="R",
                        help="patchcore: fraction of training patches kept (default 0.1)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any other model option, e.g. --set blur_sigma=2 (repeatable; "
                             "`defectscope models NAME` lists them)")
    parser.add_argument("--preprocess", metavar="FILE",
                        help="preprocessing steps (YAML/JSON list: align, normalise, denoise, "
                        "roi, tile...); stored in the model folder and applied at inspection")
    parser.add_argument("--template", metavar="IMAGE",
                        help="reference model: the product's defect-free template, stored in the "
                        "model folder so parts are inspected without one of their own (run, "
                        "serve, predict)")
    parser.add_argument("--threshold-rule", default="auto",
                        choices=("auto", "good_quantile", "recall", "f1_max", "synthetic_balanced",
                                 "balanced"),
                        help="auto: with real validation defects, best balanced accuracy between "
                        "them and the good validation images, rejecting at most 20%% of the goods "
                        "(balanced; anomaly models) or every validation defect caught (recall; "
                        "supervised and box models); without, (anomaly models) the same between "
                        "the goods and synthetic defects pasted into them (synthetic_balanced)")
    parser.add_argument("--tune", default="auto", choices=("auto", "off"),
                        help="anomaly models: auto (default) compares a few candidate settings "
                        "(input resolution, neighbourhood, tiling) on synthetic defects in "
                        "held-back good images and keeps the best; off uses the options as given")
    parser.add_argument("--defects", metavar="DIR",
                        help="anomaly models: a folder of real defect images (one sub-folder per "
                        "type, or loose; masks beside them) added to validation, so they weigh "
                        "in tuning and calibration; never fitted on")
    parser.add_argument("--tune-budget", type=float, default=150.0, metavar="SECONDS",
                        help="time for comparing candidates (default 150; the final fit comes "
                        "on top); a candidate that would pass it is skipped and the best so far "
                        "kept")
    parser.add_argument("--threshold-target", type=float, metavar="X",
                        help="target of the rule: false-reject rate for good_quantile, recall "
                        "for recall, highest false-reject rate accepted for balanced and "
                        "synthetic_balanced (default 0.2)")
    parser.add_argument("--unsure-band", type=float, metavar="B",
                        help="UNSURE when the score is within threshold*(1±B); default for "
                        "patchcore/padim: sized at calibration from the good and defect "
                        "validation scores (half the errors, at most 10%% of goods sent to "
                        "review), 0.05 without defect scores; 0 for the other models")
    parser.add_argument("--val-fraction", type=float, default=0.15,
                        help="share of good training images held back to calibrate when the data "
                        "has no validation split (default 0.15)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--max-minutes", type=float, metavar="M",
                        help="bound the training: networks stop at the limit keeping their best "
                        "checkpoint; PatchCore/PaDiM tune within half of it and fit on the "
                        "images read by then (the output says how many); default: no limit")
    parser.add_argument("--near-duplicates", action="store_true",
                        help="find re-shots of one spot (other lighting, small shift) first, so "
                        "any split train makes keeps them together (about 50 ms per image)")
    parser.add_argument("--address", metavar="auto|ray://HOST:PORT",
                        help="patchcore, padim: fit in shards on this Ray cluster (one task per "
                        "shard, images read where they lie; the bundle is that of a one-machine "
                        "fit)")
    parser.add_argument("--shards", type=int, metavar="N",
                        help="fit in N shards on Ray (default 4 with --address; without "
                        "--address on a local Ray instance that starts by itself)")
    parser.add_argument("--workers", type=int, default=2, metavar="N",
                        help="local Ray instance: CPUs (one per shard task; default 2)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run_train)


def _add_test(subparsers) -> None:
    parser = subparsers.add_parser(
        "test", help="evaluate a model on a dataset split; writes report JSON, PNG plots, HTML",
        description="Score the test split (or --split val) with a model folder and write the "
        "report: image AUROC, AP, F1, precision/recall at the threshold, confusion matrix, "
        "recall per defect type, pixel AUROC and AUPRO where masks exist, PNG plots and HTML. "
        "Images the model trained or calibrated on are left out, whatever folder they are in.")
    parser.add_argument("--model", required=True, metavar="MODEL_DIR", help="model folder")
    add_dataset_arguments(parser, "dataset folder, or a manifest .json")
    parser.add_argument("--report", required=True, metavar="OUT.json", help="report to write")
    parser.add_argument("--split", default="test", choices=("test", "val"),
                        help="which split to score (default test)")
    parser.add_argument("--no-plots", action="store_true", help="write the JSON only")
    parser.add_argument("--check-leaks", action="store_true",
                        help="also count test images that are re-shots (other lighting, small "
                        "shift) of images the model trained or calibrated on (about 50 ms per "
                        "image); the count goes into the report as leak_check")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run_test)


def _add_predict(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="inspect images: verdict OK/NG/UNSURE and score per image",
        description="Inspect images or folders of images, with the same fail-safe policy as "
        "serve and run: an image that cannot be read or is refused by a limit gets UNSURE, one "
        "that breaks the model NG, always with the reason (never OK), and the exit code is 1. "
        "Files in a folder that are not images are listed on stderr as skipped.")
    parser.add_argument("--model", required=True, metavar="MODEL_DIR", help="model folder")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="images or folders")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per line: path, verdict, score, ...")
    parser.add_argument("--heatmaps", metavar="DIR",
                        help="write anomaly-map overlays (PNG) here; boxes for detection models")
    parser.add_argument("--template", metavar="IMAGE",
                        help="the defect-free template each image is compared with (reference "
                        "model)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                        help="refuse (UNSURE) images with more pixels, read from the header "
                        f"before decoding (default {DEFAULT_MAX_PIXELS:,})")
    parser.add_argument("--cycle-budget-ms", type=float, default=None, metavar="MS",
                        help="an inspection slower than this is judged by the fail-safe "
                        "policy (UNSURE unless the model said NG); default: no budget")
    parser.add_argument("--backend", default="torch",
                        choices=("torch", "onnxruntime", "openvino"),
                        help="what runs the model: torch (default), or the torch-free runtime "
                        "on the bundle's export with onnxruntime or openvino (defectscope "
                        "export --format openvino)")
    parser.set_defaults(handler=run_predict)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set blur_sigma=2")
        options[key.strip().replace("-", "_")] = _parse_value(value)
    for name in ("backbone", "backbone_weights", "image_size", "coreset_ratio", "unsure_band"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    if args.backbone_weights is not None and not Path(args.backbone_weights).is_file():
        raise ConfigError(f"--backbone-weights {args.backbone_weights}: no such file")
    max_minutes = getattr(args, "max_minutes", None)
    if max_minutes is not None:
        if not max_minutes > 0:
            raise ConfigError(f"--max-minutes must be > 0, not {max_minutes}")
        from defectscope.models.registry import model_class

        fields = {f.name for f in dataclasses.fields(model_class(args.model).config_class)}
        if "max_train_seconds" in fields:  # networks; anomaly models get it in train_anomaly
            options.setdefault("max_train_seconds", 60.0 * max_minutes)
    if getattr(args, "preprocess", None):
        from defectscope.cli.preprocess import load_steps_file

        options["steps"] = load_steps_file(args.preprocess).get("steps", [])
    return options


def run_train(args: argparse.Namespace) -> int:
    from defectscope.data.images.summary import format_summary
    from defectscope.training.anomaly import train_anomaly

    from defectscope.training.supervised import is_supervised

    from defectscope.training.detection import is_detection

    sharded = sharded_config(args)
    if sharded is not None and (is_detection(args.model) or is_supervised(args.model)):
        raise ConfigError(f"--address/--shards fit patchcore or padim in shards; {args.model} "
                          "trains on one machine")
    if is_detection(args.model):
        if args.defects:
            raise ConfigError(f"--defects is for the anomaly models; {args.model} learns from "
                              "the labelled boxes in its dataset")
        if args.near_duplicates:
            raise ConfigError("--near-duplicates groups image-label datasets; a detection "
                              "dataset's split is made by `defectscope data split` on its groups")
        return _run_train_detection(args)
    if args.template:
        raise ConfigError(f"--template is for the reference model; {args.model} does not compare "
                          "parts with a template")
    if args.defects and is_supervised(args.model):
        raise ConfigError(f"--defects is for the anomaly models; {args.model} learns from the "
                          "labelled defects in its dataset")
    defects = None
    if args.defects:
        from defectscope.data.images.importers import import_defects

        defects = import_defects(args.defects).manifest
    manifest, imported, _ = load_dataset(args)
    if imported is not None and (imported.skipped or imported.warnings):
        print(format_summary(manifest, imported.skipped, imported.warnings), file=sys.stderr)
    if args.near_duplicates:
        manifest = _group_reshots(manifest, progress=not args.quiet)
    if is_supervised(args.model):
        return _run_train_supervised(args, manifest)
    result = train_anomaly(
        manifest, args.model, args.out, options=model_options(args),
        threshold_rule=args.threshold_rule, threshold_target=args.threshold_target,
        val_fraction=args.val_fraction, seed=args.seed, overwrite=args.overwrite,
        progress=not args.quiet, tune=args.tune, tune_budget=args.tune_budget, sharded=sharded,
        defects=defects, max_seconds=60.0 * args.max_minutes if args.max_minutes else None,
        log=lambda message: print(message, file=sys.stderr))
    print(format_summary(result.manifest))
    if result.tuning is not None:
        print(format_tuning(result.tuning.to_dict()))
    print(f"\nTrained {args.model} in {result.fit_seconds:.1f} s; threshold "
          f"{result.calibration.threshold:.6g} ({result.calibration.rule}); model folder: "
          f"{result.out_dir}")
    return 0


def sharded_config(args: argparse.Namespace):
    """``--address``/``--shards`` -> a ``ShardedFitConfig``, or None for a one-machine fit."""
    if args.address is None and args.shards is None:
        return None
    from defectscope.distributed.cluster import ClusterConfig
    from defectscope.distributed.training import ShardedFitConfig

    cluster = ClusterConfig(address=args.address, workers=args.workers,
                            object_store_bytes=1024 * 1024 * 1024)
    return ShardedFitConfig(shards=4 if args.shards is None else args.shards, cluster=cluster)


def format_tuning(tuning: dict) -> str:
    """The candidates tried and the choice, as a small text table."""
    lines = ["\nTuning (held-back goods + {n_synthetic} synthetic / {n_defects} real defects):"
             .format(**tuning["validation"]),
             f"  {'candidate':<24} {'image AUROC':>11} {'pixel AUROC':>11} {'seconds':>8}"]
    for row in tuning["candidates"]:
        if "skipped" in row:
            lines.append(f"  {row['candidate']:<24} skipped: {row['skipped']}")
            continue
        cells = [("-" if row.get(k) is None else f"{row[k]:.3f}")
                 for k in ("image_auroc", "pixel_auroc")]
        mark = "  <- chosen" if row["candidate"] == tuning["chosen"] else ""
        lines.append(f"  {row['candidate']:<24} {cells[0]:>11} {cells[1]:>11} "
                     f"{row['seconds']:>8.0f}{mark}")
    return "\n".join(lines)


def _group_reshots(manifest, progress: bool):
    """The manifest with near-duplicate groups; warns when its existing splits cut a group."""
    from defectscope.data.near_duplicates import group_near_duplicates

    grouped, report = group_near_duplicates(manifest, progress=progress)
    for line in report.lines():
        print(line, file=sys.stderr)
    splits_of: dict[str, set] = {}
    for sample in grouped.samples:
        if sample.group is not None and sample.split is not None:
            splits_of.setdefault(sample.group, set()).add(sample.split)
    cut = sorted(group for group, splits in splits_of.items() if len(splits) > 1)
    if cut:
        print(f"warning: the dataset's own splits cut {len(cut)} set(s) of re-shots across "
              "splits, so test figures will be flattered; re-split it with `defectscope data "
              "split --near-duplicates` and train on that manifest", file=sys.stderr)
    return grouped


def _run_train_supervised(args: argparse.Namespace, manifest) -> int:
    from defectscope.data.images.summary import format_summary
    from defectscope.training.supervised import train_supervised

    result = train_supervised(
        manifest, args.model, args.out, options=model_options(args),
        threshold_rule=args.threshold_rule, threshold_target=args.threshold_target,
        seed=args.seed, overwrite=args.overwrite, progress=not args.quiet,
        log=lambda message: print(message, file=sys.stderr))
    print(format_summary(result.manifest))
    print(f"\nTrained {args.model} in {result.fit_seconds:.1f} s; threshold "
          f"{result.model.threshold:.6g}; model folder: {result.out_dir}")
    return 0


def _run_train_detection(args: argparse.Namespace) -> int:
    from defectscope.cli.detection_data import load_detection
    from defectscope.data.boxes.summary import format_detection_summary
    from defectscope.training.detection import train_detection

    dataset, imported, _ = load_detection(args)
    if imported is not None and (imported.skipped or imported.warnings):
        print(format_detection_summary(dataset, imported.skipped, imported.warnings),
              file=sys.stderr)
    template = None
    if args.template:
        from defectscope.data.image_io import load_image

        template = load_image(args.template)
    result = train_detection(
        dataset, args.model, args.out, options=model_options(args),
        threshold_rule=args.threshold_rule, threshold_target=args.threshold_target,
        seed=args.seed, overwrite=args.overwrite, progress=not args.quiet,
        golden_template=template,
        log=lambda message: print(message, file=sys.stderr))
    print(format_detection_summary(result.dataset))
    print(f"\nTrained {args.model} in {result.fit_seconds:.1f} s; confidence threshold "
          f"{result.model.threshold:.4g} ({result.calibration['rule']}); model folder: "
          f"{result.out_dir}")
    return 0


def _run_test_detection(args: argparse.Namespace, bundle) -> int:
    from defectscope.cli.detection_data import load_detection
    from defectscope.evaluation.detection_run import (evaluate_detection_bundle,
                                                      write_detection_report)

    dataset, _, _ = load_detection(args)
    report, run = evaluate_detection_bundle(bundle, dataset, args.split,
                                            progress=not args.quiet)
    written = write_detection_report(report, run, Path(args.report), plots=not args.no_plots)
    print(format_detection_report(report))
    print(f"\nReport: {written['json']}  HTML: {written['html']}")
    return 0


def format_detection_report(report: dict[str, Any]) -> str:
    """A short, readable summary of a detection test report."""
    cm = report["confusion_matrix"]
    lines = [
        f"{report['model']} on {report['n_images']} images ({report['n_gt_boxes']} true boxes; "
        f"split {report['split']})",
        *(f"  note: {note}" for note in report.get("notes") or ()),
        f"  boxes: mAP@0.5 {_fmt(report['map50'])}   mAP@0.5:0.95 {_fmt(report['map50_95'])}",
        f"  at confidence {_fmt(report['threshold'])}: box precision "
        f"{_fmt(report['box_precision'])}  recall {_fmt(report['box_recall'])}  F1 "
        f"{_fmt(report['box_f1'])}",
        f"  parts (NG if any box): recall {_fmt(report['recall'])}  false-reject rate "
        f"{_fmt(report['false_reject_rate'])}  image AUROC {_fmt(report['image_auroc'])}",
        f"  confusion: TP {cm['tp']}  FP {cm['fp']}  TN {cm['tn']}  FN {cm['fn']}",
        "  AP@0.5 per class: " + ", ".join(f"{name} {_fmt(value)}" for name, value in
                                           report["per_class_ap50"].items()),
        f"  {report['ms_per_image_median']:.1f} ms per image (median)",
    ]
    return "\n".join(lines)


def run_test(args: argparse.Namespace) -> int:
    from defectscope.bundle import load_bundle
    from defectscope.data.image_io import load_image
    from defectscope.evaluation.report import write_report
    from defectscope.evaluation.run import evaluate_bundle

    from defectscope.evaluation.supervised import evaluate_supervised, write_supervised_report
    from defectscope.training.supervised import is_supervised

    bundle = load_bundle(args.model)
    if bundle.info.get("task") == "detection":
        if args.check_leaks:
            raise ConfigError("--check-leaks works on image-label datasets, not on a detection "
                              "model's boxes; leave it out")
        return _run_test_detection(args, bundle)
    manifest, _, _ = load_dataset(args)
    if is_supervised(bundle.info["model"]["name"]):
        evaluate, write = evaluate_supervised, write_supervised_report
    else:
        evaluate, write = evaluate_bundle, write_report
    report, records = evaluate(bundle, manifest, args.split, progress=not args.quiet)
    leak_line = None
    if args.check_leaks:
        from defectscope.evaluation.leaks import check_reshot_leaks

        check = check_reshot_leaks(bundle.manifest(), manifest, args.split,
                                   progress=not args.quiet)
        report["leak_check"] = check.to_dict()
        leak_line = check.line()
    written = write(report, records, Path(args.report), image_loader=load_image,
                    plots=not args.no_plots)
    print(format_report(report))
    if leak_line:
        print(leak_line)
    print(f"\nReport: {written['json']}" + (f"  HTML: {written['html']}" if "html" in written else ""))
    return 0


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def format_report(report: dict[str, Any]) -> str:
    """A short, readable summary of a test report."""
    cm = report["confusion_matrix"]
    lines = [
        f"{report.get('model', 'model')} on {report['n_images']} images "
        f"({report['n_good']} good, {report['n_defect']} defective; split {report.get('split')})",
        f"  image AUROC {_fmt(report['image_auroc'])}   AP {_fmt(report['average_precision'])}   "
        f"F1-max {_fmt(report['f1_max'])}",
        f"  pixel AUROC {_fmt(report['pixel_auroc'])}   AUPRO {_fmt(report.get('aupro'))}",
        f"  at threshold {_fmt(report['threshold'])}: precision {_fmt(report['precision'])}  "
        f"recall {_fmt(report['recall'])}  F1 {_fmt(report['f1'])}  false-reject rate "
        f"{_fmt(report['false_reject_rate'])}  UNSURE {report['n_unsure']}",
        f"  confusion: TP {cm['tp']}  FP {cm['fp']}  TN {cm['tn']}  FN {cm['fn']}",
    ]
    lines += [f"  note: {note}" for note in report.get("notes") or ()]
    if report.get("macro_f1") is not None:
        lines.append(f"  class accuracy {_fmt(report['accuracy'])}   macro F1 "
                     f"{_fmt(report['macro_f1'])}" + (
                         f"   pixel IoU {_fmt(report['pixel_iou'])}   Dice "
                         f"{_fmt(report['pixel_dice'])}" if "pixel_iou" in report else ""))
    if report.get("per_type_recall"):
        lines.append("  recall per type: " + ", ".join(
            f"{name} {_fmt(value)}" for name, value in report["per_type_recall"].items()))
    return "\n".join(lines)


def _runtime_bundle(model_dir: str, backend: str) -> Any:
    """The bundle's checked export on ``backend``, shaped as ``inspect_paths`` reads a bundle."""
    from types import SimpleNamespace

    from defectscope.runtime import RuntimeModel

    model = RuntimeModel.load(model_dir, backend=backend)
    return SimpleNamespace(model=model, model_version=model.model_version,
                           dataset_version=model.dataset_version)


def run_predict(args: argparse.Namespace) -> int:
    from defectscope.bundle import load_bundle
    from defectscope.predict_files import inspect_paths, list_image_paths

    if args.max_pixels < 1:
        raise ConfigError(f"--max-pixels must be at least 1, not {args.max_pixels}")
    bundle = load_bundle(args.model) if args.backend == "torch" else \
        _runtime_bundle(args.model, args.backend)
    listing = list_image_paths(args.inputs)
    for path, reason in listing.skipped:
        print(f"defectscope: skipped {path}: {reason}", file=sys.stderr)
    paths = listing.paths
    heatmaps = Path(args.heatmaps) if args.heatmaps else None
    template = None
    if args.template:
        from defectscope.data.image_io import load_image

        template = load_image(args.template)
    failures = 0
    for row in inspect_paths(bundle, paths, heatmaps, template=template,
                             max_pixels=args.max_pixels, cycle_budget_ms=args.cycle_budget_ms):
        failures += row.get("error") is not None
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            score = "n/a" if row["score"] is None else f"{row['score']:.5g}"
            print(f"{row['verdict']:<7} {score:>10}  {row['path']}"
                  + (f"  ({row['error']})" if row.get("error") else ""), flush=True)
    if failures:
        print(f"defectscope: {failures} image(s) could not be inspected (marked UNSURE or NG "
              "by the fail-safe policy)", file=sys.stderr)
    if listing.skipped:
        print(f"defectscope: {len(listing.skipped)} file(s) skipped (not images)",
              file=sys.stderr)
    return 1 if failures else 0
