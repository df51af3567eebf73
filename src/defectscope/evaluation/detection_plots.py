"""Pictures of a detection evaluation: boxes drawn on the worst images, and PR curves per class.

Why the worst images: a mAP says how much is wrong, the images say what (a defect type always
missed, boxes too loose, noise taken for copper). True boxes are green, predictions red with
their label and confidence, so a miss is a green box alone and a false alarm a red box alone.
Plots use their own Agg ``Figure`` (never pyplot), as ``evaluation/plots.py`` does.

>>> paths = write_worst_images(truth, found, classes, "report/worst", score_threshold=0.5,
...                            load_image=lambda i: load_image(paths_of[i]))   # doctest: +SKIP
>>> plot_pr_curves(truth, found, classes, "report/pr")                         # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from defectscope.data.boxes.dataset import Box
from defectscope.evaluation.detection import (average_precision_coco, image_errors,
                                              match_detections, precision_recall_points)
from defectscope.evaluation.plots import _new_figure, _save
from defectscope.values import Detection

__all__ = ["draw_boxes", "plot_pr_curves", "write_worst_images"]

TRUTH_COLOUR = (0, 200, 0)
PREDICTION_COLOUR = (230, 0, 0)
_MIN_SIDE = 400  # small images (NEU-DET is 200 px) are enlarged so labels stay readable


def draw_boxes(image: np.ndarray, truth: Sequence[Box], predictions: Sequence[Detection], *,
               scale: int = 1) -> np.ndarray:
    """A new RGB uint8 image (``scale`` times larger, nearest-neighbour) with the true boxes in
    green and the predictions in red, each labelled ``label confidence``; input not changed."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    canvas: np.ndarray = np.ascontiguousarray(array[:, :, :3].astype(np.uint8))
    if scale > 1:
        canvas = cv2.resize(canvas, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    font = max(0.35, min(canvas.shape[:2]) / 1400)
    for box in truth:
        _rectangle(canvas, box.xyxy, scale, TRUTH_COLOUR, None, font)
    for found in predictions:
        _rectangle(canvas, found.box, scale, PREDICTION_COLOUR,
                   f"{found.label} {found.confidence:.2f}", font)
    return canvas


def _rectangle(canvas: np.ndarray, xyxy, scale: int, colour, text: str | None,
               font: float) -> None:
    x1, y1, x2, y2 = (int(round(v * scale)) for v in xyxy)
    cv2.rectangle(canvas, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), colour, 1)
    if text:
        (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
        top = y1 - height - base if y1 - height - base >= 0 else y2 + 1
        cv2.rectangle(canvas, (x1, top), (x1 + width, top + height + base), colour, -1)
        cv2.putText(canvas, text, (x1, top + height), cv2.FONT_HERSHEY_SIMPLEX, font,
                    (255, 255, 255), 1, cv2.LINE_AA)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80] or "image"


def write_worst_images(ground_truth: Sequence[Sequence[Box]],
                       predictions: Sequence[Sequence[Detection]], classes: Sequence[str],
                       out_dir: str | os.PathLike[str], *, score_threshold: float,
                       load_image: Callable[[int], np.ndarray], names: Sequence[str] | None = None,
                       n: int = 8) -> list[Path]:
    """PNGs of the ``n`` images with the most misses (false negatives + false positives at
    ``score_threshold``, IoU 0.5; ties: the earlier image), predictions below the threshold not
    drawn. Images without a miss are not written. ``load_image(i)`` returns image ``i``;
    ``names[i]`` (e.g. its dataset path) goes into the file name. Returns the written paths."""
    errors = image_errors(ground_truth, predictions, classes, score_threshold=score_threshold)
    misses = [(fp + fn, index) for index, (fp, fn) in enumerate(errors) if fp + fn]
    chosen = sorted(misses, key=lambda item: (-item[0], item[1]))[:n]
    out = Path(out_dir)
    written = []
    for rank, (count, index) in enumerate(chosen, 1):
        image = np.asarray(load_image(index))
        scale = max(1, int(np.ceil(_MIN_SIDE / max(1, min(image.shape[:2])))))
        kept = [p for p in predictions[index] if p.confidence >= score_threshold]
        drawn = draw_boxes(image, ground_truth[index], kept, scale=scale)
        fp, fn = errors[index]
        stem = _safe_name(Path(names[index]).stem if names else str(index))
        path = out / f"worst_{rank:02d}_{stem}_fn{fn}_fp{fp}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(drawn).save(path)
        written.append(path)
    return written


def plot_pr_curves(ground_truth: Sequence[Sequence[Box]],
                   predictions: Sequence[Sequence[Detection]], classes: Sequence[str],
                   out_dir: str | os.PathLike[str]) -> list[Path]:
    """One precision-recall PNG per class with ground truth (``pr_<class>.png``): the raw curve
    at IoU 0.5 and the interpolated envelope COCO averages, with AP@0.5 in the legend."""
    matches = match_detections(ground_truth, predictions, classes)
    out = Path(out_dir)
    written = []
    for label, m in matches.items():
        if m.n_gt == 0:
            continue
        precision, recall = precision_recall_points(m.matched[0], m.n_gt)
        ap = average_precision_coco(m.matched[0], m.n_gt)
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        figure = _new_figure()
        axes = figure.add_subplot()
        axes.plot(np.r_[0.0, recall], np.r_[1.0 if len(precision) else 0.0, precision],
                  linewidth=1, alpha=0.5, label="raw")
        axes.plot(recall, envelope, drawstyle="steps-post", label=f"AP@0.5 {ap:.4f}")
        axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
                 title=f"{label} ({m.n_gt} boxes, {len(m.scores)} predictions)")
        axes.legend(loc="lower left")
        written.append(_save(figure, out / f"pr_{_safe_name(label)}.png"))
    return written
