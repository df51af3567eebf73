"""The HTML page: sections present, text escaped, plots linked by relative path, no scripts."""

from __future__ import annotations

from pathlib import Path

from defectscope.evaluation.html_report import render_html

REPORT = {
    "threshold": 0.5,
    "image_auroc": 0.75,
    "pixel_auroc": None,
    "f1": 0.5,
    "n_images": 4,
    "confusion_matrix": {"tp": 3, "fp": 1, "tn": 7, "fn": 2},
    "per_type_recall": {"<script>alert(1)</script>": 0.5, "dent": 1.0},
    "per_type_counts": {"<script>alert(1)</script>": 2, "dent": 1, "good": 8},
    "calibration": {"rule": "recall", "target": 1.0, "note": "a & b"},
    "model": 'pad"im',
    "dataset": {"version": "v1"},
}


def test_render_html_sections_and_escaping(tmp_path):
    html_path = tmp_path / "report.html"
    plots = {"roc": tmp_path / "report_files" / "roc.png", "overlays": tmp_path / "report_files" / "w.png"}
    render_html(REPORT, plots, html_path)
    page = html_path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for heading in ("Headline metrics", "Threshold", "Calibration", "Confusion matrix",
                    "Recall per defect type", "Run details", "Plots"):
        assert f">{heading}</h" in page
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a &amp; b" in page and "pad&quot;im" in page
    assert 'src="report_files/roc.png"' in page and 'src="report_files/w.png"' in page
    assert "<td class=\"num\">0.7500</td>" in page  # image AUROC
    assert "<td>n/a</td>" in page  # pixel AUROC
    assert "<td>defective</td><td class=\"num\">3</td><td class=\"num\">2</td>" in page
    assert "http" not in page  # no CDN, nothing remote
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_render_html_without_plots_or_extras(tmp_path):
    html_path = tmp_path / "sub" / "r.html"
    render_html({"threshold": 1.0}, {}, html_path)
    page = html_path.read_text(encoding="utf-8")
    assert "Plots" not in page and "Run details" not in page
    assert "Confusion matrix" in page


def test_relative_links_from_a_relative_html_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    render_html({"threshold": 1.0}, {"pr": Path("out/r_files/pr.png")}, Path("out/r.html"))
    assert 'src="r_files/pr.png"' in (tmp_path / "out" / "r.html").read_text()
