"""Score a detection dataset's split with a box-finding bundle and write its report.

The bundle's own dataset record decides which images are test images (matched by content hash),
as for the other models: an image the model trained or calibrated on is never scored as a test
image. A bundle trained on a dataset with only ``train`` and ``val`` (YOLO's given split)
calibrated on a slice of ``train``, so its ``val`` is the reported split: asking for ``test``
then scores ``val`` and says so.

The report has the COCO box metrics (``map50``, ``map50_95``, per-class AP, precision/recall/F1
of boxes at the threshold) and the image-level pass/fail view (a part with any box at or above the
threshold is NG): ``recall`` (defective images caught), ``image_auroc`` of the best box
confidence where good images exist, and the image confusion matrix.

>>> report, run = evaluate_detection_bundle(bundle, dataset, "test")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from defectscope.data.boxes.dataset import DetectionDataset, DetectionSample, load_pair
from defectscope.errors import DataError
from defectscope.evaluation.detection import evaluate_detections
from defectscope.evaluation.metrics import auroc
from defectscope.values import Detection

if TYPE_CHECKING:  # the models import torch; evaluation needs only their detect()
    from defectscope.models.box_base import DetectionModel


@dataclass(frozen=True)
class DetectionRun:
    """What was scored: the samples, every detection above the model's floor, and the dataset."""

    dataset: DetectionDataset
    samples: tuple[DetectionSample, ...]
    predictions: tuple[tuple[Detection, ...], ...]


def predict_samples(model: DetectionModel, dataset: DetectionDataset,
                    samples: Sequence[DetectionSample], desc: str = "predict",
                    progress: bool = True) -> tuple[list[list[Detection]], list[float]]:
    """Every detection above the model's floor for each sample, and milliseconds per image."""
    predictions, milliseconds = [], []
    for sample in tqdm(samples, desc=desc, unit="img", disable=not progress):
        image, template = load_pair(dataset, sample)
        started = time.perf_counter()
        predictions.append(model.detect(image, template))
        milliseconds.append((time.perf_counter() - started) * 1e3)
    return predictions, milliseconds


UNSPLIT = "all unseen (no splits)"


def select_split(bundle_dataset: DetectionDataset | None, dataset: DetectionDataset, split: str,
                 calibrated_on: str | None = None) -> tuple[tuple[DetectionSample, ...], str, int]:
    """(samples, split actually scored, images left out because the bundle saw them)."""
    known = {s.sha256: s.split for s in bundle_dataset.samples} if bundle_dataset else {}
    recorded = {s.path: known.get(s.sha256, s.split) for s in dataset.samples}
    if (split == "test" and "test" not in recorded.values()
            and all(s.split is None for s in dataset.samples)):
        # a new batch without splits: every image the bundle did not train or calibrate on
        chosen = tuple(s for s in dataset.samples if recorded[s.path] not in ("train", "val"))
        if not chosen:
            raise DataError(f"{dataset.root}: every image has been used to train or calibrate "
                            "this model; nothing unseen is left to test on")
        return chosen, UNSPLIT, len(dataset.samples) - len(chosen)
    if split == "test" and "test" not in recorded.values() and calibrated_on == "train":
        split = "val"  # the given val split stayed unseen: it is the reported split
    chosen = tuple(s for s in dataset.samples if recorded[s.path] == split)
    left_out = sum(1 for s in dataset.samples if s.split == split and recorded[s.path] != split)
    if not chosen:
        raise DataError(f"no images in the {split!r} split of {dataset.root}; the bundle's dataset "
                        "record decides the split of images it has seen")
    return chosen, split, left_out


def image_view(samples: Sequence[DetectionSample], predictions: Sequence[Sequence[Detection]],
               threshold: float) -> dict[str, Any]:
    """The pass/fail view: a part is NG when any box reaches the threshold."""
    scores = np.array([max((d.confidence for d in p), default=0.0) for p in predictions])
    defect = np.array([not s.is_good for s in samples], dtype=bool)
    flagged = scores >= threshold
    tp, fn = int(np.sum(flagged & defect)), int(np.sum(~flagged & defect))
    fp, tn = int(np.sum(flagged & ~defect)), int(np.sum(~flagged & ~defect))
    both = defect.any() and (~defect).any()
    return {
        "image_auroc": auroc(scores, defect) if both else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "precision": tp / (tp + fp) if tp + fp else None,
        "false_reject_rate": fp / (fp + tn) if fp + tn else None,
        "confusion_matrix": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
        "n_good": int((~defect).sum()), "n_defect": int(defect.sum()),
    }


def evaluate_detection_bundle(bundle, dataset: DetectionDataset, split: str = "test",
                              progress: bool = True) -> tuple[dict[str, Any], DetectionRun]:
    """The report for one split, with the bundle's identity and threshold record in it."""
    samples, scored, left_out = select_split(bundle.manifest(), dataset, split,
                                             bundle.info.get("calibrated_on"))
    predictions, milliseconds = predict_samples(bundle.model, dataset, samples, "test", progress)
    threshold = float(bundle.model.threshold)
    boxes = evaluate_detections([s.boxes for s in samples], predictions, dataset.classes,
                                score_threshold=threshold).to_dict()
    view = image_view(samples, predictions, threshold)
    report = {
        "model": bundle.info["model"]["name"], "model_version": bundle.model_version,
        "model_path": str(bundle.path), "trained_on_dataset_version": bundle.dataset_version,
        "evaluated_dataset_version": dataset.version_id, "split": scored,
        "n_left_out_seen_in_training": left_out, "threshold": threshold,
        "notes": (["the dataset has no splits: every image the model did not train or "
                   "calibrate on was scored"] if scored == UNSPLIT else []),
        "calibration": bundle.info.get("calibration", {}), "n_images": len(samples),
        "map50": boxes.pop("map50"), "map50_95": boxes.pop("map50_95"),
        "box_precision": boxes.pop("precision"), "box_recall": boxes.pop("recall"),
        "box_f1": boxes.pop("f1"), **view, "pixel_auroc": None, "f1": None,
        "ms_per_image_median": float(np.median(milliseconds)),
        "ms_per_image_p95": float(np.percentile(milliseconds, 95)), **boxes,
    }
    if view["precision"] is not None and view["recall"] is not None and (
            view["precision"] + view["recall"]):
        report["f1"] = 2 * view["precision"] * view["recall"] / (view["precision"] +
                                                                 view["recall"])
    return report, DetectionRun(dataset, samples, tuple(tuple(p) for p in predictions))


def write_detection_report(report: Mapping[str, Any], run: DetectionRun, out_json: Path, *,
                           plots: bool = True,
                           image_loader: Callable[[int], np.ndarray] | None = None
                           ) -> dict[str, Path]:
    """``out_json``, the worst images with boxes drawn and PR curves per class in
    ``<stem>_files/``, and ``<stem>.html``."""
    from defectscope.evaluation.detection_plots import plot_pr_curves, write_worst_images
    from defectscope.evaluation.html_report import render_html
    from defectscope.evaluation.report import _jsonable
    from defectscope.fileio import write_text_atomic

    out_json = Path(out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if plots:
        folder = out_json.parent / f"{out_json.stem}_files"
        truth = [s.boxes for s in run.samples]
        load = image_loader or (lambda i: load_pair(run.dataset, run.samples[i])[0])
        worst = write_worst_images(truth, run.predictions, run.dataset.classes, folder / "worst",
                                   score_threshold=float(report["threshold"]), load_image=load,
                                   names=[s.path for s in run.samples])
        curves = plot_pr_curves(truth, run.predictions, run.dataset.classes, folder)
        written.update({f"worst {i + 1}": p for i, p in enumerate(worst)})
        written.update({p.stem: p for p in curves})
    write_text_atomic(out_json, json.dumps(_jsonable(dict(report)), indent=2) + "\n")
    html_path = out_json.with_name(f"{out_json.stem}.html")
    render_html(dict(report), written, html_path)
    return {**written, "json": out_json, "html": html_path}
