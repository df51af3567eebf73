"""Round trips between detection formats keep boxes, classes, splits and templates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from defectscope.data.boxes.convert import convert, import_detection
from defectscope.errors import ConfigError


@pytest.fixture
def yolo_root(tmp_path: Path, image_writer) -> Path:
    root = tmp_path / "yolo"
    root.mkdir()
    (root / "data.yaml").write_text("names: {0: pit, 1: crack, 2: stain}\n")
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        for index in range(count):
            image_writer(root / "images" / split / f"{split}{index}.png", size=(30, 50))
            lines = []
            for _ in range(rng.integers(0, 4)):
                cx, cy = rng.uniform(0.2, 0.8, 2)
                w, h = rng.uniform(0.05, 0.3, 2)
                lines.append(f"{rng.integers(0, 3)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
            label = root / "labels" / split / f"{split}{index}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("".join(lines))
    return root


def _assert_same(before, after) -> None:
    assert after.classes == before.classes
    by_hash = {s.sha256: s for s in before.samples}
    assert len(after.samples) == len(before.samples)
    for sample in after.samples:
        original = by_hash[sample.sha256]
        assert sample.split == original.split
        assert [b.label for b in sample.boxes] == [b.label for b in original.boxes]
        got = np.asarray([b.xyxy for b in sample.boxes]).reshape(-1, 4)
        want = np.asarray([b.xyxy for b in original.boxes]).reshape(-1, 4)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=0.5)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_yolo_to_coco_to_yolo(yolo_root: Path, tmp_path: Path):
    original = import_detection(yolo_root, "yolo").dataset
    coco = convert(yolo_root, "yolo", "coco", tmp_path / "coco")
    assert coco.imported.dataset.version_id == original.version_id
    back = convert(coco.out, "coco", "yolo", tmp_path / "yolo-again")
    _assert_same(original, back.imported.dataset)
    _assert_same(original, import_detection(back.out, "yolo").dataset)


def test_deeppcb_to_yolo_and_coco_keeps_templates(tmp_path: Path, image_writer):
    root = tmp_path / "pcb"
    for image_id in ("00041000", "00041001"):
        image_writer(root / "group00041" / "00041" / f"{image_id}_test.jpg", size=(20, 20))
        image_writer(root / "group00041" / "00041" / f"{image_id}_temp.jpg", size=(20, 20))
        label = root / "group00041" / "00041_not" / f"{image_id}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("1 2 10 12 3\n")
    original = import_detection(root, "deeppcb").dataset
    for to in ("yolo", "coco"):
        result = convert(root, "deeppcb", to, tmp_path / to)
        assert (result.out / "templates" / "train" / "00041000_test.jpg").is_file()
        again = import_detection(result.out, to).dataset
        assert again.has_templates
        assert [s.template_sha256 for s in again.samples] == \
            [s.template_sha256 for s in original.samples]
        assert [s.boxes for s in again.samples] == [s.boxes for s in original.samples]
    assert import_detection(tmp_path / "coco", "coco").dataset.samples[0].group == "group00041"


def test_saved_dataset_is_a_source(yolo_root: Path, tmp_path: Path):
    dataset = import_detection(yolo_root, "yolo").dataset
    saved = dataset.save(tmp_path / "d.json")
    result = convert(saved, "dataset", "coco", tmp_path / "c")
    _assert_same(dataset, import_detection(result.out, "coco").dataset)


def test_unknown_formats(yolo_root: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="read formats: yolo, coco, deeppcb, dataset"):
        convert(yolo_root, "voc", "coco", tmp_path / "x")
    with pytest.raises(ConfigError, match="write formats: yolo, coco"):
        convert(yolo_root, "yolo", "deeppcb", tmp_path / "x")
