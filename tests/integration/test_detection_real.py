"""Import the real detection datasets from ../shared/data (skipped where they are absent)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from defectscope.data.boxes.deeppcb import DEEPPCB_CLASSES, import_deeppcb
from defectscope.data.boxes.splits import split_detection
from defectscope.data.boxes.yolo import import_yolo_boxes


def shared_data() -> Path:
    configured = os.environ.get("DEFECTSCOPE_SHARED_DATA")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def real(name: str) -> Path:
    root = shared_data() / name
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set DEFECTSCOPE_SHARED_DATA)")
    return root


@pytest.mark.integration
def test_import_deeppcb():
    result = import_deeppcb(real("deeppcb"), verify=False)
    dataset = result.dataset
    assert len(dataset.samples) == 999 and dataset.classes == DEEPPCB_CLASSES
    assert dataset.has_templates and result.warnings == ()
    assert Counter(s.group for s in dataset.samples) == {
        "group00041": 200, "group13000": 198, "group20085": 291, "group44000": 49,
        "group50600": 50, "group77000": 100, "group92000": 111}
    assert sum(dataset.box_counts().values()) == 6864
    assert {s.path for s in result.skipped} == {"README.md", "LICENSE", "trainval.txt"}
    split = split_detection(dataset, fractions=(0.8, 0.2), seed=0, names=("train", "test"))
    assert {s.group for s in split.select("test")} == {"group00041"}
    assert len(split.select("train")) == 799


@pytest.mark.integration
def test_import_neu_det_with_its_split():
    result = import_yolo_boxes(real("neu-det"), verify=False)
    dataset = result.dataset
    assert dataset.classes == ("crazing", "inclusion", "patches", "pitted_surface",
                               "rolled-in_scale", "scratches")
    assert (len(dataset.select("train")), len(dataset.select("val"))) == (1440, 360)
    assert sum(dataset.box_counts().values()) == 4189
    assert result.warnings == ()
    assert all((s.width, s.height) == (200, 200) for s in dataset.samples)
