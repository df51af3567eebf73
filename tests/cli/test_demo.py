"""The demo, the first thing anyone runs: trains on the bundled sample, writes the report with
heatmap overlays of the defects caught and of the misses."""

from __future__ import annotations

import json

from defectscope.cli import main


def test_demo_trains_tests_and_writes_the_report_with_overlays(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "image AUROC" in printed and str(out / "report.html") in printed
    report = json.loads((out / "report.json").read_text())
    assert report["n_images"] == 32 and report["model"] == "padim"
    assert 0.5 < report["image_auroc"] <= 1.0 and report["split"] == "test"
    html = (out / "report.html").read_text()
    for image in ("caught.png", "worst.png", "roc.png"):
        assert f'src="report_files/{image}"' in html
        assert (out / "report_files" / image).read_bytes().startswith(b"\x89PNG")
    assert (out / "model" / "bundle.json").is_file()
