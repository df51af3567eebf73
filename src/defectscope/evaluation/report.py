"""Evaluation reports: every metric of one test run in a JSON-ready dict, then on disk.

``build_report`` is pure: records in, plain dict out (only ``str``, ``int``, ``float``, ``None``,
lists and dicts), so it can be logged, compared in tests or sent over HTTP. ``write_report`` puts
it on disk: the JSON (written atomically, so a crash never leaves half a file), the PNG plots in
a ``<stem>_files/`` folder beside it, and ``<stem>.html`` next to the JSON.

>>> records = [ImageRecord("a.png", "good", 0.1, "OK"), ImageRecord("b.png", "dent", 0.9, "NG")]
>>> build_report(records, threshold=0.5)["image_auroc"]
1.0
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from defectscope.errors import ConfigError
from defectscope.fileio import write_text_atomic
from defectscope.evaluation.metrics import (
    auroc,
    average_precision,
    confusion_at,
    f1_max,
    per_type_recall,
)
from defectscope.evaluation.pixel_metrics import aupro, pixel_auroc
from defectscope.values import GOOD

__all__ = ["ImageRecord", "build_report", "write_report"]


@dataclass(frozen=True, eq=False)
class ImageRecord:
    """One evaluated image: its ground truth (``label``, ``mask``) and the model's answer."""

    path: str
    label: str
    score: float
    verdict: str
    anomaly_map: np.ndarray | None = None
    mask: np.ndarray | None = None


def _jsonable(value: Any) -> Any:
    """``value`` made of plain JSON types: numpy scalars and arrays, paths and records with
    ``to_dict`` are converted; non-finite floats become ``None`` (JSON has no NaN)."""
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (str, type(None))):
        return value.value if hasattr(value, "value") else value  # a str Enum gives its value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise ConfigError(f"cannot put a {type(value).__name__} into a JSON report")


def _pixel_inputs(records: Sequence[ImageRecord]) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Maps and masks for pixel metrics. A good image without a mask is known to be defect-free,
    so it gets an all-zero mask (as in MVTec AD, whose good images have no mask files); a
    defective image without a mask is left out."""
    with_map = [r for r in records if r.anomaly_map is not None]
    if not any(r.mask is not None for r in with_map):
        return [], []
    maps, masks = [], []
    for record in with_map:
        mask = record.mask
        if mask is None and record.label == GOOD:
            mask = np.zeros(np.shape(record.anomaly_map), dtype=bool)
        maps.append(np.asarray(record.anomaly_map))
        masks.append(mask)
    return maps, masks


def build_report(
    records: Sequence[ImageRecord], threshold: float, *, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """All image and pixel metrics of ``records`` at ``threshold``, as a JSON-ready dict.

    Undefined metrics are ``None``: AUROC with one class, average precision and F1-max without
    defects, pixel metrics when no record has both an anomaly map and a mask. Images with a
    non-finite score (unreadable, failed) are left out of the score metrics and counted in
    ``n_nonfinite_scores``; ``n_unsure`` counts verdicts ``"UNSURE"``. ``extra`` (model name,
    dataset version, calibration record...) is added as is; its keys must not clash with metrics.
    """
    if not records:
        raise ConfigError("no records to report on")
    scores = np.array([float(r.score) for r in records], dtype=np.float64)
    labels = [str(r.label) for r in records]
    finite = np.isfinite(scores)
    if not finite.any():
        raise ConfigError("no record has a finite score; nothing to evaluate")
    scored, scored_labels = scores[finite], [lab for lab, ok in zip(labels, finite) if ok]
    is_defect = np.array([label != GOOD for label in scored_labels], dtype=bool)

    confusion = confusion_at(scored, is_defect, threshold)
    best_f1, best_threshold = f1_max(scored, is_defect) if is_defect.any() else (None, None)
    maps, masks = _pixel_inputs(records)
    verdicts = [getattr(r.verdict, "value", r.verdict) for r in records]
    report: dict[str, Any] = {
        "threshold": float(threshold),
        "image_auroc": auroc(scored, is_defect),
        "pixel_auroc": pixel_auroc(maps, masks) if maps else None,
        "aupro": aupro(maps, masks) if maps else None,
        "average_precision": average_precision(scored, is_defect),
        "f1": confusion.f1,
        "precision": confusion.precision,
        "recall": confusion.recall,
        "f1_max": best_f1,
        "f1_max_threshold": best_threshold,
        "false_reject_rate": confusion.false_reject_rate,
        "escape_rate": confusion.escape_rate,
        "accuracy": confusion.accuracy,
        "n_images": len(records),
        "n_good": int(sum(label == GOOD for label in labels)),
        "n_defect": int(sum(label != GOOD for label in labels)),
        "n_unsure": int(sum(verdict == "UNSURE" for verdict in verdicts)),
        "n_nonfinite_scores": int((~finite).sum()),
        "confusion_matrix": confusion.to_dict(),
        "per_type_recall": per_type_recall(scored, scored_labels, threshold),
        "per_type_counts": dict(sorted(Counter(labels).items())),
        "threshold_tradeoff": threshold_tradeoff(scored, is_defect, threshold),
    }
    clashes = sorted(set(extra or {}) & set(report))
    if clashes:
        raise ConfigError(f"extra keys {clashes} clash with report metrics; rename them")
    report.update(_jsonable(dict(extra or {})))
    return _jsonable(report)


TRADEOFF_FALSE_REJECT_RATES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


def threshold_tradeoff(scores: np.ndarray, is_defect: np.ndarray, threshold: float
                       ) -> list[dict[str, Any]]:
    """Candidate thresholds and what each costs on these scores: the calibrated one, the F1-max
    one, and those that reject a given share of the good images. Sorted by threshold.

    >>> rows = threshold_tradeoff(np.array([0.1, 0.2, 0.9]), np.array([False, False, True]), 0.5)
    >>> [(r["which"], r["false_reject_rate"], r["escape_rate"]) for r in rows][0]
    ('calibrated', 0.0, 0.0)
    """
    if not is_defect.any() or is_defect.all():
        return []
    good = np.sort(scores[~is_defect])[::-1]
    points = {"calibrated": float(threshold)}
    points["f1_max"] = float(f1_max(scores, is_defect)[1])
    for rate in TRADEOFF_FALSE_REJECT_RATES:
        k = int(np.floor(rate * good.size))
        if k >= 1:
            points[f"false rejects <= {rate:g}"] = float(good[k - 1])  # k goods at or above
    rows = []
    for which, value in points.items():
        c = confusion_at(scores, is_defect, value)
        rows.append({"which": which, "threshold": value, "false_reject_rate": c.false_reject_rate,
                     "escape_rate": c.escape_rate, "recall": c.recall, "f1": c.f1})
    return sorted(rows, key=lambda row: row["threshold"])


def _plot_all(
    report: Mapping[str, Any],
    records: Sequence[ImageRecord],
    folder: Path,
    image_loader: Callable[[str], np.ndarray] | None,
) -> dict[str, Path]:
    from defectscope.evaluation import plots  # matplotlib is imported only when plots are drawn

    threshold = float(report["threshold"])
    scored = [r for r in records if math.isfinite(r.score)]
    scores = [r.score for r in scored]
    labels = [r.label for r in scored]
    is_defect = [label != GOOD for label in labels]
    drawn = {
        "roc": plots.plot_roc(scores, is_defect, folder / "roc.png"),
        "pr": plots.plot_pr(scores, is_defect, folder / "pr.png"),
        "histograms": plots.plot_score_histograms(scores, labels, threshold, folder / "histograms.png"),
        "caught": plots.plot_caught_overlays(records, threshold, image_loader,
                                             folder / "caught.png"),
        "overlays": plots.plot_worst_overlays(records, threshold, image_loader, folder / "worst.png"),
        "tradeoff": plots.plot_tradeoff(scores, is_defect, threshold, folder / "tradeoff.png"),
    }
    return {name: path for name, path in drawn.items() if path is not None}


def write_report(
    report: Mapping[str, Any],
    records: Sequence[ImageRecord],
    out_json: Path,
    *,
    image_loader: Callable[[str], np.ndarray] | None = None,
    plots: bool = True,
) -> dict[str, Path]:
    """Write ``out_json``, the plots in ``<stem>_files/`` beside it, and ``<stem>.html``.

    Returns the paths written, keyed ``"json"``, ``"html"`` and, when drawn, ``"roc"``, ``"pr"``,
    ``"histograms"``, ``"caught"`` (heatmaps of defects caught), ``"overlays"`` (heatmaps of
    the misses). ``image_loader(path)`` gives the image under an overlay.

    >>> write_report(report, records, Path("out/report.json"))  # doctest: +SKIP
    {'roc': PosixPath('out/report_files/roc.png'), ..., 'html': PosixPath('out/report.html')}
    """
    from defectscope.evaluation.html_report import render_html

    out_json = Path(out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    folder = out_json.parent / f"{out_json.stem}_files"
    written = _plot_all(report, records, folder, image_loader) if plots else {}
    text = json.dumps(_jsonable(report), indent=2, allow_nan=False)
    write_text_atomic(out_json, text + "\n")
    html_path = out_json.with_name(f"{out_json.stem}.html")
    render_html(dict(report), written, html_path)
    return {**written, "json": out_json, "html": html_path}
