"""``defectscope data convert`` and the detection side of ``data import|info|split``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectscope.cli import main
from defectscope.cli.data import load_dataset
from defectscope.data.boxes.dataset import DetectionDataset
from defectscope.errors import ConfigError


def write(path: Path, value: int = 200, size: int = 24) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((size, size), value, dtype=np.uint8)
    array[2:6, 2:6] = 0
    Image.fromarray(array).save(path)


@pytest.fixture
def pcb(tmp_path: Path) -> Path:
    """Three DeepPCB groups of two pairs each."""
    root = tmp_path / "pcb"
    for group in ("00041", "13000", "20085"):
        for index in range(2):
            image_id = f"{group}{index:03d}"
            write(root / f"group{group}" / group / f"{image_id}_test.jpg", 100 + index)
            write(root / f"group{group}" / group / f"{image_id}_temp.jpg")
            label = root / f"group{group}" / f"{group}_not" / f"{image_id}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("1 2 10 12 1\n5,5,9,9,6\n")
    return root


def test_import_deeppcb_writes_a_detection_dataset(pcb: Path, tmp_path: Path, capsys):
    out = tmp_path / "pcb.json"
    code = main(["data", "import", "--format", "deeppcb", "--data", str(pcb), "--out", str(out),
                 "--name", "boards"])
    text = capsys.readouterr().out
    assert code == 0
    dataset = DetectionDataset.load(out)
    assert dataset.name == "boards" and len(dataset.samples) == 6
    assert "open" in text and "pin-hole" in text and "Templates 6 of 6" in text
    assert "Groups    3" in text and "6 images, 12 boxes, format deeppcb" in text

    assert main(["data", "info", str(out), "--verify"]) == 0
    assert "Verified: all files match" in capsys.readouterr().out

    split = tmp_path / "split.json"
    assert main(["data", "split", str(out), "--fractions", "0.67,0.33", "--out",
                 str(split)]) == 0
    split_data = DetectionDataset.load(split)
    assert {s.split for s in split_data.samples} == {"train", "test"}


def test_convert_deeppcb_to_yolo_with_a_split(pcb: Path, tmp_path: Path, capsys):
    out = tmp_path / "yolo"
    code = main(["data", "convert", "--from", "deeppcb", str(pcb), "--to", "yolo", str(out),
                 "--split", "0.67,0.33"])
    text = capsys.readouterr().out
    assert code == 0
    assert "yolo: 6 images, 12 boxes, 0 file(s) skipped, 0 warning(s)" in text
    assert sorted(p.name for p in (out / "images").iterdir()) == ["test", "train"]
    assert (out / "templates" / "train").is_dir() and (out / "data.yaml").is_file()


def test_convert_yolo_to_coco_and_back(pcb: Path, tmp_path: Path):
    assert main(["data", "convert", "--from", "deeppcb", str(pcb), "--to", "yolo",
                 str(tmp_path / "y")]) == 0
    assert main(["data", "convert", "--from", "yolo", str(tmp_path / "y"), "--to", "coco",
                 str(tmp_path / "c")]) == 0
    document = json.loads((tmp_path / "c" / "annotations" / "instances_train.json").read_text())
    assert len(document["images"]) == 6 and len(document["annotations"]) == 12
    assert main(["data", "import", "--format", "coco", "--data", str(tmp_path / "c"), "--out",
                 str(tmp_path / "c.json")]) == 0


def test_convert_errors_are_one_clear_line(pcb: Path, tmp_path: Path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    code = main(["data", "convert", "--from", "deeppcb", str(pcb), "--to", "coco",
                 str(tmp_path / "full")])
    assert code == 2 and "folder is not empty" in capsys.readouterr().err
    (pcb / "group00041" / "00041_not" / "00041000.txt").write_text("1 2 10 12 9\n")
    code = main(["data", "convert", "--from", "deeppcb", str(pcb), "--to", "coco",
                 str(tmp_path / "c")])
    assert code == 2 and "00041000.txt:1: unknown defect type 9" in capsys.readouterr().err
    code = main(["data", "convert", "--from", "deeppcb", str(pcb), "--to", "coco",
                 str(tmp_path / "c"), "--skip-bad"])
    text = capsys.readouterr().out
    assert code == 0 and "5 images, 10 boxes, 1 file(s) skipped" in text
    assert "00041000_test.jpg: group00041/00041_not/00041000.txt:1: unknown defect type 9" in text


def test_convert_help_and_bad_choice(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "convert", "--help"])
    assert exit_info.value.code == 0 and "--from" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["data", "convert", "--from", "voc", "x", "--to", "coco", "y"])


def test_detection_format_is_refused_for_image_models(pcb: Path):
    args = argparse.Namespace(data=str(pcb), format="deeppcb", skip_bad=False)
    with pytest.raises(ConfigError, match="holds boxes"):
        load_dataset(args)
