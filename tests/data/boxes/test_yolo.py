"""Import and export YOLO detection folders with their boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from defectscope.data.boxes.dataset import Box, DetectionDataset, DetectionSample
from defectscope.data.boxes.yolo import export_yolo, import_yolo_boxes
from defectscope.errors import ConfigError, DataError


@pytest.fixture
def yolo_root(tmp_path: Path, image_writer) -> Path:
    """2 train images (one with two boxes, one without a label file), 1 val image; 20x10."""
    root = tmp_path / "yolo"
    (root).mkdir()
    (root / "data.yaml").write_text("names: ['scratch', 'dent']\n")
    for split, name in (("train", "a"), ("train", "b"), ("val", "c")):
        image_writer(root / "images" / split / f"{name}.jpg", size=(10, 20))
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.5 0.2\n\n1 0.25 0.3 0.1 0.4\n")
    (root / "labels" / "val" / "c.txt").write_text("1 0.5 0.5 1.0 1.0\n")
    return root


def test_imports_boxes_in_pixels_with_the_given_split(yolo_root: Path):
    result = import_yolo_boxes(yolo_root)
    dataset = result.dataset
    assert dataset.classes == ("scratch", "dent")
    assert [(s.path, s.split) for s in dataset.samples] == [
        ("images/train/a.jpg", "train"), ("images/train/b.jpg", "train"),
        ("images/val/c.jpg", "val")]
    first = dataset.samples[0]
    assert (first.width, first.height) == (20, 10)
    np.testing.assert_allclose([b.xyxy for b in first.boxes], [[5, 4, 15, 6], [4, 1, 6, 5]])
    assert [b.label for b in first.boxes] == ["scratch", "dent"]
    assert dataset.samples[1].boxes == ()
    assert len(result.warnings) == 1 and "1 image(s) have no label file" in result.warnings[0]
    assert {s.split for s in import_yolo_boxes(yolo_root, keep_split=False).dataset.samples} \
        == {None}


def test_bad_class_id_names_file_and_line(yolo_root: Path):
    (yolo_root / "labels" / "val" / "c.txt").write_text("0 0.5 0.5 0.1 0.1\n2 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DataError, match=r"labels/val/c.txt:2: class 2 is not in data.yaml"):
        import_yolo_boxes(yolo_root)
    assert len(import_yolo_boxes(yolo_root, on_bad="skip").dataset.samples) == 2


def test_polygon_lines_are_refused(yolo_root: Path):
    (yolo_root / "labels" / "val" / "c.txt").write_text("0 0.1 0.1 0.5 0.1 0.5 0.5\n")
    with pytest.raises(DataError, match=r"c.txt:1: expected 'class cx cy w h'"):
        import_yolo_boxes(yolo_root)


def test_outside_boxes_are_clipped_and_orphan_labels_warned(yolo_root: Path):
    (yolo_root / "labels" / "val" / "c.txt").write_text("0 0.9 0.5 0.4 0.2\n1 1.5 0.5 0.2 0.2\n")
    (yolo_root / "labels" / "val" / "gone.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    result = import_yolo_boxes(yolo_root)
    assert [b.xyxy for b in result.dataset.samples[2].boxes] == [(14.0, 4.0, 20.0, 6.0)]
    text = " | ".join(result.warnings)
    assert "1 box(es) partly outside" in text and "1 box(es) with zero area" in text
    assert "1 label file(s) without an image" in text and "labels/val/gone.txt" in text


def test_images_outside_split_folders_need_keep_split_false(yolo_root: Path, image_writer):
    image_writer(yolo_root / "images" / "loose.jpg", size=(10, 20))
    with pytest.raises(DataError, match="not under images/train, val or test"):
        import_yolo_boxes(yolo_root)
    assert len(import_yolo_boxes(yolo_root, keep_split=False).dataset.samples) == 4


def test_export_then_import_gives_the_same_boxes(yolo_root: Path, tmp_path: Path):
    dataset = import_yolo_boxes(yolo_root).dataset
    out = export_yolo(dataset, tmp_path / "out")
    assert yaml.safe_load((out / "data.yaml").read_text())["names"] == ["scratch", "dent"]
    assert (out / "labels" / "train" / "b.txt").read_text() == ""
    again = import_yolo_boxes(out).dataset
    assert again.classes == dataset.classes
    assert [(s.path, s.split, s.sha256) for s in again.samples] == \
        [(s.path, s.split, s.sha256) for s in dataset.samples]
    for before, after in zip(dataset.samples, again.samples):
        np.testing.assert_allclose([b.xyxy for b in after.boxes], [b.xyxy for b in before.boxes],
                                   rtol=1e-6, atol=1e-6)
    with pytest.raises(ConfigError, match="not empty"):
        export_yolo(dataset, out)


def test_export_without_splits_goes_to_train_and_names_do_not_clash(tmp_path: Path,
                                                                     image_writer):
    for folder in ("x", "y"):
        image_writer(tmp_path / "src" / folder / "same.png", size=(8, 8))
    samples = [DetectionSample(path=f"{f}/same.png", sha256="0" * 64, width=8, height=8,
                               boxes=(Box(1, 1, 3, 3, "pit"),)) for f in ("x", "y")]
    dataset = DetectionDataset(root=tmp_path / "src", classes=("pit",), samples=samples)
    out = export_yolo(dataset, tmp_path / "out")
    assert sorted(p.name for p in (out / "images" / "train").iterdir()) == [
        "x__same.png", "y__same.png"]
    assert (out / "labels" / "train" / "x__same.txt").read_text() == "0 0.25 0.25 0.25 0.25\n"
