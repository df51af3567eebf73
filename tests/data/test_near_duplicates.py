"""Near-duplicate grouping: re-shots of one spot are found, unrelated images are not, splits keep
every re-shot set together, and leaks across existing splits are reported."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict

import cv2
import numpy as np
import pytest

from defectscope.cli import main
from defectscope.data.images.importers import import_folder
from defectscope.data.near_duplicates import (cross_split_groups, find_near_duplicates,
                                              group_near_duplicates, texture_thumbnail)
from defectscope.data.images.splits import split_manifest
from defectscope.errors import ConfigError

from tests.reshots import spots, surface, write_reshot_dataset


def test_reshots_of_one_spot_group_and_different_spots_do_not():
    images = spots(4, 3) + spots(3, 1, first_seed=50)  # 4 spots x 3 shots, then 3 loners
    result = find_near_duplicates(images, progress=False)
    assert result.groups() == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    assert result.group_of[12:] == (12, 13, 14)
    assert result.n_grouped == 12 and result.n_matches >= 8


def test_result_does_not_depend_on_the_order_of_the_images():
    images = spots(3, 2) + spots(2, 1, first_seed=70)
    order = [6, 3, 0, 5, 1, 7, 2, 4]
    shuffled = find_near_duplicates([images[i] for i in order], progress=False)
    as_sets = {frozenset(order[i] for i in g) for g in shuffled.groups()}
    assert as_sets == {frozenset({0, 1}), frozenset({2, 3}), frozenset({4, 5})}


def test_featureless_and_tiny_images_are_left_alone_without_error():
    flat = np.full((64, 64, 3), 128, np.uint8)
    tiny = np.zeros((2, 3), np.uint8)
    result = find_near_duplicates([flat, flat.copy(), tiny], progress=False)
    assert result.groups() == []  # no keypoints: nothing can be proved, so nothing is merged
    assert find_near_duplicates([flat], progress=False).groups() == []


def test_thumbnail_ignores_brightness_and_shading():
    grey = surface(3)
    a = texture_thumbnail(grey)
    assert np.isclose(np.linalg.norm(a), 1.0)
    assert float(a @ texture_thumbnail(np.clip(grey * 0.6 + 30, 0, 255))) > 0.99
    shaded = grey * np.linspace(0.7, 1.2, grey.shape[1])[None, :]
    assert float(a @ texture_thumbnail(shaded)) > 0.9
    assert abs(float(a @ texture_thumbnail(surface(4)))) < 0.1


@pytest.mark.parametrize("options", [{"candidates": 0}, {"min_inliers": 2}])
def test_bad_settings_are_clear_errors(options):
    with pytest.raises(ConfigError):
        find_near_duplicates(spots(1, 2), progress=False, **options)


@pytest.fixture
def reshot_dataset(tmp_path):
    return write_reshot_dataset(tmp_path / "parts")


def _split_of_each_spot(manifest):
    splits = defaultdict(set)
    for sample in manifest.samples:
        name = sample.path.rsplit("/", 1)[-1]
        spot = (sample.label, int(name.split("_")[1][:2]) // 3) if "zz" not in name else (
            "scratch", 0)
        splits[spot].add(sample.split)
    return splits


def test_grouping_keeps_every_reshot_set_in_one_split_and_flags_mixed_labels(reshot_dataset):
    manifest = import_folder(reshot_dataset).manifest
    grouped, report = group_near_duplicates(manifest, progress=False)
    assert report.n_images == 28 and report.n_groups == 9 and report.n_grouped == 28
    assert report.largest == 4
    assert report.mixed_labels == (("good", "scratch"),)
    assert any("mix labels" in line for line in report.lines())
    for seed in range(5):
        split = split_manifest(grouped, seed=seed).manifest
        assert all(len(s) == 1 for s in _split_of_each_spot(split).values())


def test_existing_groups_are_kept_and_merged_through_reshots(reshot_dataset):
    manifest = import_folder(reshot_dataset).manifest
    samples = list(manifest.samples)
    by_name = {s.path.rsplit("/", 1)[-1]: i for i, s in enumerate(samples)}
    # Two lots; good_00 (spot 0) is in lot A, good_03 (spot 1) in lot B: unrelated spots.
    samples[by_name["good_00.png"]] = dataclasses.replace(samples[by_name["good_00.png"]], group="A")
    samples[by_name["good_03.png"]] = dataclasses.replace(samples[by_name["good_03.png"]], group="B")
    grouped, _ = group_near_duplicates(manifest.with_samples(samples), progress=False)
    group = {s.path.rsplit("/", 1)[-1]: s.group for s in grouped.samples}
    assert group["good_00.png"] == group["good_01.png"] == group["good_02.png"] == "A"
    assert group["good_03.png"] == group["good_04.png"] == "B"


def test_leaks_across_existing_splits_are_found(reshot_dataset):
    manifest = split_manifest(import_folder(reshot_dataset).manifest, seed=0).manifest
    found = find_near_duplicates([manifest.path_of(s) for s in manifest.samples],
                                 loader=lambda p: cv2.imread(str(p)), progress=False)
    leaks = cross_split_groups(manifest, found)
    straddling = [spot for spot, s in _split_of_each_spot(manifest).items() if len(s) > 1]
    assert len(leaks) == len(straddling) > 0  # a plain random split of re-shots leaks


def test_cli_split_with_near_duplicates_and_info_reports_leaks(reshot_dataset, tmp_path, capsys):
    raw = tmp_path / "raw.json"
    assert main(["data", "import", "--data", str(reshot_dataset), "--out", str(raw)]) == 0
    leaky, clean = tmp_path / "leaky.json", tmp_path / "clean.json"
    assert main(["data", "split", str(raw), "--out", str(leaky)]) == 0
    capsys.readouterr()
    assert main(["data", "info", str(leaky), "--near-duplicates"]) == 1
    assert "LEAK" in capsys.readouterr().out
    assert main(["data", "split", str(raw), "--out", str(clean), "--near-duplicates"]) == 0
    out = capsys.readouterr().out
    assert "28 of 28 images are re-shots" in out and "mix labels" in out
    assert main(["data", "info", str(clean), "--near-duplicates"]) == 0
    assert "no set straddles two splits" in capsys.readouterr().out
    groups = {s["group"] for s in json.loads(clean.read_text())["samples"]}
    assert len(groups) == 9


def test_train_with_near_duplicates_keeps_each_spot_in_one_split(reshot_dataset, tmp_path, capsys):
    from defectscope.bundle import load_bundle

    out = tmp_path / "model"
    assert main(["train", "--data", str(reshot_dataset), "--model", "padim", "--out", str(out),
                 "--image-size", "64", "--near-duplicates", "--quiet"]) == 0
    assert "re-shots of another image" in capsys.readouterr().err
    manifest = load_bundle(out).manifest()
    assert all(len(s) == 1 for s in _split_of_each_spot(manifest).values())


def test_cli_bad_min_inliers_is_a_clear_error_and_writes_nothing(reshot_dataset, tmp_path, capsys):
    raw = tmp_path / "raw.json"
    assert main(["data", "import", "--data", str(reshot_dataset), "--out", str(raw)]) == 0
    capsys.readouterr()
    code = main(["data", "split", str(raw), "--out", str(tmp_path / "s.json"), "--near-duplicates",
                 "--min-inliers", "2"])
    assert code == 2 and "min_inliers must be >= 4" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()
