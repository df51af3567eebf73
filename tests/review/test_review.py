"""Reviews with masks and boxes, and the export of labels into a new dataset version."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image

from defectscope.data.hashing import sha256_file
from defectscope.data.images.importers import import_mvtec
from defectscope.data.images.manifest import Manifest
from defectscope.errors import ConfigError, DataError
from defectscope.review import ExportConfig, export_version, latest_manifest, submit_review, versions
from defectscope.store import (AlreadyReviewedError, ImageArchive, ResultStore, ReviewStore,
                               UnknownPartError)
from defectscope.values import PartResult, Verdict

from tests.conftest import defective_part, good_part


def encode(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def world(tmp_path):
    """A results log with 4 archived parts (2 good-looking, 2 with a blob) and one without image."""
    store = ResultStore(f"sqlite:///{tmp_path / 'results.db'}")
    archive = ImageArchive(tmp_path / "archive")
    ids = []
    for i in range(4):
        image = good_part(900 + i) if i < 2 else defective_part(950 + i)[0]
        path = archive.put(encode(image), ".png")
        ids.append(store.add(PartResult(f"p{i}", 100.0 + i, Verdict.UNSURE, 0.5, 0.5, "m1"),
                             image_path=str(path)))
    ids.append(store.add(PartResult("no-image", 200.0, Verdict.UNSURE, 0.5, 0.5, "m1")))
    yield ReviewStore(store), archive, ids
    store.close()


def test_review_with_mask_and_clear_errors(world):
    reviews, archive, ids = world
    mask = np.zeros((72, 88), np.uint8)
    mask[10:20, 10:20] = 255
    with pytest.raises(UnknownPartError):
        submit_review(reviews, archive, 999, "OK")
    bad = [({"verdict": "NG"}, "defect type"), ({"verdict": "maybe"}, "OK or NG"),
           ({"verdict": "OK", "defect_type": "dent"}, "no defect type"),
           ({"verdict": "NG", "defect_type": "dent", "mask_png_bytes": encode(mask[:50])},
            "paint the mask at the image's size"),
           ({"verdict": "NG", "defect_type": "dent", "mask_png_bytes": b"not a png"},
            "not a readable PNG"),
           ({"verdict": "NG", "defect_type": "dent", "mask_png_bytes": encode(mask * 0)},
            "no painted pixel"),
           ({"verdict": "NG", "defect_type": "dent", "box": [80, 10, 100, 20]}, "outside"),
           ({"verdict": "NG", "defect_type": "dent", "box": [1, 2, 3]}, "4 numbers")]
    for kwargs, message in bad:
        with pytest.raises(ConfigError, match=message):
            submit_review(reviews, archive, ids[2], **kwargs)
    assert reviews.labels() == []  # nothing half-written
    with pytest.raises(ConfigError, match="no archived image"):
        submit_review(reviews, archive, ids[4], "NG", "dent", box=[0, 0, 1, 1])
    label = submit_review(reviews, archive, ids[2], "NG", "blob", mask_png_bytes=encode(mask))
    assert label.mask_path and archive.resolve(label.mask_path) is not None
    with pytest.raises(AlreadyReviewedError):
        submit_review(reviews, archive, ids[2], "OK")


def test_export_makes_a_new_version_and_never_touches_the_old(world, tiny_mvtec, tmp_path):
    reviews, archive, ids = world
    base = import_mvtec(tiny_mvtec).manifest
    base_file = base.save(tmp_path / "base.json")
    before = base_file.read_bytes()
    mask = np.zeros((72, 88), bool)
    mask[30:40, 30:40] = True
    submit_review(reviews, archive, ids[0], "OK")
    submit_review(reviews, archive, ids[1], "OK")
    submit_review(reviews, archive, ids[2], "NG", "blob", mask_png_bytes=encode(mask))
    submit_review(reviews, archive, ids[3], "NG", "crack", box=[5, 6, 15, 26])
    submit_review(reviews, archive, ids[4], "OK")  # no archived image: kept for later
    out = tmp_path / "datasets"
    result = export_version(base, reviews, archive, out, ExportConfig(train_fraction_good=1.0))
    manifest = Manifest.load(result.path)
    assert manifest.parent_version == base.version_id != manifest.version_id
    assert len(manifest.samples) == len(base.samples) + 4 and base_file.read_bytes() == before
    assert manifest.verify_files() == []
    added = {s.label: s for s in result.added}
    assert {s.split for s in result.added if s.label == "good"} == {"train"}
    assert added["blob"].split == "test" and added["crack"].mask_path
    crack_mask = np.asarray(Image.open(manifest.mask_path_of(added["crack"])))
    assert crack_mask[6:26, 5:15].all() and crack_mask.sum() == 255 * 20 * 10
    assert manifest.source["review"]["defect_types"] == ["blob", "crack"]
    assert len(result.skipped) == 1 and "no archived image" in result.skipped[0]
    assert [label.result_id for label in reviews.labels(exported=False)] == [ids[4]]
    assert versions(out)[-1]["version_id"] == manifest.version_id
    assert latest_manifest(out, base).version_id == manifest.version_id
    with pytest.raises(DataError, match="nothing to export"):
        export_version(manifest, reviews, archive, out)


def test_export_takes_the_shared_label_store_so_a_studio_correction_wins(world, tmp_path):
    """Review and studio write one store: a part reviewed as a crack with a box and later
    repainted in the studio as a dent exports as the dent with the painted mask; a part reviewed
    NG and relabelled good in the studio exports as good, without a mask."""
    reviews, archive, ids = world
    submit_review(reviews, archive, ids[2], "NG", "crack", box=[5, 6, 15, 26])
    submit_review(reviews, archive, ids[3], "NG", "crack", box=[5, 6, 15, 26])
    submit_review(reviews, archive, ids[0], "OK")
    by_id = {result_id: reviews.results.get(result_id) for result_id in ids}
    corrected = {}
    for result_id in (ids[2], ids[3]):
        image = archive.resolve(by_id[result_id].image_path)
        corrected[result_id] = reviews.image_labels.get(sha256_file(image))
        assert corrected[result_id].source == "review"  # the review wrote the shared record
    painted = np.zeros((72, 88), bool)
    painted[40:50, 60:70] = True
    dent = corrected[ids[2]]
    reviews.image_labels.save(dataclasses.replace(
        dent, label="dent", boxes=(), source="studio",
        mask_path=str(archive.put(encode(painted.astype(np.uint8) * 255), ".png"))))
    good = corrected[ids[3]]
    reviews.image_labels.save(dataclasses.replace(good, label="good", boxes=(), source="studio"))
    result = export_version(None, reviews, archive, tmp_path / "datasets")
    by_sha = {s.sha256: s for s in result.added}
    assert by_sha[dent.sha256].label == "dent"
    exported = np.asarray(Image.open(result.manifest.mask_path_of(by_sha[dent.sha256]))) > 0
    assert np.array_equal(exported, painted)
    assert by_sha[good.sha256].label == "good" and by_sha[good.sha256].mask_path is None
    assert result.manifest.source["review"]["defect_types"] == ["dent"]
    # the review table still records what the operator confirmed
    assert reviews.get(ids[2]).label == "crack"


def test_export_falls_back_to_the_review_row_without_a_shared_record(world, tmp_path):
    reviews, archive, ids = world
    submit_review(reviews, archive, ids[2], "NG", "crack", box=[5, 6, 15, 26])
    for label in reviews.image_labels.all():
        reviews.image_labels.delete(label.sha256)
    result = export_version(None, reviews, archive, tmp_path / "datasets")
    (sample,) = result.added
    assert sample.label == "crack"
    mask = np.asarray(Image.open(result.manifest.mask_path_of(sample))) > 0
    assert mask[6:26, 5:15].all() and mask.sum() == 20 * 10
