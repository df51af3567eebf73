"""Import DeepPCB pairs from a tiny synthetic copy of its layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectscope.data.boxes.deeppcb import DEEPPCB_CLASSES, import_deeppcb
from defectscope.data.boxes.dataset import DetectionDataset, load_pair
from defectscope.errors import ConfigError, DataError


def _image(path: Path, value: int = 255, size: int = 32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((size, size), value, dtype=np.uint8)
    array[4:8, 4:8] = 0
    Image.fromarray(array).save(path)


def make_pcb(root: Path, group: str, ids: list[str], lines: dict[str, str] | None = None) -> None:
    """``root/group<G>/<G>/<id>_test.jpg`` + ``_temp.jpg``, boxes in ``<G>_not/<id>.txt``."""
    folder = root / f"group{group}" / group
    for index, image_id in enumerate(ids):
        _image(folder / f"{image_id}_test.jpg", 200 + index)
        _image(folder / f"{image_id}_temp.jpg", 255)
        label = root / f"group{group}" / f"{group}_not" / f"{image_id}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text((lines or {}).get(image_id, "1 2 10 12 3\n20,4,30,9,6\n"))


@pytest.fixture
def pcb(tmp_path: Path) -> Path:
    root = tmp_path / "deeppcb"
    make_pcb(root, "00041", ["00041000", "00041001"])
    make_pcb(root, "13000", ["13000000"], {"13000000": "0, 0, 5, 5, 2\n\n  4  4 9 9  5\n"})
    (root / "trainval.txt").write_text("ignored\n")
    return root


def test_imports_pairs_boxes_groups_and_templates(pcb: Path):
    result = import_deeppcb(pcb)
    dataset = result.dataset
    assert dataset.classes == DEEPPCB_CLASSES
    assert [s.path for s in dataset.samples] == [
        "group00041/00041/00041000_test.jpg", "group00041/00041/00041001_test.jpg",
        "group13000/13000/13000000_test.jpg"]
    first = dataset.samples[0]
    assert [b.to_dict() for b in first.boxes] == [
        {"box": [1.0, 2.0, 10.0, 12.0], "label": "mousebite"},
        {"box": [20.0, 4.0, 30.0, 9.0], "label": "pin-hole"}]
    assert first.template_path == "group00041/00041/00041000_temp.jpg"
    assert (first.width, first.height, first.group, first.split) == (32, 32, "group00041", None)
    assert [b.label for b in dataset.samples[2].boxes] == ["short", "copper"]
    assert result.warnings == ()
    assert [s.path for s in result.skipped] == ["trainval.txt"]
    image, template = load_pair(dataset, first)
    assert image.shape == template.shape == (32, 32, 3)
    assert dataset.box_counts() == {"mousebite": 2, "pin-hole": 2, "short": 1, "copper": 1}


def test_saved_dataset_loads_back(pcb: Path, tmp_path: Path):
    dataset = import_deeppcb(pcb).dataset
    loaded = DetectionDataset.load(dataset.save(tmp_path / "pcb.json"))
    assert loaded.version_id == dataset.version_id and loaded.samples == dataset.samples


def test_boxes_outside_the_image_are_clipped_or_dropped_with_counted_warnings(pcb: Path):
    label = pcb / "group00041" / "00041_not" / "00041000.txt"
    label.write_text("-3 2 10 12 1\n28 2 40 12 1\n40 2 50 12 1\n5 5 5 9 1\n")
    result = import_deeppcb(pcb)
    boxes = result.dataset.samples[0].boxes
    assert [b.xyxy for b in boxes] == [(0.0, 2.0, 10.0, 12.0), (28.0, 2.0, 32.0, 12.0)]
    clipped, dropped = result.warnings
    assert clipped.startswith("2 box(es) partly outside") and "00041000.txt:1" in clipped
    assert dropped.startswith("2 box(es) with zero area") and "00041000.txt:4" in dropped


def test_unknown_type_names_file_and_line(pcb: Path):
    (pcb / "group13000" / "13000_not" / "13000000.txt").write_text("1 1 5 5 1\n1 1 5 5 7\n")
    with pytest.raises(DataError, match=r"13000_not/13000000.txt:2: unknown defect type 7"):
        import_deeppcb(pcb)
    result = import_deeppcb(pcb, on_bad="skip")
    assert len(result.dataset.samples) == 2
    assert any(s.path.endswith("13000000_test.jpg") and "unknown defect type 7" in s.reason
               for s in result.skipped)


def test_malformed_line_names_file_and_line(pcb: Path):
    (pcb / "group13000" / "13000_not" / "13000000.txt").write_text("1 1 5 5\n")
    with pytest.raises(DataError, match=r"13000000.txt:1: expected 'x1,y1,x2,y2,type'"):
        import_deeppcb(pcb)


def test_missing_template_is_an_error_or_a_counted_skip(pcb: Path):
    (pcb / "group00041" / "00041" / "00041001_temp.jpg").unlink()
    with pytest.raises(DataError, match=r"1 bad image.*00041001_test.jpg \(missing template"):
        import_deeppcb(pcb)
    result = import_deeppcb(pcb, on_bad="skip")
    assert len(result.dataset.samples) == 2
    assert [s.reason for s in result.skipped if "missing template" in s.reason]


def test_missing_label_file_is_bad_and_orphan_label_is_a_warning(pcb: Path):
    (pcb / "group00041" / "00041_not" / "00041001.txt").unlink()
    (pcb / "group00041" / "00041_not" / "00041999.txt").write_text("1 1 5 5 1\n")
    with pytest.raises(DataError, match="no label file"):
        import_deeppcb(pcb)
    result = import_deeppcb(pcb, on_bad="skip")
    assert len(result.dataset.samples) == 2
    assert any("1 label file(s) without a test image" in w and "00041999.txt" in w
               for w in result.warnings)


def test_corrupt_image_is_an_error_or_a_counted_skip(pcb: Path):
    broken = pcb / "group00041" / "00041" / "00041000_test.jpg"
    broken.write_bytes(broken.read_bytes()[:60])
    with pytest.raises(DataError, match="00041000_test.jpg"):
        import_deeppcb(pcb)
    result = import_deeppcb(pcb, on_bad="skip")
    assert len(result.dataset.samples) == 2
    bad = [s for s in result.skipped if s.path.endswith("00041000_test.jpg")]
    assert len(bad) == 1 and ("truncated" in bad[0].reason or "readable" in bad[0].reason)


def test_template_of_another_size_is_bad(pcb: Path):
    _image(pcb / "group00041" / "00041" / "00041000_temp.jpg", size=16)
    with pytest.raises(DataError, match="template is 16x16 but its image is 32x32"):
        import_deeppcb(pcb)


def test_no_pairs_and_bad_options(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no DeepPCB test images"):
        import_deeppcb(tmp_path / "empty")
    with pytest.raises(ConfigError, match="on_bad"):
        import_deeppcb(tmp_path / "empty", on_bad="ignore")
