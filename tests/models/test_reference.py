"""The reference comparison model on synthetic boards with known inserted defects.

A board is copper traces and pads drawn on a dark substrate; its part is the same board with an
open (a cut trace), a short (a bridge between two traces), spurious copper (a blob) and a pin-hole
(a hole in a pad), each with its true box, plus unlabelled specks of noise the network must learn
to call background.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from defectscope.data.boxes.dataset import Box, DetectionDataset, DetectionSample
from defectscope.data.hashing import sha256_file
from defectscope.errors import AlignmentError, ConfigError, DataError, DefectscopeError
from defectscope.models.reference import (ReferenceComparison, assign_regions,
                                          selection_slice)
from defectscope.scoring.boxes import box_iou

CLASSES = ("open", "short", "copper", "pin-hole")
SIDE = 96
FAST = dict(crop_size=32, context=32, region_scale=2.0, width=8, epochs=20, batch_size=32,
            patience=20, max_shift=2, seed=0)


def board(rng: np.random.Generator) -> tuple[np.ndarray, list[int], tuple[int, int, int, int]]:
    """A template: three horizontal traces (5 px) and one pad; returns it, the trace rows, and
    the pad."""
    image = np.full((SIDE, SIDE), 20, np.uint8)
    first = int(rng.integers(8, 14))
    rows = [first, first + 18, first + 36]
    for y in rows:
        image[y:y + 5, 4:SIDE - 4] = 235
    px, py = int(rng.integers(10, SIDE - 34)), int(rng.integers(66, SIDE - 24))
    image[py:py + 20, px:px + 24] = 235
    return image, rows, (px, py, px + 24, py + 20)


def pair(seed: int, defects: bool = True) -> tuple[np.ndarray, np.ndarray, list[Box]]:
    """(part, template, true boxes) for one synthetic board."""
    rng = np.random.default_rng(seed)
    template, rows, (px, py, px2, py2) = board(rng)
    part = template.copy()
    boxes: list[Box] = []
    if defects:
        x = int(rng.integers(10, 30))  # open: a 6 px cut through the first trace
        part[rows[0]:rows[0] + 5, x:x + 6] = 20
        boxes.append(Box(x - 3, rows[0] - 3, x + 9, rows[0] + 8, "open"))
        x = int(rng.integers(40, 80))  # short: a 4 px bridge from trace 2 to trace 3
        part[rows[1] + 5:rows[2], x:x + 4] = 235
        boxes.append(Box(x - 3, rows[1] + 2, x + 7, rows[2] + 3, "short"))
        x = int(rng.integers(40, 80))  # copper: a blob between traces 1 and 2
        cy = rows[0] + 11
        cv2.circle(part, (x, cy), 3, 235, -1)
        boxes.append(Box(x - 6, cy - 6, x + 7, cy + 7, "copper"))
        hx, hy = (px + px2) // 2 + int(rng.integers(-3, 4)), (py + py2) // 2
        cv2.circle(part, (hx, hy), 3, 20, -1)  # pin-hole in the pad
        boxes.append(Box(hx - 6, hy - 6, hx + 7, hy + 7, "pin-hole"))
    for _ in range(2):  # unlabelled specks: 2x2 noise the network must call background
        sx, sy = int(rng.integers(4, SIDE - 6)), int(rng.integers(4, SIDE - 6))
        part[sy:sy + 2, sx:sx + 2] = 255 - part[sy, sx]
    noise = rng.random(part.shape) < 0.002  # isolated pixels: below min_area
    part[noise] = 255 - part[noise]
    return part, template, boxes


def write_dataset(root: Path, seeds, defects: bool = True) -> DetectionDataset:
    samples = []
    for seed in seeds:
        part, template, boxes = pair(seed, defects)
        paths = []
        for name, array in ((f"g{seed % 3}/{seed}_test.png", part),
                            (f"g{seed % 3}/{seed}_temp.png", template)):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / name), array)
            paths.append(name)
        samples.append(DetectionSample(paths[0], sha256_file(root / paths[0]), SIDE, SIDE,
                                       tuple(boxes), paths[1], sha256_file(root / paths[1]),
                                       group=f"g{seed % 3}"))
    return DetectionDataset(root, CLASSES, tuple(samples), name="synthetic-pcb")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> ReferenceComparison:
    root = tmp_path_factory.mktemp("boards")
    dataset = write_dataset(root, range(56))
    train, val = dataset.samples[:48], dataset.samples[48:]
    return ReferenceComparison(**FAST).fit(dataset.with_samples(train), dataset.with_samples(val),
                                           progress=False, log=lambda message: None)


def rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def test_finds_each_inserted_defect_with_its_type_and_box(fitted):
    found_right, total = 0, 0
    for seed in range(1000, 1006):
        part, template, boxes = pair(seed)
        detections = [d for d in fitted.detect(rgb(part), rgb(template)) if d.confidence >= 0.5]
        for box in boxes:
            total += 1
            same = [d for d in detections if d.label == box.label]
            ious = box_iou([box.xyxy], [d.box for d in same])[0] if same else [0.0]
            found_right += max(ious) >= 0.5
    assert found_right == total


NO_AVERAGING = {"test_flips": False, "test_scales": False}


def test_test_time_averaging_is_on_by_default_and_each_view_changes_the_answer(fitted):
    assert fitted.config.test_flips and fitted.config.test_scales
    part, template, _ = pair(1003)
    before = fitted.config
    detections = {}
    try:
        for options in ({}, {"test_flips": False}, {"test_scales": False}, NO_AVERAGING):
            fitted.config = dataclasses.replace(before, **options)
            detections[tuple(options.items())] = fitted.detect(part, template)
            test_finds_each_inserted_defect_with_its_type_and_box(fitted)
    finally:
        fitted.config = before
    plain = detections[tuple(NO_AVERAGING.items())]
    for key, found in detections.items():
        assert found and all(0 <= d.box[0] < d.box[2] <= SIDE and 0 <= d.box[1] < d.box[3] <= SIDE
                             for d in found)
        if key != tuple(NO_AVERAGING.items()):
            assert found != plain  # the views are averaged, not ignored


def test_scale_jitter_zero_leaves_one_scale_to_average():
    from defectscope.scoring.reference_detect import ReferenceSettings

    config = ReferenceComparison(**{**FAST, "scale_jitter": 0}).config
    assert config.test_scales and ReferenceSettings.from_config(config.to_dict()).test_scales == (1.0,)


def test_bundle_keeps_test_time_averaging_and_old_bundles_load_without_it(fitted, tmp_path):
    import json

    from defectscope.bundle import BUNDLE_JSON, load_bundle, save_bundle

    fitted.set_threshold(0.5)
    save_bundle(fitted, tmp_path / "model")
    loaded = load_bundle(tmp_path / "model").model
    assert loaded.config.test_flips and loaded.config.test_scales
    part, template, _ = pair(1004)
    assert loaded.detect(part, template) == fitted.detect(part, template)
    # a bundle written before the options existed: its config lacks them, and it keeps
    # scoring as it did (no averaging)
    info_path = tmp_path / "model" / BUNDLE_JSON
    info = json.loads(info_path.read_text())
    for option in NO_AVERAGING:
        del info["model"]["config"][option]
    info_path.write_text(json.dumps(info))
    old = load_bundle(tmp_path / "model").model
    assert not old.config.test_flips and not old.config.test_scales
    before = fitted.config
    fitted.config = dataclasses.replace(before, **NO_AVERAGING)
    try:
        assert old.detect(part, template) == fitted.detect(part, template)
    finally:
        fitted.config = before


def test_a_clean_pair_gives_no_detection(fitted):
    for seed in range(2000, 2004):
        part, template, _ = pair(seed, defects=False)
        assert [d for d in fitted.detect(part, template) if d.confidence >= 0.5] == []
        assert fitted.detect(template, template) == []


def test_detections_are_sorted_and_carry_known_labels(fitted):
    part, template, _ = pair(1000)
    detections = fitted.detect(part, template)
    assert detections
    confidences = [d.confidence for d in detections]
    assert confidences == sorted(confidences, reverse=True)
    assert {d.label for d in detections} <= set(CLASSES)
    assert all(0.0 <= d.confidence <= 1.0 for d in detections)
    assert all(0 <= d.box[0] < d.box[2] <= SIDE and 0 <= d.box[1] < d.box[3] <= SIDE
               for d in detections)


def test_save_and_restore_give_identical_detections(fitted):
    arrays = fitted.arrays()
    restored = ReferenceComparison(**FAST).restore(arrays, fitted.weights_source_, 48)
    part, template, _ = pair(1001)
    assert restored.detect(part, template) == fitted.detect(part, template)
    assert restored.classes_ == fitted.classes_
    assert all(isinstance(v, np.ndarray) for v in arrays.values())


def test_bundle_round_trip_gives_identical_detections(fitted, tmp_path):
    from defectscope.bundle import load_bundle, save_bundle

    fitted.set_threshold(0.5)
    save_bundle(fitted, tmp_path / "model")
    loaded = load_bundle(tmp_path / "model")
    part, template, _ = pair(1005)
    assert loaded.model.detect(part, template) == fitted.detect(part, template)
    assert loaded.info["preprocess"]["image_size"] == FAST["crop_size"]
    assert loaded.info["weights"]["backbone"] == "none"


def test_grey_rgb_and_single_channel_inputs_agree(fitted):
    part, template, _ = pair(1002)
    grey = fitted.detect(part, template)
    assert fitted.detect(rgb(part), rgb(template)) == grey
    assert fitted.detect(part[..., None], rgb(template)) == grey
    assert fitted.detect(np.dstack([rgb(part), np.full(part.shape, 255, np.uint8)]),
                         template) == grey


def test_missing_template_is_a_clear_error(fitted):
    part, _, _ = pair(1003)
    with pytest.raises(DefectscopeError, match="template"):
        fitted.detect(part, None)


def test_template_of_another_size_is_a_clear_error(fitted):
    part, template, _ = pair(1003)
    with pytest.raises(DataError, match="template is 90x96 but the image is 96x96"):
        fitted.detect(part, template[:, :90])


def test_unreadable_pixels_are_a_clear_error(fitted):
    part, template, _ = pair(1003)
    with pytest.raises(DefectscopeError, match="image"):
        fitted.detect(part.astype(np.float32), template)


def test_predict_uses_the_threshold_and_names_the_defect(fitted):
    part, template, _ = pair(1004)
    result = fitted.set_threshold(0.5).predict(part, template)
    assert result.verdict.value == "NG"
    assert result.defect_type in CLASSES
    assert all(d.confidence >= 0.5 for d in result.detections)
    clean = fitted.predict(template, template)
    assert clean.verdict.value == "OK" and clean.score == 0.0


def test_a_pair_that_cannot_be_aligned_raises_or_is_unsure(fitted):
    aligning = ReferenceComparison(**{**FAST, "align": True}).restore(
        fitted.arrays(), fitted.weights_source_, 48).set_threshold(0.5)
    _, template, _ = pair(1005)
    noise = (np.random.default_rng(0).random(template.shape) * 255).astype(np.uint8)
    with pytest.raises(AlignmentError):
        aligning.detect(noise, template)
    result = aligning.predict(noise, template)
    assert result.verdict.value == "UNSURE" and "alignment failed" in result.reason


def test_fit_records_what_the_bundle_needs(fitted):
    assert fitted.is_fitted and fitted.n_train_images_ == 48
    assert fitted.weights_source_.backbone == "none"
    assert fitted.preprocess_config.image_size == FAST["crop_size"]
    assert fitted.training_["best_epoch"] >= 1
    assert fitted.name == "reference" and fitted.needs_template


def test_fit_without_val_sets_aside_whole_groups(tmp_path):
    dataset = write_dataset(tmp_path, range(9))
    model = ReferenceComparison(**{**FAST, "epochs": 1}).fit(
        dataset, progress=False, log=lambda message: None)
    groups = {s.group for s in model.selection_samples_}
    rest = {s.group for s in dataset.samples} - groups
    assert groups and rest and len(model.selection_samples_) == 3
    assert model.n_train_images_ == 6


def test_fit_rejects_samples_without_template(tmp_path):
    dataset = write_dataset(tmp_path, range(3))
    bare = dataset.with_samples(
        DetectionSample(s.path, s.sha256, s.width, s.height, s.boxes, group=s.group)
        for s in dataset.samples)
    with pytest.raises(DataError, match="template"):
        ReferenceComparison(**FAST).fit(bare, progress=False, log=lambda message: None)


def test_unfitted_and_bad_options_are_clear_errors():
    with pytest.raises(DefectscopeError, match="not fitted"):
        ReferenceComparison().detect(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))
    with pytest.raises(ConfigError, match="crop_size"):
        ReferenceComparison(crop_size=40)
    with pytest.raises(ConfigError, match="tolerance"):
        ReferenceComparison(tolerance=-1)
    with pytest.raises(ConfigError, match="unknown options"):
        ReferenceComparison(colour="blue")
    with pytest.raises(ConfigError, match="ema_decay"):
        ReferenceComparison(ema_decay=1.0)


def test_assign_regions_prefers_the_box_holding_the_centre():
    boxes = np.array([[0, 0, 20, 20], [30, 0, 50, 20]])
    regions = np.array([[5, 5, 9, 9], [28, 2, 36, 6], [60, 60, 64, 64], [18, 2, 33, 6]])
    assert assign_regions(regions, boxes).tolist() == [0, 1, -1, -1]
    nested = np.array([[0, 0, 20, 20], [0, 0, 60, 60]])  # a centre in both: more overlap wins
    assert assign_regions([[14, 2, 18, 6], [40, 40, 44, 44]], nested).tolist() == [0, 1]
    assert assign_regions(regions, np.zeros((0, 4))).tolist() == [-1, -1, -1, -1]


def test_selection_slice_is_seeded_and_group_aware():
    samples = [DetectionSample(f"{i}.png", "0" * 64, 8, 8, group=f"g{i % 5}") for i in range(20)]
    rest, chosen = selection_slice(samples, 0.2, seed=3)
    assert len(rest) + len(chosen) == 20 and chosen
    assert not {s.group for s in rest} & {s.group for s in chosen}
    assert selection_slice(samples, 0.2, seed=3) == (rest, chosen)
    lone = [DetectionSample(f"{i}.png", "0" * 64, 8, 8) for i in range(10)]
    rest, chosen = selection_slice(lone, 0.2, seed=0)
    assert len(chosen) == 2 and len(rest) == 8


def test_scale_jitter_cuts_each_training_window_at_two_more_scales(tmp_path):
    dataset = write_dataset(tmp_path, range(4))
    model = ReferenceComparison(**{**FAST, "scale_jitter": 0.5})
    model.classes_ = CLASSES
    arrays = model._training_windows(dataset, dataset.samples, "windows", False,
                                     lambda message: None, jitter=True)
    assert len(arrays.views) == 2
    for crops, targets in arrays.views:
        assert crops.shape == arrays.crops.shape and targets.shape == arrays.targets.shape
    positive = arrays.labels > 0
    # the same box, a window 1/1.5 and 1.5 times as large: its fractions spread and shrink
    width = lambda t: t[positive, 2] - t[positive, 0]
    smaller, larger = (width(t) for _, t in arrays.views)
    assert np.median(smaller) > np.median(width(arrays.targets)) > np.median(larger)
    assert not (arrays.labels[~positive] > 0).any()
    plain = model._training_windows(dataset, dataset.samples, "windows", False,
                                    lambda message: None, jitter=False)
    assert plain.views == ()
    np.testing.assert_array_equal(plain.crops, arrays.crops)
    with pytest.raises(ConfigError, match="scale_jitter"):
        ReferenceComparison(scale_jitter=1.5)


def test_draw_takes_each_window_from_one_of_its_scales():
    from defectscope.models.fitting.reference_loop import TrainArrays

    n = 200
    crops = [np.full((n, 3, 4, 4), value, np.uint8) for value in (0, 1, 2)]
    targets = [np.full((n, 4), value, np.float32) for value in (0, 1, 2)]
    arrays = TrainArrays(crops[0], np.ones(n, np.int64), targets[0],
                         ((crops[1], targets[1]), (crops[2], targets[2])))
    index = np.arange(0, n, 2)
    drawn, moved = arrays.draw(index, np.random.default_rng(0))
    scale = drawn[:, 0, 0, 0]
    assert set(scale.tolist()) == {0, 1, 2}  # every scale is drawn
    np.testing.assert_array_equal(moved[:, 0], scale)  # crop and box from the same scale
    assert (crops[0] == 0).all()  # the stored windows are untouched
    single = TrainArrays(crops[0], np.ones(n, np.int64), targets[0])
    np.testing.assert_array_equal(single.draw(index, np.random.default_rng(0))[0],
                                  crops[0][index])
