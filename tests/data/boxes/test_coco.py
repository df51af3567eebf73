"""Import and export COCO detection JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from defectscope.data.boxes.coco import export_coco, import_coco
from defectscope.errors import ConfigError, DataError


def coco_document(**changes) -> dict:
    document = {
        "images": [{"id": 1, "file_name": "a.png", "width": 16, "height": 12},
                   {"id": 7, "file_name": "b.png", "width": 16, "height": 12}],
        "categories": [{"id": 5, "name": "dent"}, {"id": 2, "name": "scratch"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 2, "bbox": [1, 2, 3, 4], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 5, "bbox": [10.5, 0, 2, 2]}],
    }
    document.update(changes)
    return document


@pytest.fixture
def coco_root(tmp_path: Path, image_writer) -> Path:
    root = tmp_path / "coco"
    for name in ("a.png", "b.png"):
        image_writer(root / "images" / name)  # 12 x 16
    (root / "annotations.json").write_text(json.dumps(coco_document()))
    return root


def write_document(root: Path, document: dict) -> None:
    (root / "annotations.json").write_text(json.dumps(document))


def test_imports_boxes_and_classes_in_id_order(coco_root: Path):
    result = import_coco(coco_root)
    dataset = result.dataset
    assert dataset.classes == ("scratch", "dent")
    assert [s.path for s in dataset.samples] == ["images/a.png", "images/b.png"]
    assert [b.to_dict() for b in dataset.samples[0].boxes] == [
        {"box": [1.0, 2.0, 4.0, 6.0], "label": "scratch"},
        {"box": [10.5, 0.0, 12.5, 2.0], "label": "dent"}]
    assert dataset.samples[1].boxes == () and result.warnings == ()
    assert [s.path for s in result.skipped] == ["annotations.json"]
    assert import_coco(coco_root / "annotations.json").dataset.samples == dataset.samples


def test_images_dir_option(coco_root: Path):
    document = coco_document()
    (coco_root / "labels.json").write_text(json.dumps(document))
    (coco_root / "annotations.json").unlink()
    result = import_coco(coco_root / "labels.json", images_dir=coco_root / "images")
    assert len(result.dataset.samples) == 2


def test_unknown_category_is_an_error_or_a_skip(coco_root: Path):
    document = coco_document()
    document["annotations"][1]["category_id"] = 9
    write_document(coco_root, document)
    with pytest.raises(DataError, match=r"annotation 2: unknown category id 9"):
        import_coco(coco_root)
    result = import_coco(coco_root, on_bad="skip")
    assert [s.path for s in result.dataset.samples] == ["images/b.png"]


def test_orphan_annotations_outside_and_zero_area_boxes_are_counted(coco_root: Path):
    document = coco_document()
    document["annotations"] += [
        {"id": 3, "image_id": 99, "category_id": 2, "bbox": [0, 0, 1, 1]},
        {"id": 4, "image_id": 7, "category_id": 2, "bbox": [14, 10, 5, 5]},
        {"id": 5, "image_id": 7, "category_id": 2, "bbox": [3, 3, 0, 4]},
        {"id": 6, "image_id": 7, "category_id": 2, "bbox": [3, 3, 2, 2], "iscrowd": 1}]
    write_document(coco_root, document)
    result = import_coco(coco_root)
    assert [b.xyxy for b in result.dataset.samples[1].boxes] == [(14.0, 10.0, 16.0, 12.0),
                                                                  (3.0, 3.0, 5.0, 5.0)]
    text = " | ".join(result.warnings)
    assert "1 annotation(s) name an image that is not in the file" in text and "annotation 3" in text
    assert "1 box(es) partly outside" in text and "annotation 4" in text
    assert "1 box(es) with zero area" in text and "annotation 5" in text
    assert "1 crowd annotation(s)" in text


def test_missing_image_and_wrong_size_are_bad(coco_root: Path):
    (coco_root / "images" / "b.png").unlink()
    with pytest.raises(DataError, match=r"b.png \(image file not found"):
        import_coco(coco_root)
    assert len(import_coco(coco_root, on_bad="skip").dataset.samples) == 1
    document = coco_document(images=[{"id": 1, "file_name": "a.png", "width": 15, "height": 12}])
    write_document(coco_root, document)
    with pytest.raises(DataError, match="the labels say 15x12 but the image is 16x12"):
        import_coco(coco_root)


def test_not_coco_and_no_json(tmp_path: Path):
    (tmp_path / "x.json").write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="not a COCO detection file"):
        import_coco(tmp_path / "x.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no COCO JSON found"):
        import_coco(tmp_path / "empty")


def test_several_files_need_split_names(coco_root: Path):
    (coco_root / "more.json").write_text(json.dumps(coco_document()))
    with pytest.raises(ConfigError, match="says no split"):
        import_coco(coco_root)


def test_folder_export_writes_one_file_per_split_and_reads_back(coco_root: Path, tmp_path: Path):
    from dataclasses import replace

    dataset = import_coco(coco_root).dataset
    dataset = dataset.with_samples([replace(dataset.samples[0], split="train", group="lot1"),
                                    replace(dataset.samples[1], split="val")])
    out = export_coco(dataset, tmp_path / "out")
    assert sorted(p.name for p in (out / "annotations").iterdir()) == [
        "instances_train.json", "instances_val.json"]
    document = json.loads((out / "annotations" / "instances_train.json").read_text())
    assert document["images"][0]["file_name"] == "a.png"
    assert document["annotations"][0]["bbox"] == [1.0, 2.0, 3.0, 4.0]
    assert [c["name"] for c in document["categories"]] == ["scratch", "dent"]
    again = import_coco(out).dataset
    assert [(s.path, s.split, s.group) for s in again.samples] == [
        ("images/train/a.png", "train", "lot1"), ("images/val/b.png", "val", None)]
    np.testing.assert_allclose([b.xyxy for b in again.samples[0].boxes],
                               [b.xyxy for b in dataset.samples[0].boxes])


def test_single_json_export_points_at_the_images(coco_root: Path, tmp_path: Path):
    dataset = import_coco(coco_root).dataset
    path = export_coco(dataset, tmp_path / "elsewhere" / "all.json")
    document = json.loads(path.read_text())
    assert document["images"][0]["file_name"] == "../coco/images/a.png"
    again = import_coco(path).dataset
    assert [s.sha256 for s in again.samples] == [s.sha256 for s in dataset.samples]
    assert [s.boxes for s in again.samples] == [s.boxes for s in dataset.samples]
