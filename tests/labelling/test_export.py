"""Label export: a new dataset version (hashes, parent), MVTec AD, COCO and YOLO layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from defectscope.data.boxes.coco import import_coco
from defectscope.data.hashing import sha256_file
from defectscope.data.images.importers import import_mvtec
from defectscope.data.images.manifest import Manifest
from defectscope.data.boxes.yolo import import_yolo_boxes
from defectscope.errors import ConfigError, DataError
from defectscope.labelling.export import export_labels
from defectscope.review.labels import mask_png
from defectscope.store import ImageArchive, ImageLabel, LabelBox
from defectscope.values import Sample
from tests.fakes import write_png


@pytest.fixture
def labelled(tmp_path):
    """Three labelled images (good; dent with a mask; scratch with a box) and a base manifest."""
    archive = ImageArchive(tmp_path / "archive")
    files = [write_png(tmp_path / "data" / f"{name}.png", value, size=(12, 16))
             for name, value in (("a", 10), ("b", 90), ("c", 170), ("d", 250))]
    shas = [sha256_file(f) for f in files]
    base = Manifest(tmp_path / "data", tuple(Sample(str(f), "good", s, split="train")
                                             for f, s in zip(files, shas)), name="tiles")
    base.save(tmp_path / "data" / "manifest.json")
    mask = np.zeros((12, 16), bool)
    mask[3:7, 4:10] = True
    mask_path = archive.put(mask_png(mask), ".png")
    labels = [ImageLabel(shas[0], "good", str(files[0]), 16, 12),
              ImageLabel(shas[1], "dent", str(files[1]), 16, 12, mask_path=str(mask_path)),
              ImageLabel(shas[2], "scratch", str(files[2]), 16, 12,
                         boxes=(LabelBox((1, 2, 5, 8), "scratch"),))]
    return labels, archive, base, mask


def test_manifest_export_is_a_new_version_with_hashes_and_its_parent(labelled, tmp_path):
    labels, archive, base, mask = labelled
    result = export_labels(labels, archive, "manifest", tmp_path / "out", base=base)
    manifest = Manifest.load(tmp_path / "out" / "manifest.json")
    assert result.version_id == manifest.version_id != base.version_id
    assert manifest.parent_version == base.version_id == result.parent_version
    by_sha = {s.sha256: s for s in manifest.samples}
    assert len(manifest.samples) == 4  # the unlabelled base image is kept
    assert [by_sha[label.sha256].label for label in labels] == ["good", "dent", "scratch"]
    assert manifest.verify_files() == []  # every image and mask matches its recorded hash
    for sample in manifest.samples:
        assert sha256_file(manifest.path_of(sample)) == sample.sha256
    dent = by_sha[labels[1].sha256]
    assert np.array_equal(np.asarray(Image.open(manifest.mask_path_of(dent))) > 0, mask)
    scratch = np.asarray(Image.open(manifest.mask_path_of(by_sha[labels[2].sha256]))) > 0
    assert scratch[2:8, 1:5].all() and scratch.sum() == 24  # the box filled
    assert by_sha[labels[0].sha256].mask_path is None
    assert by_sha[labels[0].sha256].split == "train"  # the base's split is kept


def test_mvtec_export_reads_back_with_the_mvtec_importer(labelled, tmp_path):
    labels, archive, base, mask = labelled
    export_labels(labels, archive, "mvtec", tmp_path / "mvtec", base=base)
    imported = import_mvtec(tmp_path / "mvtec")
    samples = {s.sha256: s for s in imported.manifest.samples}
    assert samples[labels[0].sha256].label == "good" and samples[labels[0].sha256].split == "train"
    dent = samples[labels[1].sha256]
    assert dent.label == "dent" and dent.split == "test"
    read = np.asarray(Image.open(imported.manifest.mask_path_of(dent))) > 0
    assert np.array_equal(read, mask)
    assert samples[labels[2].sha256].mask_path is not None


def test_coco_and_yolo_exports_carry_boxes_from_boxes_and_from_masks(labelled, tmp_path):
    labels, archive, base, _ = labelled
    export_labels(labels, archive, "coco", tmp_path / "coco", base=base)
    export_labels(labels, archive, "yolo", tmp_path / "yolo", base=base)
    for imported in (import_coco(tmp_path / "coco"), import_yolo_boxes(tmp_path / "yolo")):
        dataset = imported.dataset
        assert set(dataset.classes) == {"dent", "scratch"}
        boxes = {s.sha256: [(b.label, b.xyxy) for b in s.boxes] for s in dataset.samples}
        assert boxes[labels[0].sha256] == []
        assert boxes[labels[1].sha256] == [("dent", pytest.approx((4, 3, 10, 7), abs=0.01))]
        assert boxes[labels[2].sha256] == [("scratch", pytest.approx((1, 2, 5, 8), abs=0.01))]
    document = json.loads(next((tmp_path / "coco" / "annotations").glob("*.json")).read_text())
    assert len(document["annotations"]) == 2


def test_bad_exports_are_clear_errors(labelled, tmp_path):
    labels, archive, base, _ = labelled
    with pytest.raises(ConfigError, match="unknown export format"):
        export_labels(labels, archive, "voc", tmp_path / "x")
    with pytest.raises(DataError, match="no image is labelled"):
        export_labels([], archive, "manifest", tmp_path / "x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        export_labels(labels, archive, "manifest", tmp_path / "full")
    gone = ImageLabel(labels[1].sha256, "dent", str(tmp_path / "missing.png"), 16, 12)
    with pytest.raises(DataError, match="is gone"):
        export_labels([gone], archive, "mvtec", tmp_path / "y")
    lost_mask = ImageLabel(labels[1].sha256, "dent", labels[1].image_path, 16, 12,
                           mask_path=str(tmp_path / "elsewhere.png"))
    with pytest.raises(DataError, match="missing from the archive"):
        export_labels([lost_mask], archive, "manifest", tmp_path / "z")
