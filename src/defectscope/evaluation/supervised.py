"""Reports for supervised models: the anomaly report plus class and pixel-overlap metrics.

Adds to ``build_report``'s keys: ``accuracy`` (of the predicted class; the pass/fail accuracy
moves to ``binary_accuracy``), ``macro_f1``, ``per_class`` precision/recall/support, the class
``class_confusion_matrix`` (and a PNG of it) and, for the segmenter, ``pixel_iou`` and
``pixel_dice`` of the probability map at 0.5.

>>> report, records = evaluate_supervised(bundle, manifest, "test")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from defectscope.data.image_io import load_mask
from defectscope.data.images.manifest import Manifest
from defectscope.data.stream import load_verified, stream_images
from defectscope.evaluation.report import ImageRecord, build_report, write_report
from defectscope.evaluation.run import UNSPLIT_NOTE, select_for_evaluation
from defectscope.values import GOOD


def class_metrics(true: Sequence[str], pred: Sequence[str], classes: Sequence[str]
                  ) -> dict[str, Any]:
    """Accuracy, macro F1 (over classes with support), per-class precision/recall, confusion."""
    true, pred = np.asarray(true, dtype=object), np.asarray(pred, dtype=object)
    names = list(dict.fromkeys([*classes, *sorted(set(true) | set(pred))]))
    per_class, f1s = {}, []
    for name in names:
        tp = int(np.sum((pred == name) & (true == name)))
        n_pred, n_true = int(np.sum(pred == name)), int(np.sum(true == name))
        precision = tp / n_pred if n_pred else None
        recall = tp / n_true if n_true else None
        per_class[name] = {"precision": precision, "recall": recall, "support": n_true}
        if n_true:
            f1s.append(2 * tp / (n_pred + n_true))
    matrix = [[int(np.sum((true == t) & (pred == p))) for p in names] for t in names]
    return {"accuracy": float(np.mean(true == pred)), "macro_f1": float(np.mean(f1s)),
            "per_class": per_class,
            "class_confusion_matrix": {"labels": names, "rows_true_cols_predicted": matrix}}


def overlap(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray], threshold: float = 0.5
            ) -> tuple[float | None, float | None]:
    """Global IoU and Dice of ``map >= threshold`` against the masks, over all pixels."""
    inter = union = total = 0
    for amap, mask in zip(maps, masks):
        pred, mask = amap >= threshold, mask.astype(bool)
        inter += int(np.logical_and(pred, mask).sum())
        union += int(np.logical_or(pred, mask).sum())
        total += int(pred.sum() + mask.sum())
    return (inter / union if union else None), (2 * inter / total if total else None)


def evaluate_supervised(bundle, manifest: Manifest, split: str = "test", progress: bool = True
                        ) -> tuple[dict, list[ImageRecord]]:
    """Score ``split`` (the bundle's own record of splits decides) and build the report."""
    model = bundle.model
    selection = select_for_evaluation(bundle.manifest(), manifest, split)
    samples = selection.samples
    paths = [manifest.path_of(s) for s in samples]
    records, true, pred, ms = [], [], [], []
    stream = stream_images(range(len(samples)),
                           loader=lambda i: load_verified(paths[i], samples[i].sha256))
    binary = getattr(model.config, "task", None) == "binary"
    for index, image in tqdm(stream, total=len(samples), desc=split, unit="img",
                             disable=not progress):
        sample = samples[index]
        result = model.predict(image)
        ms.append(sum(result.timings.values()))
        mask_path = manifest.mask_path_of(sample)
        mask = load_mask(mask_path, image.shape[:2], image_path=paths[index]) if mask_path else None
        if mask is None and sample.is_good and result.anomaly_map is not None:
            mask = np.zeros(image.shape[:2], dtype=bool)
        records.append(ImageRecord(str(paths[index]), sample.label, result.score,
                                   result.verdict.value, result.anomaly_map, mask))
        true.append(GOOD if sample.is_good else ("defect" if binary else sample.label))
        pred.append(GOOD if result.verdict.value == "OK" else result.defect_type or "defect")
    extra = {"model": bundle.info["model"]["name"], "model_version": bundle.model_version,
             "model_path": str(bundle.path),
             "split": "all unseen (no splits)" if selection.unsplit else split,
             "notes": [UNSPLIT_NOTE] if selection.unsplit else [],
             "trained_on_dataset_version": bundle.dataset_version,
             "evaluated_dataset_version": manifest.version_id,
             "n_left_out_seen_in_training": selection.left_out,
             "calibration": bundle.info.get("calibration", {}),
             "ms_per_image_median": float(np.median(ms))}
    report = build_report(records, model.threshold, extra=extra)
    report["binary_accuracy"] = report.pop("accuracy")
    classes = list(getattr(model, "classes_", (GOOD, "defect")))
    if bundle.info["model"]["name"] == "segmenter":
        true = [GOOD if t == GOOD else "defect" for t in true]
        pred = [GOOD if r.verdict == "OK" else "defect" for r in records]
    report.update(class_metrics(true, pred, classes))
    with_masks = [(r.anomaly_map, r.mask) for r in records
                  if r.anomaly_map is not None and r.mask is not None]
    if with_masks:
        iou, dice = overlap(*zip(*with_masks))
        report.update({"pixel_iou": iou, "pixel_dice": dice})
    return report, records


def plot_class_confusion(report: dict, path: Path) -> Path:
    from defectscope.evaluation.plots import _new_figure, _save

    labels = report["class_confusion_matrix"]["labels"]
    matrix = np.asarray(report["class_confusion_matrix"]["rows_true_cols_predicted"])
    figure = _new_figure(1.0 + 0.7 * len(labels), 0.8 + 0.6 * len(labels))
    axes = figure.add_subplot(1, 1, 1)
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for (i, j), value in np.ndenumerate(matrix):
        axes.text(j, i, str(value), ha="center", va="center",
                  color="white" if value > matrix.max() / 2 else "black")
    figure.tight_layout()
    return _save(figure, path)


def write_supervised_report(report: dict, records, out_json: Path, *, image_loader=None,
                            plots: bool = True) -> dict[str, Path]:
    """``write_report`` plus the class confusion-matrix PNG in ``<stem>_files/``."""
    out_json = Path(out_json)
    png = out_json.parent / f"{out_json.stem}_files" / "confusion_matrix.png"
    if plots:
        report = {**report, "confusion_matrix_png": str(png)}
    written = write_report(report, records, out_json, image_loader=image_loader, plots=plots)
    if plots:
        png.parent.mkdir(parents=True, exist_ok=True)
        written["confusion_matrix"] = plot_class_confusion(report, png)
    return written
