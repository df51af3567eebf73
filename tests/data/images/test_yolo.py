"""The YOLO importer: image labels from boxes or file-name prefixes, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from defectscope.data.images.importers import import_dataset
from defectscope.errors import DataError
from defectscope.values import GOOD

from tests.conftest import good_part, save, shared_data_dir

NAMES = "names: ['scratch', 'dent']\n"


def make_yolo(root: Path, labels: dict[str, str]) -> Path:
    (root / "data.yaml").parent.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\n" + NAMES)
    for i, (name, text) in enumerate(labels.items()):
        split = "val" if i % 3 == 2 else "train"
        save(root / "images" / split / f"{name}.png", good_part(i, (16, 16)))
        if text is not None:
            label = root / "labels" / split / f"{name}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(text)
    return root


def test_labels_come_from_the_most_frequent_box_class(tmp_path):
    root = make_yolo(tmp_path / "y", {
        "scratch_1": "0 0.5 0.5 0.1 0.1\n",
        "dent_1": "1 0.5 0.5 0.1 0.1\n0 0.2 0.2 0.1 0.1\n1 0.3 0.3 0.1 0.1\n",
        "empty_1": "",
        "nolabel_1": None,
    })
    result = import_dataset(root, "yolo")
    labels = {Path(s.path).stem: s.label for s in result.manifest.samples}
    assert labels == {"scratch_1": "scratch", "dent_1": "dent", "empty_1": GOOD,
                      "nolabel_1": GOOD}
    assert all(s.split is None for s in result.manifest.samples)  # 70/15/15 made at training
    assert result.manifest.source["given_split"] == {"train": 3, "val": 1}
    assert any("several classes" in w for w in result.warnings)


def test_keep_split_keeps_the_given_folders(tmp_path):
    root = make_yolo(tmp_path / "y", {"scratch_1": "0 .5 .5 .1 .1", "dent_1": "1 .5 .5 .1 .1",
                                      "dent_2": "1 .5 .5 .1 .1"})
    manifest = import_dataset(root, "yolo", keep_split=True).manifest
    assert sorted(s.split for s in manifest.samples) == ["train", "train", "val"]


def test_prefix_rule_and_unknown_classes_are_clear(tmp_path):
    root = make_yolo(tmp_path / "y", {"scratch_1": "1 .5 .5 .1 .1", "dent_2": "0 .5 .5 .1 .1"})
    labels = {s.label for s in import_dataset(root, "yolo", label_rule="prefix").manifest.samples}
    assert labels == {"scratch", "dent"}
    bad = make_yolo(tmp_path / "bad", {"crack_1": "0 .5 .5 .1 .1"})
    with pytest.raises(DataError, match="name no class"):
        import_dataset(bad, "yolo", label_rule="prefix")
    (bad / "labels" / "train" / "crack_1.txt").write_text("7 .5 .5 .1 .1\n")
    with pytest.raises(DataError, match="class 7 is not in data.yaml"):
        import_dataset(bad, "yolo")


def test_label_files_without_images_are_warned_about(tmp_path):
    root = make_yolo(tmp_path / "y", {"scratch_1": "0 .5 .5 .1 .1"})
    (root / "labels" / "train" / "ghost.txt").write_text("0 .5 .5 .1 .1\n")
    result = import_dataset(root, "yolo")
    assert any("have no image" in w for w in result.warnings)
    assert any(s.path == "labels/train/ghost.txt" for s in result.skipped)


def test_missing_data_yaml_says_what_the_layout_is(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="data.yaml"):
        import_dataset(tmp_path, "yolo")


@pytest.mark.integration
@pytest.mark.skipif(not (shared_data_dir() / "neu-det").is_dir(), reason="NEU-DET not present")
def test_neu_det_imports_as_it_is():
    result = import_dataset(shared_data_dir() / "neu-det", "yolo", label_rule="prefix")
    manifest = result.manifest
    assert len(manifest.samples) == 1800
    assert manifest.labels == ("crazing", "inclusion", "patches", "pitted_surface",
                               "rolled-in_scale", "scratches")
    assert manifest.source["given_split"] == {"train": 1440, "val": 360}
