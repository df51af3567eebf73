"""Training keeps the split contract and never leaves a partial bundle behind."""

from __future__ import annotations

import pytest

from defectscope.bundle import load_bundle
from defectscope.data.images.importers import import_folder, import_mvtec
from defectscope.evaluation.thresholds import calibrate_threshold
from defectscope.errors import ConfigError, DefectscopeError
from defectscope.training.anomaly import prepare_splits, train_anomaly

from tests.conftest import FAST_OPTIONS, defective_part, good_part, save


def test_mvtec_training_holds_back_val_and_never_reads_test(tiny_mvtec, tmp_path, monkeypatch):
    manifest = import_mvtec(tiny_mvtec).manifest
    prepared, messages = prepare_splits(manifest)
    test_paths = {prepared.path_of(s) for s in prepared.select(split="test")}
    assert prepared.select(split="val") and all(s.is_good for s in prepared.select(split="val"))
    assert {s.path for s in prepared.select(split="test")} == {
        s.path for s in manifest.select(split="test")}

    import defectscope.data.stream as stream

    read = []
    original = stream.load_image
    monkeypatch.setattr(stream, "load_image", lambda p: read.append(p) or original(p))
    result = train_anomaly(manifest, "padim", tmp_path / "m", options=FAST_OPTIONS, progress=False)
    assert result.model.n_train_images_ == len(prepared.select(split="train"))
    assert len(read) >= len(prepared.select(split="train")) + len(prepared.select(split="val"))
    assert not test_paths & set(read)


def test_folder_dataset_gets_a_70_15_15_split_and_balanced_calibration(tmp_path):
    root = tmp_path / "folder"
    for i in range(30):
        save(root / "good" / f"g{i:02d}.png", good_part(i))
    for i in range(10):
        save(root / "blob" / f"b{i:02d}.png", defective_part(300 + i)[0])
    manifest = import_folder(root).manifest
    result = train_anomaly(manifest, "patchcore", tmp_path / "m", options=FAST_OPTIONS,
                           progress=False)
    counts = result.manifest.counts()
    assert counts["good"]["train"] == 21 and counts["good"]["val"] + counts["good"]["test"] == 9
    assert result.calibration.rule == "balanced"  # real defects in validation
    assert result.calibration.achieved_recall == 1.0  # these blobs separate: all caught
    assert result.calibration.achieved_false_reject_rate <= 0.2
    assert result.calibration.unsure_band is None  # 4 good validation images: too few
    assert result.model.unsure_band == 0.05 and "too few" in result.calibration.unsure_note


def test_the_bundle_keeps_the_scores_its_threshold_was_calibrated_on(tiny_mvtec, tmp_path):
    manifest = import_mvtec(tiny_mvtec).manifest
    result = train_anomaly(manifest, "patchcore", tmp_path / "m", options=FAST_OPTIONS,
                           progress=False, tune="off")
    kept = load_bundle(tmp_path / "m").info["calibration_scores"]
    cal = result.calibration
    assert (len(kept["good"]), len(kept["defect"]), len(kept["synthetic"])) == (
        cal.n_good, cal.n_defect, cal.n_synthetic)
    assert cal.n_synthetic > 0  # good-only validation: synthetic defects weigh in
    scores = kept["good"] + kept["defect"]
    again = calibrate_threshold(scores, [False] * cal.n_good + [True] * cal.n_defect,
                                synthetic_scores=kept["synthetic"], auto_with_defects="balanced")
    assert again.rule == cal.rule and again.threshold == cal.threshold


def test_failed_training_leaves_no_model_folder(tiny_mvtec, tmp_path):
    manifest = import_mvtec(tiny_mvtec).manifest
    bad = tiny_mvtec / "train" / "good" / "005.png"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated after import
    with pytest.raises(DefectscopeError, match="005.png"):
        train_anomaly(manifest, "patchcore", tmp_path / "model", options=FAST_OPTIONS,
                      progress=False)
    assert not (tmp_path / "model").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model")]


def test_unknown_model_fails_before_any_work(tiny_mvtec, tmp_path):
    manifest = import_mvtec(tiny_mvtec).manifest
    with pytest.raises(ConfigError, match="known models"):
        train_anomaly(manifest, "nope", tmp_path / "m", progress=False)
    assert not (tmp_path / "m").exists()


def test_an_image_changed_since_import_is_refused(tiny_mvtec, tmp_path):
    manifest = import_mvtec(tiny_mvtec).manifest
    save(tiny_mvtec / "train" / "good" / "003.png", good_part(4242))
    with pytest.raises(DefectscopeError, match="003.png.*changed since"):
        train_anomaly(manifest, "patchcore", tmp_path / "model", options=FAST_OPTIONS,
                      progress=False)


def test_a_time_limit_fits_on_the_images_read_by_then(tiny_mvtec, tmp_path):
    manifest = import_mvtec(tiny_mvtec).manifest
    messages: list[str] = []
    result = train_anomaly(manifest, "padim", tmp_path / "m", options=FAST_OPTIONS,
                           progress=False, tune="off", max_seconds=1e-6, log=messages.append)
    n_train = len(result.manifest.select(split="train", good=True))
    assert n_train > 2 and result.model.n_train_images_ == 2
    assert any(f"first 2 of {n_train}" in m for m in messages)
    assert result.model.threshold_ is not None  # still calibrated and saved


def test_a_bad_time_limit_is_refused(tiny_mvtec, tmp_path):
    from defectscope.errors import DataError

    manifest = import_mvtec(tiny_mvtec).manifest
    with pytest.raises(DataError, match="max_seconds"):
        train_anomaly(manifest, "padim", tmp_path / "m", options=FAST_OPTIONS, progress=False,
                      max_seconds=0)


def test_real_defects_from_elsewhere_weigh_in_tuning_and_calibration(tiny_mvtec, tmp_path):
    from defectscope.data.images.importers import import_defects

    folder = tmp_path / "defects"
    for i in range(4):
        image, mask = defective_part(500 + i)
        save(folder / f"d{i}.png", image)
        save(folder / f"d{i}_mask.png", (mask * 255).astype("uint8"))
    defects = import_defects(folder).manifest
    assert len(defects.samples) == 4 and all(s.mask_path for s in defects.samples)
    manifest = import_mvtec(tiny_mvtec).manifest
    result = train_anomaly(manifest, "padim", tmp_path / "m", options=FAST_OPTIONS,
                           progress=False, defects=defects)
    val = result.manifest.select(split="val")
    added = [s for s in val if not s.is_good]
    assert len(added) == 4 and all(s.path.startswith(str(folder)) for s in added)
    assert [s for s in val if s.is_good]  # the held-back goods are still made
    assert result.calibration.n_defect == 4 and result.calibration.rule == "balanced"
    assert not result.manifest.select(split="train", good=False)
    assert result.model.n_train_images_ == len(result.manifest.select(split="train"))


def test_defects_already_in_the_dataset_are_refused(tiny_mvtec, tmp_path):
    from defectscope.data.images.importers import import_defects

    manifest = import_mvtec(tiny_mvtec).manifest
    test_defect = next(s for s in manifest.samples if not s.is_good)
    folder = tmp_path / "defects"
    folder.mkdir()
    (folder / "again.png").write_bytes(manifest.path_of(test_defect).read_bytes())
    with pytest.raises(DefectscopeError, match="already in the dataset"):
        train_anomaly(manifest, "padim", tmp_path / "m", options=FAST_OPTIONS, progress=False,
                      defects=import_defects(folder).manifest)
    assert not (tmp_path / "m").exists()


def test_unsure_band_is_sized_at_calibration_unless_configured(tmp_path):
    from defectscope.bundle import load_bundle

    root = tmp_path / "folder"
    for i in range(70):
        save(root / "good" / f"g{i:02d}.png", good_part(500 + i))
    for i in range(10):
        save(root / "blob" / f"b{i:02d}.png", defective_part(700 + i)[0])
    manifest = import_folder(root).manifest
    sized = train_anomaly(manifest, "padim", tmp_path / "sized", options=FAST_OPTIONS,
                          progress=False, tune="off")
    band = sized.calibration.unsure_band
    assert sized.calibration.n_good >= 10 and band is not None
    assert sized.model.unsure_band == pytest.approx(band) and band != 0.05
    loaded = load_bundle(tmp_path / "sized")
    assert loaded.info["unsure_band"] == pytest.approx(band)
    assert loaded.model.unsure_band == pytest.approx(band)  # from the calibration record
    assert loaded.model.predictor().unsure_band == pytest.approx(band)
    fixed = train_anomaly(manifest, "padim", tmp_path / "fixed",
                          options={**FAST_OPTIONS, "unsure_band": 0.2}, progress=False,
                          tune="off")
    assert fixed.model.unsure_band == 0.2
    assert load_bundle(tmp_path / "fixed").info["unsure_band"] == 0.2
