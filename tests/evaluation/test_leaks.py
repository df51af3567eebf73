"""``test --check-leaks``: re-shots of training images among the test images are counted."""

from __future__ import annotations

import json

import pytest

from defectscope.bundle import load_bundle
from defectscope.cli import main
from defectscope.data.images.importers import import_folder
from defectscope.data.images.splits import split_manifest
from defectscope.evaluation.leaks import check_reshot_leaks

from tests.reshots import write_reshot_dataset


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return write_reshot_dataset(tmp_path_factory.mktemp("leaks") / "parts")


def _train(parts, out, *extra):
    assert main(["train", "--data", str(parts), "--model", "padim", "--out", str(out),
                 "--image-size", "64", "--quiet", *extra]) == 0


def test_a_plain_split_leaks_and_the_check_counts_it(parts, tmp_path, capsys):
    _train(parts, tmp_path / "model")
    report = tmp_path / "report.json"
    assert main(["test", "--model", str(tmp_path / "model"), "--data", str(parts), "--report",
                 str(report), "--quiet", "--check-leaks"]) == 0
    assert "figures are flattered" in capsys.readouterr().out
    assert "<h2>Leak check</h2>" in report.with_suffix(".html").read_text()
    check = json.loads(report.read_text())["leak_check"]
    bundle = load_bundle(tmp_path / "model")
    manifest = bundle.manifest()
    seen = {s.path.rsplit("/", 1)[-1][:-4] for s in manifest.samples if s.split in ("train", "val")}
    test = [s.path.rsplit("/", 1)[-1][:-4] for s in manifest.samples if s.split == "test"]

    def spot(name):  # "good_07" -> ("good", 2); the mislabelled re-shot belongs to scratch spot 0
        label, number = name.split("_")
        return ("scratch", 0) if number == "zz" else (label, int(number) // 3)

    expected = sum(spot(name) in {spot(s) for s in seen} for name in test)
    assert expected > 0
    assert check["n_with_reshot"] == expected and check["n_evaluated"] == len(test)
    assert len(check["examples"]) == expected


def test_a_grouped_split_has_no_leak(parts, tmp_path):
    _train(parts, tmp_path / "model", "--near-duplicates")
    bundle = load_bundle(tmp_path / "model")
    check = check_reshot_leaks(bundle.manifest(), import_folder(parts).manifest, "test",
                               progress=False)
    assert check.n_with_reshot == 0 and check.n_evaluated > 0 and check.n_seen > 0
    assert "0 of" in check.line() and "flattered" not in check.line()


def test_validation_images_are_compared_with_training_images_only(parts, tmp_path):
    _train(parts, tmp_path / "model", "--near-duplicates")
    bundle = load_bundle(tmp_path / "model")
    check = check_reshot_leaks(bundle.manifest(), import_folder(parts).manifest, "val",
                               progress=False)
    assert check.n_with_reshot == 0  # a val image is not its own leak


def test_without_a_bundle_manifest_nothing_was_seen(parts):
    split = split_manifest(import_folder(parts).manifest).manifest
    check = check_reshot_leaks(None, split, "test", progress=False)
    assert check.n_seen == 0 and check.n_with_reshot == 0
