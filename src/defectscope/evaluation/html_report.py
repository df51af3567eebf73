"""One static HTML page for an evaluation report: tables and plots, no JavaScript, no CDN.

The page opens from disk or any static file server; plots are linked by paths relative to the
page, so the page and its ``<stem>_files/`` folder can be moved together. Every piece of text is
escaped, since labels, paths and model names come from users.

>>> plots = {"roc": Path("r_files/roc.png")}
>>> render_html(build_report(records, 0.5), plots, Path("r.html"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from typing import Any, Iterable, Mapping

__all__ = ["render_html"]

_HEADLINE = (
    ("map50", "mAP@0.5 (boxes)"),
    ("map50_95", "mAP@0.5:0.95 (boxes)"),
    ("image_auroc", "Image AUROC"),
    ("pixel_auroc", "Pixel AUROC"),
    ("aupro", "AUPRO (FPR <= 0.3)"),
    ("average_precision", "Average precision"),
    ("f1", "F1 at threshold"),
    ("precision", "Precision"),
    ("recall", "Recall"),
    ("f1_max", "Best F1"),
    ("f1_max_threshold", "Best-F1 threshold"),
    ("false_reject_rate", "False-reject rate"),
    ("escape_rate", "Escape rate"),
    ("accuracy", "Accuracy"),
    ("n_images", "Images"),
    ("n_good", "Good images"),
    ("n_defect", "Defective images"),
    ("n_unsure", "UNSURE verdicts"),
    ("n_nonfinite_scores", "Images without a finite score"),
)
_SECTIONS = {"threshold", "calibration", "confusion_matrix", "per_type_recall", "per_type_counts",
             "leak_check", "threshold_tradeoff", "tuning", "notes"}
_PLOT_TITLES = {
    "roc": "ROC curve",
    "pr": "Precision-recall curve",
    "histograms": "Score histograms",
    "caught": "Defects caught: the anomaly map over each image, the true defect outlined in white",
    "overlays": "Misses: escapes, then false rejects (or, without any, the closest calls)",
    "tradeoff": "False rejects against escapes",
}
_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.7em; text-align: left; }
th { background: #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #ddd; margin-bottom: 1em; }
"""


def _text(value: Any) -> str:
    """A cell's text: floats to 4 decimals, ``None`` as n/a, containers as compact JSON-ish text."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(value, default=str)
    return str(value)


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = "".join(f"<th>{escape(str(cell))}</th>" for cell in header)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            numeric = isinstance(cell, (int, float)) and not isinstance(cell, bool)
            css = ' class="num"' if numeric else ""
            cells.append(f"<td{css}>{escape(_text(cell))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _headline(report: Mapping[str, Any]) -> str:
    rows = [(title, report.get(key)) for key, title in _HEADLINE if key in report]
    return "<h2>Headline metrics</h2>" + _table(("Metric", "Value"), rows)


def _threshold(report: Mapping[str, Any]) -> str:
    parts = ["<h2>Threshold</h2>", _table(("Threshold",), [(report.get("threshold"),)])]
    calibration = report.get("calibration")
    if isinstance(calibration, Mapping):
        parts.append("<h3>Calibration</h3>")
        parts.append(_table(("Field", "Value"), calibration.items()))
    return "".join(parts)


def _tradeoff(report: Mapping[str, Any]) -> str:
    rows = report.get("threshold_tradeoff") or []
    if not rows:
        return ""
    keys = ("which", "threshold", "false_reject_rate", "escape_rate", "recall", "f1")
    return ("<h3>Candidate thresholds on these images</h3>"
            + _table(("Threshold", "Value", "False-reject rate", "Escape rate", "Recall", "F1"),
                     [[row.get(k) for k in keys] for row in rows]))


def _tuning(report: Mapping[str, Any]) -> str:
    """The candidates the tuner compared on held-back goods and defects, and its choice."""
    tuning = report.get("tuning")
    if not isinstance(tuning, Mapping) or not tuning.get("candidates"):
        return ""
    rows = [(row.get("candidate"), row.get("image_auroc"), row.get("pixel_auroc"),
             row.get("seconds"), row.get("skipped") or
             ("chosen" if row.get("candidate") == tuning.get("chosen") else ""))
            for row in tuning["candidates"]]
    validation = tuning.get("validation", {})
    text = (f"<h2>Self-tuning</h2><p>Chosen: {escape(str(tuning.get('chosen')))}, judged on "
            f"{validation.get('n_goods')} held-back good images, {validation.get('n_synthetic')} "
            f"synthetic and {validation.get('n_defects')} real defects "
            f"({escape(str(tuning.get('selection', '')))}).</p>")
    return text + _table(("Candidate", "Image AUROC", "Pixel AUROC", "Seconds", ""), rows)


def _confusion(report: Mapping[str, Any]) -> str:
    counts = report.get("confusion_matrix") or {}
    rows = [
        ("defective", counts.get("tp"), counts.get("fn")),
        ("good", counts.get("fp"), counts.get("tn")),
    ]
    header = ("actual \\ predicted", "NG (reject)", "OK (pass)")
    return "<h2>Confusion matrix</h2>" + _table(header, rows)


def _per_type(report: Mapping[str, Any]) -> str:
    recalls = report.get("per_type_recall") or {}
    counts = report.get("per_type_counts") or {}
    rows = [(kind, counts.get(kind), recall) for kind, recall in recalls.items()]
    return "<h2>Recall per defect type</h2>" + _table(("Defect type", "Images", "Recall"), rows)


def _leak_check(report: Mapping[str, Any]) -> str:
    """``test --check-leaks``: how many evaluated images are re-shots of seen ones, and which."""
    check = report.get("leak_check")
    if not isinstance(check, Mapping):
        return ""
    found, total = check.get("n_with_reshot", 0), check.get("n_evaluated", 0)
    verdict = ("figures are flattered: re-split with <code>defectscope data split "
               "--near-duplicates</code> and retrain" if found else "no leak found")
    text = (f"<h2>Leak check</h2><p>{found} of {total} evaluated images are re-shots of a spot "
            f"the model trained or calibrated on ({check.get('n_seen', 0)} seen images "
            f"compared): {verdict}.</p>")
    examples = check.get("examples") or []
    if examples:
        text += _table(("Evaluated image", "Re-shot the model saw"), examples)
    return text


def _notes(report: Mapping[str, Any]) -> str:
    """What the reader must know before reading the figures (e.g. which images were scored)."""
    notes = report.get("notes") or []
    return "".join(f'<p class="note"><strong>Note:</strong> {escape(str(n))}</p>' for n in notes)


def _details(report: Mapping[str, Any]) -> str:
    """Whatever else the report carries (model name, dataset version...), in one table."""
    known = {key for key, _ in _HEADLINE} | _SECTIONS
    rows = [(key, value) for key, value in report.items() if key not in known]
    return "<h2>Run details</h2>" + _table(("Field", "Value"), rows) if rows else ""


def _plots(plot_paths: Mapping[str, Path], html_dir: Path) -> str:
    parts = []
    for name, path in plot_paths.items():
        relative = Path(os.path.relpath(Path(path).resolve(), html_dir.resolve())).as_posix()
        title = _PLOT_TITLES.get(name, name)
        parts.append(f"<h3>{escape(title)}</h3>")
        parts.append(f'<img src="{escape(relative, quote=True)}" alt="{escape(title, quote=True)}">')
    return "<h2>Plots</h2>" + "".join(parts) if parts else ""


def render_html(report: dict[str, Any], plot_paths: dict[str, Path], html_path: Path) -> None:
    """Write ``html_path``: headline metrics, threshold and calibration, confusion matrix,
    recall per defect type, other run details, and the plots (linked by relative path)."""
    from defectscope.fileio import write_text_atomic

    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    title = "defectscope evaluation report"
    body = "".join(
        (
            f"<h1>{escape(title)}</h1>",
            _notes(report),
            _headline(report),
            _threshold(report),
            _tradeoff(report),
            _confusion(report),
            _per_type(report),
            _leak_check(report),
            _tuning(report),
            _details(report),
            _plots(plot_paths, html_path.parent),
        )
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )
    write_text_atomic(html_path, page)
