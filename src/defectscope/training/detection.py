"""Train a box-finding model (reference comparison, detector) from a detection dataset and save a
bundle.

The split contract is the other models': a dataset without splits gets the seeded, group-aware
70/15/15 split, recorded in the bundle's dataset file. The model learns from ``train``, selects
its checkpoint and calibrates its confidence threshold on ``val``, and never reads a ``test``
image. A dataset that arrives with only ``train`` and ``val`` (YOLO's given split) keeps them:
``val`` is then the split to report, so the model selects on its own slice of ``train`` and the
threshold is calibrated on training images, never on ``val``.

>>> result = train_detection(dataset, "reference", "models/pcb")  # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from defectscope.bundle import Reference, save_bundle
from defectscope.data.boxes.dataset import DetectionDataset, DetectionSample, load_pair
from defectscope.data.boxes.splits import split_detection
from defectscope.errors import AlignmentError, ConfigError, DataError
from defectscope.evaluation.detection import match_detections
from defectscope.evaluation.detection_run import predict_samples
from defectscope.evaluation.thresholds import calibrate_threshold
from defectscope.models.box_base import DetectionModel
from defectscope.models.registry import create_model, model_class
from defectscope.training.anomaly import N_REFERENCES
from defectscope.values import Detection

N_CALIBRATION_FROM_TRAIN = 200  # training images used to calibrate when no val split may be


@dataclass(frozen=True)
class DetectionTrainResult:
    model: Any
    dataset: DetectionDataset
    out_dir: Path
    fit_seconds: float
    calibration: Mapping[str, Any]
    messages: tuple[str, ...]


def is_detection(model_name: str) -> bool:
    return issubclass(model_class(model_name), DetectionModel)


def detection_splits(dataset: DetectionDataset, seed: int = 0
                     ) -> tuple[DetectionDataset, str, list[str]]:
    """The dataset with splits, the split the model may calibrate on, and messages saying why."""
    present = {s.split for s in dataset.samples}
    messages: list[str] = []
    if None in present:
        dataset = split_detection(dataset, seed=seed)
        messages.append(f"split the dataset 70/15/15 by group (seed {seed}) because it has no "
                        "splits")
        present = {s.split for s in dataset.samples}
    if "train" not in present:
        raise DataError("the dataset has no 'train' split to learn from; re-import it without "
                        "its splits to get the 70/15/15 split")
    calibrate_on = "val" if "test" in present and "val" in present else "train"
    if calibrate_on == "train":
        messages.append("no validation split beside the reported one: the model selects and "
                        "calibrates on training images; the other split stays unseen")
    return dataset, calibrate_on, messages


def calibrate_confidence(samples: Sequence[DetectionSample],
                         predictions: Sequence[Sequence[Detection]], classes: Sequence[str], *,
                         rule: str = "auto", target: float | None = None) -> dict[str, Any]:
    """A confidence threshold from calibration predictions, with the record of how.

    Where good images exist, the image rules of the anomaly models apply to the image score
    (best box confidence; ``auto``: every defective image caught, or a 1% false-reject quantile
    without defects). When every image has boxes (no good part to learn a false-reject rate
    from), the threshold maximises box-level F1 at IoU 0.5.
    """
    scores = np.array([max((d.confidence for d in p), default=0.0) for p in predictions])
    is_defect = np.array([not s.is_good for s in samples], dtype=bool)
    if (~is_defect).any():  # good images: the image rules (a false-reject quantile at least)
        record = calibrate_threshold(scores, is_defect, rule=rule, target=target).to_dict()
        record["threshold"] = float(np.clip(record["threshold"], 0.0, 1.0))
        return record
    truth = [s.boxes for s in samples]
    confidences = np.unique([d.confidence for p in predictions for d in p])
    if not len(confidences):
        return {"rule": "fixed", "threshold": 0.5,
                "note": "no detection on the calibration images; 0.5 kept"}
    # Match once (COCO ranking, IoU 0.5); each candidate threshold then only counts.
    matches = match_detections(truth, predictions, classes).values()
    ranked = np.concatenate([m.scores for m in matches])
    correct = np.concatenate([m.matched[0] for m in matches])
    n_gt = sum(m.n_gt for m in matches)
    best: dict[str, Any] = {}
    for threshold in np.unique(np.quantile(confidences, np.linspace(0.0, 1.0, 41))):
        kept = ranked >= threshold
        tp = int(np.count_nonzero(correct & kept))
        fp, fn = int(np.count_nonzero(kept)) - tp, n_gt - tp
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        if not best or f1 > best["achieved_f1"]:
            best = {"threshold": float(threshold), "achieved_f1": f1,
                    "achieved_precision": tp / (tp + fp) if tp + fp else 0.0,
                    "achieved_recall": tp / n_gt if n_gt else 0.0,
                    "achieved_image_recall": float(np.mean(scores[is_defect] >= threshold))}
    return {"rule": "box_f1_max", "target": None, "n_images": len(samples),
            "n_boxes": int(sum(len(t) for t in truth)), **best,
            "note": "every calibration image has defects: the confidence of best box F1 at "
                    "IoU 0.5"}


def detection_references(model: DetectionModel, dataset: DetectionDataset,
                         samples: Sequence[DetectionSample], n: int = N_REFERENCES
                         ) -> list[Reference]:
    """A few calibration images (those with boxes first, then by path) with the scores the model
    gives them, stored so a reloaded or exported model can prove it still scores the same.

    A model that compares parts with a template keeps each image's own template beside it (the
    bundle's golden template need not belong to these images). A pair that cannot be aligned is
    passed over: it has no score to check.
    """
    references: list[Reference] = []
    for sample in sorted(samples, key=lambda s: (s.is_good, s.path)):
        if len(references) >= n:
            break
        image, template = load_pair(dataset, sample)
        if not model.needs_template:
            template = None
        try:
            score = (model.anomaly(image)[0] if template is None
                     else model.anomaly(image, template)[0])
        except AlignmentError:
            continue
        references.append(Reference(image, float(score), sample.path, template))
    return references


def train_detection(
    dataset: DetectionDataset,
    model_name: str,
    out_dir: str | Path,
    *,
    options: Mapping[str, Any] | None = None,
    threshold_rule: str = "auto",
    threshold_target: float | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    golden_template: np.ndarray | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> DetectionTrainResult:
    """Fit on train, calibrate on val (or training images), write the bundle to ``out_dir``.

    ``golden_template`` (reference model) is the product's defect-free image, stored in the
    bundle so parts can be inspected without a template of their own (the line, the service).
    """
    model = create_model(model_name, **dict(options or {}))
    if golden_template is not None and not hasattr(model, "set_golden_template"):
        raise ConfigError(f"{model_name} does not compare parts with a template; leave out "
                          "--template")
    if model.needs_template and not dataset.has_templates:
        raise DataError(f"{model_name} compares each part with its template, but this dataset "
                        "has images without one (DeepPCB pairs have them); use --model detector")
    dataset, calibrate_on, messages = detection_splits(dataset, seed)
    for message in messages:
        log(message)
    train = dataset.select("train")
    val = dataset.select("val") if calibrate_on == "val" else ()
    log(f"training {model_name} on {len(train)} images ({sum(len(s.boxes) for s in train)} "
        f"boxes); the test split is not read")
    started = time.perf_counter()
    model.fit(dataset.with_samples(train), dataset.with_samples(val), progress=progress, log=log)
    fit_seconds = time.perf_counter() - started
    if golden_template is not None:
        model.set_golden_template(golden_template)

    # Without a val split the model chose its checkpoint on a slice of train it did not learn
    # from; calibrate there too (a seeded subsample of train only if it kept no such slice).
    calibration_samples = val or tuple(getattr(model, "selection_samples_", ())) or tuple(
        train[:: max(1, len(train) // N_CALIBRATION_FROM_TRAIN)])
    predictions, _ = predict_samples(model, dataset, calibration_samples, "calibrate", progress)
    calibration = calibrate_confidence(calibration_samples, predictions, dataset.classes,
                                       rule=threshold_rule, target=threshold_target)
    calibration["calibrated_on"] = calibrate_on
    model.set_threshold(calibration["threshold"], calibration)
    log(f"confidence threshold {calibration['threshold']:.4g} by rule {calibration['rule']} on "
        f"{len(calibration_samples)} {calibrate_on} images")
    metrics = {"fit_seconds": round(fit_seconds, 3), "n_train_images": len(train)}
    out = save_bundle(model, out_dir, manifest=dataset, metrics=metrics,
                      references=detection_references(model, dataset, calibration_samples),
                      extra={"classes": list(dataset.classes), "task": "detection",
                             "calibrated_on": calibrate_on},
                      overwrite=overwrite)
    return DetectionTrainResult(model, dataset, out, fit_seconds, calibration, tuple(messages))
