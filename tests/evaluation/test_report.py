"""build_report's keys and values on tiny records; write_report's files on disk."""

from __future__ import annotations

import json

import numpy as np
import pytest

from defectscope.errors import ConfigError
from defectscope.evaluation.report import ImageRecord, build_report, write_report
from defectscope.evaluation.thresholds import calibrate_threshold
from defectscope.values import Verdict

REQUIRED_KEYS = {
    "image_auroc", "pixel_auroc", "aupro", "average_precision", "f1", "precision", "recall",
    "f1_max", "f1_max_threshold", "threshold", "false_reject_rate", "escape_rate", "accuracy",
    "n_images", "n_good", "n_defect", "n_unsure", "confusion_matrix", "per_type_recall",
    "per_type_counts",
}


def _mask(center: tuple[int, int] | None) -> np.ndarray:
    mask = np.zeros((16, 16), np.uint8)
    if center:
        mask[center[0] - 2 : center[0] + 2, center[1] - 2 : center[1] + 2] = 1
    return mask


@pytest.fixture
def records() -> list[ImageRecord]:
    rng = np.random.default_rng(0)

    def record(name, label, score, verdict, center=None, with_mask=True):
        mask = _mask(center)
        amap = (rng.random(mask.shape) * 0.5 + mask).astype(np.float32)
        return ImageRecord(f"{name}.png", label, score, verdict, amap, mask if with_mask else None)

    return [
        record("g1", "good", 0.1, "OK", with_mask=False),  # MVTec style: good images have no mask
        record("g2", "good", 0.4, Verdict.UNSURE, with_mask=False),
        record("s1", "scratch", 0.35, "OK", (5, 5)),
        record("d1", "dent", 0.8, Verdict.NG, (10, 8)),
    ]


def test_build_report_values(records):
    report = build_report(records, threshold=0.38)
    assert REQUIRED_KEYS <= set(report)
    assert report["image_auroc"] == pytest.approx(0.75)
    assert report["average_precision"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert report["confusion_matrix"] == {"tp": 1, "fp": 1, "tn": 1, "fn": 1}
    assert (report["precision"], report["recall"], report["f1"]) == (0.5, 0.5, 0.5)
    assert (report["false_reject_rate"], report["escape_rate"], report["accuracy"]) == (0.5, 0.5, 0.5)
    assert (report["f1_max"], report["f1_max_threshold"]) == (pytest.approx(0.8), 0.35)
    assert (report["n_images"], report["n_good"], report["n_defect"], report["n_unsure"]) == (4, 2, 2, 1)
    assert report["per_type_recall"] == {"dent": 1.0, "scratch": 0.0}
    assert report["per_type_counts"] == {"dent": 1, "good": 2, "scratch": 1}
    # Defect pixels score 1 + noise, the rest only noise in [0, 0.5): perfectly separated.
    assert report["pixel_auroc"] == pytest.approx(1.0)
    assert report["aupro"] == pytest.approx(1.0)
    assert report["threshold"] == 0.38


def test_build_report_is_plain_json(records):
    report = build_report(records, threshold=0.38, extra={"model": "patchcore", "calibration":
                          calibrate_threshold([0.1, 0.8], [False, True]), "size": np.int64(3)})
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    assert report["model"] == "patchcore"
    assert report["calibration"]["rule"] == "recall"
    assert type(report["size"]) is int
    for key in ("image_auroc", "pixel_auroc", "aupro", "f1", "f1_max_threshold"):
        assert type(report[key]) is float, key


def test_good_images_without_maps_or_masks_leave_pixel_metrics_none():
    records = [ImageRecord("a.png", "good", 0.1, "OK"), ImageRecord("b.png", "dent", 0.9, "NG")]
    report = build_report(records, threshold=0.5)
    assert report["pixel_auroc"] is None and report["aupro"] is None
    assert report["image_auroc"] == 1.0


def test_one_class_report_has_none_for_undefined_metrics():
    records = [ImageRecord("a.png", "good", 0.1, "OK"), ImageRecord("b.png", "good", 0.7, "NG")]
    report = build_report(records, threshold=0.5)
    assert report["image_auroc"] is None
    assert report["average_precision"] is None
    assert report["f1_max"] is None and report["f1_max_threshold"] is None
    assert report["false_reject_rate"] == 0.5
    assert report["per_type_recall"] == {}


def test_nonfinite_scores_are_left_out_and_counted():
    records = [
        ImageRecord("a.png", "good", 0.1, "OK"),
        ImageRecord("b.png", "dent", 0.9, "NG"),
        ImageRecord("c.png", "dent", float("nan"), "UNSURE"),
    ]
    report = build_report(records, threshold=0.5)
    assert report["n_nonfinite_scores"] == 1
    assert report["n_images"] == 3 and report["n_unsure"] == 1
    assert report["confusion_matrix"] == {"tp": 1, "fp": 0, "tn": 1, "fn": 0}


def test_build_report_errors():
    with pytest.raises(ConfigError, match="no records"):
        build_report([], threshold=0.5)
    with pytest.raises(ConfigError, match="finite"):
        build_report([ImageRecord("a.png", "good", float("nan"), "UNSURE")], threshold=0.5)
    with pytest.raises(ConfigError, match="clash"):
        build_report([ImageRecord("a.png", "good", 0.1, "OK")], 0.5, extra={"threshold": 1})


def test_write_report_writes_json_plots_and_html(records, tmp_path):
    report = build_report(records, threshold=0.38, extra={"model": "<b>padim</b>"})
    paths = write_report(report, records, tmp_path / "out" / "report.json")
    assert paths["json"] == tmp_path / "out" / "report.json"
    assert paths["html"] == tmp_path / "out" / "report.html"
    assert json.loads(paths["json"].read_text()) == report
    for name in ("roc", "pr", "histograms", "caught", "overlays"):
        assert paths[name].parent == tmp_path / "out" / "report_files"
        assert paths[name].read_bytes().startswith(b"\x89PNG")
    html = paths["html"].read_text()
    assert 'src="report_files/roc.png"' in html
    assert 'src="report_files/caught.png"' in html and "Defects caught" in html
    assert 'src="report_files/worst.png"' in html and "Misses" in html
    assert "&lt;b&gt;padim&lt;/b&gt;" in html
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html", "report.json", "report_files"]


def test_write_report_without_plots(records, tmp_path):
    report = build_report(records, threshold=0.38)
    paths = write_report(report, records, tmp_path / "r.json", plots=False)
    assert set(paths) == {"json", "html"}
    assert not (tmp_path / "r_files").exists()
