"""Plots write PNGs without pyplot, skip what cannot be drawn, and pick the right worst cases."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from defectscope.evaluation.plots import (
    plot_pr,
    plot_roc,
    plot_score_histograms,
    caught_records,
    plot_caught_overlays,
    plot_worst_overlays,
    worst_records,
)
from defectscope.evaluation.report import ImageRecord

SCORES = [0.1, 0.4, 0.35, 0.8, 0.2]
LABELS = ["good", "good", "scratch", "dent", "good"]
FLAGS = [label != "good" for label in LABELS]


def _is_png(path) -> bool:
    return path is not None and path.read_bytes().startswith(b"\x89PNG")


def _record(name, label, score, with_mask=True, shape=(12, 12)):
    amap = np.zeros(shape, np.float32)
    amap[2:5, 2:5] = score
    mask = (amap > 0).astype(np.uint8) if with_mask and label != "good" else None
    verdict = "NG" if score >= 0.5 else "OK"
    return ImageRecord(f"{name}.png", label, score, verdict, amap, mask)


def test_curves_and_histograms_write_pngs(tmp_path):
    assert _is_png(plot_roc(SCORES, FLAGS, tmp_path / "a" / "roc.png"))
    assert _is_png(plot_pr(SCORES, FLAGS, tmp_path / "pr.png"))
    assert _is_png(plot_score_histograms(SCORES + [float("nan")], LABELS + ["dent"], 0.5, tmp_path / "h.png"))


def test_plotting_never_imports_pyplot(tmp_path):
    code = (
        "import sys; from pathlib import Path\n"
        "from defectscope.evaluation.plots import plot_roc\n"
        f"plot_roc([0.1, 0.9], [False, True], Path({str(tmp_path)!r}) / 'roc.png')\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert _is_png(tmp_path / "roc.png")


def test_one_class_curves_are_skipped(tmp_path):
    assert plot_roc([0.1, 0.2], [False, False], tmp_path / "roc.png") is None
    assert plot_pr([0.1, 0.2], [False, False], tmp_path / "pr.png") is None
    assert not list(tmp_path.iterdir())


def test_worst_records_orders_escapes_then_false_rejects():
    records = [
        _record("escape_high", "dent", 0.45),
        _record("escape_low", "dent", 0.2),
        _record("caught", "dent", 0.9),
        _record("reject_low", "good", 0.55),
        _record("reject_high", "good", 0.95),
        _record("fine", "good", 0.1),
        ImageRecord("no_map.png", "dent", 0.0, "OK"),
    ]
    names = [r.path for r in worst_records(records, threshold=0.5)]
    assert names == ["escape_low.png", "escape_high.png", "reject_high.png", "reject_low.png"]
    assert len(worst_records(records, threshold=0.5, n=2)) == 2


def test_worst_records_falls_back_to_closest_calls():
    records = [_record("a", "good", 0.1), _record("b", "dent", 0.7), _record("c", "good", 0.45)]
    assert [r.path for r in worst_records(records, threshold=0.5)] == ["c.png", "b.png", "a.png"]


def test_overlays_with_loader_of_other_size_and_failing_loader(tmp_path):
    records = [_record("a", "dent", 0.2), _record("b", "good", 0.9), _record("c", "dent", 0.3)]

    def loader(path: str) -> np.ndarray:
        if path == "c.png":
            raise OSError("gone")
        return np.full((24, 24, 3), 128, np.uint8)

    assert _is_png(plot_worst_overlays(records, 0.5, loader, tmp_path / "w.png"))
    assert _is_png(plot_worst_overlays(records, 0.5, None, tmp_path / "w2.png", n=1))


def test_overlays_skip_without_maps(tmp_path):
    records = [ImageRecord("a.png", "dent", 0.2, "OK"), ImageRecord("b.png", "good", 0.1, "OK")]
    assert plot_worst_overlays(records, 0.5, None, tmp_path / "w.png") is None
    assert not (tmp_path / "w.png").exists()


@pytest.mark.parametrize("image", [np.zeros((12, 12), np.uint8), np.zeros((12, 12, 3), np.float32)])
def test_overlays_accept_grey_and_colour_images(tmp_path, image):
    records = [_record("a", "dent", 0.2)]
    assert _is_png(plot_worst_overlays(records, 0.5, lambda _: image, tmp_path / "w.png"))


def test_caught_records_show_every_caught_type_in_turn():
    records = [
        _record("dent_high", "dent", 0.9),
        _record("dent_mid", "dent", 0.7),
        _record("dent_missed", "dent", 0.3),
        _record("scratch", "scratch", 0.6),
        _record("reject", "good", 0.95),
        ImageRecord("no_map.png", "dent", 0.99, "NG"),
    ]
    names = [r.path for r in caught_records(records, threshold=0.5)]
    assert names == ["dent_high.png", "scratch.png", "dent_mid.png"]
    assert [r.path for r in caught_records(records, threshold=0.5, n=1)] == ["dent_high.png"]


def test_caught_overlays_draw_the_catches_and_nothing_without_any(tmp_path):
    records = [_record("a", "dent", 0.8), _record("b", "good", 0.1)]
    assert _is_png(plot_caught_overlays(records, 0.5, None, tmp_path / "c.png"))
    assert plot_caught_overlays(records, 0.9, None, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
