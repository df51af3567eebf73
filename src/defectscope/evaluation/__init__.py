"""Evaluation: image and pixel metrics (pure numpy), threshold calibration, and reports.

- ``metrics``: AUROC, ROC/PR curves, average precision, F1, confusion counts, recall per type.
- ``detection``: COCO mAP@0.5 and @0.5:0.95, per-class AP, box precision/recall, image recall.
- ``pixel_metrics``: pixel AUROC and AUPRO over anomaly maps and ground-truth masks.
- ``thresholds``: choose a threshold from validation scores and record how.
- ``report``: every metric of a test run as a JSON-ready dict, written with plots and HTML.
- ``plots`` / ``html_report``: the PNGs and the page (matplotlib loads only when drawing).

>>> from defectscope.evaluation import auroc
>>> auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
0.75
"""

from __future__ import annotations

from defectscope.evaluation.metrics import (
    Confusion,
    auroc,
    average_precision,
    confusion_at,
    f1_max,
    per_type_recall,
    pr_curve,
    roc_curve,
)
from defectscope.evaluation.detection import DetectionReport, evaluate_detections
from defectscope.evaluation.pixel_metrics import aupro, pixel_auroc
from defectscope.evaluation.report import ImageRecord, build_report, write_report
from defectscope.evaluation.thresholds import ThresholdCalibration, calibrate_threshold

__all__ = [
    "Confusion",
    "DetectionReport",
    "ImageRecord",
    "ThresholdCalibration",
    "aupro",
    "auroc",
    "average_precision",
    "build_report",
    "calibrate_threshold",
    "confusion_at",
    "evaluate_detections",
    "f1_max",
    "per_type_recall",
    "pixel_auroc",
    "pr_curve",
    "roc_curve",
    "write_report",
]
