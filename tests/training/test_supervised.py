"""``defectscope train|test`` with the supervised models: the split contract and the report."""

from __future__ import annotations

import json

import pytest

from defectscope.bundle import load_bundle
from defectscope.cli import main
from defectscope.errors import DataError
from defectscope.training.supervised import supervised_splits

from tests.conftest import defective_part, good_part, make_mvtec, save

FAST = ["--image-size", "32", "--set", "epochs=2", "--set", "warmup_epochs=1", "--set",
        "batch_size=8", "--quiet"]


@pytest.fixture
def folder(tmp_path):
    for i in range(10):
        save(tmp_path / "parts" / "good" / f"g{i}.png", good_part(i))
        save(tmp_path / "parts" / "blob" / f"b{i}.png", defective_part(300 + i)[0])
    save(tmp_path / "parts" / "dent" / "d0.png", defective_part(999)[0])  # a class of one
    return tmp_path / "parts"


def test_classifier_train_then_test_scores_exactly_the_bundle_test_split(folder, tmp_path,
                                                                          capsys):
    model = tmp_path / "model"
    assert main(["train", "--model", "classifier", "--data", str(folder), "--out", str(model),
                 *FAST]) == 0
    err = capsys.readouterr().err
    assert "70/15/15" in err and "'dent' has only 1 group" in err and "sampler" in err
    recorded = load_bundle(model).manifest()
    test_hashes = {s.sha256 for s in recorded.select(split="test")}
    report_path = tmp_path / "r.json"
    assert main(["test", "--model", str(model), "--data", str(folder), "--split", "test",
                 "--report", str(report_path), "--quiet"]) == 0
    report = json.loads(report_path.read_text())
    for key in ("accuracy", "macro_f1", "recall", "precision", "image_auroc", "per_class",
                "class_confusion_matrix"):
        assert key in report
    assert report["n_images"] == len(test_hashes)
    assert (tmp_path / "r_files" / "confusion_matrix.png").is_file()
    assert "macro F1" in capsys.readouterr().out


def test_segmenter_on_mvtec_reports_pixel_metrics(tmp_path):
    data = make_mvtec(tmp_path / "parts", n_train=8, n_test_good=2, n_defect=8)
    model = tmp_path / "seg"
    assert main(["train", "--model", "segmenter", "--data", str(data), "--out", str(model),
                 *FAST]) == 0
    report_path = tmp_path / "seg.json"
    assert main(["test", "--model", str(model), "--data", str(data), "--report",
                 str(report_path), "--no-plots", "--quiet"]) == 0
    report = json.loads(report_path.read_text())
    for key in ("pixel_auroc", "pixel_iou", "pixel_dice", "accuracy", "macro_f1"):
        assert key in report
    assert report["pixel_auroc"] is not None


def test_a_class_with_no_training_images_is_a_clear_error(folder, tmp_path):
    from defectscope.data.images.importers import import_dataset

    manifest = import_dataset(folder, "folder").manifest
    samples = [s.__class__(**{**s.to_dict(), "split": "test" if s.label == "dent" else
                              ("val" if s.path.endswith(("8.png", "9.png")) else "train")})
               for s in manifest.samples]
    with pytest.raises(DataError, match="'dent' has no training images"):
        supervised_splits(manifest.with_samples(samples))
