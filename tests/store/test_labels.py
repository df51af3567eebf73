"""The label store: one record per image content hash, kept across restarts, shared with the
review queue, and clear errors for bad labels."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from defectscope.errors import ConfigError
from defectscope.review import submit_review
from defectscope.review.labels import mask_png
from defectscope.store import (ImageArchive, ImageLabel, LabelBox, LabelStore, ResultStore,
                               ReviewStore)
from defectscope.values import PartResult, Verdict
from tests.fakes import write_png

SHA = "ab" * 32


def test_a_label_survives_a_restart_and_each_save_replaces_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'results.db'}"
    store = ResultStore(url)
    labels = LabelStore(store)
    first = labels.save(ImageLabel(SHA, "good", "/data/a.png", 10, 8))
    second = labels.save(ImageLabel(SHA, "scratch", "/data/a.png", 10, 8,
                                    boxes=(LabelBox((1, 2, 5, 6), "scratch"),)))
    assert (first.revision, second.revision) == (1, 2)
    store.close()

    reopened = ResultStore(url)  # a restarted service
    try:
        again = LabelStore(reopened)
        saved = again.get(SHA)
        assert saved is not None and saved.label == "scratch" and saved.revision == 2
        assert saved.boxes == (LabelBox((1.0, 2.0, 5.0, 6.0), "scratch"),)
        assert len(again.all()) == 1 and again.counts() == {"scratch": 1}
        assert again.delete(SHA) and again.get(SHA) is None and not again.delete(SHA)
    finally:
        reopened.close()


@pytest.mark.parametrize("change, message", [
    ({"sha256": "not-a-hash"}, "image hash"),
    ({"label": ""}, "1 to 64"),
    ({"label": " padded"}, "surrounding spaces"),
    ({"label": "../up"}, "names folders"),
    ({"label": "good", "mask_path": "/m.png"}, "no mask"),
    ({"width": 0}, "not positive"),
    ({"source": "elsewhere"}, "source"),
    ({"boxes": (LabelBox((5, 5, 4, 9), "scratch"),)}, "empty or outside"),
    ({"boxes": (LabelBox((0, 0, 11, 4), "scratch"),)}, "empty or outside"),
    ({"boxes": (LabelBox((0, 0, 2, 2), "good"),)}, "defect type"),
])
def test_bad_labels_are_refused_with_the_reason(change, message):
    fields = {"sha256": SHA, "label": "scratch", "image_path": "/a.png", "width": 10,
              "height": 8, **change}
    with pytest.raises(ConfigError, match=message):
        ImageLabel(**fields)


def test_a_review_and_a_studio_label_of_the_same_image_are_one_record(tmp_path):
    store = ResultStore(f"sqlite:///{tmp_path / 'results.db'}")
    try:
        archive = ImageArchive(tmp_path / "archive")
        dataset_file = write_png(tmp_path / "data" / "a.png", 200, size=(8, 10))
        data = dataset_file.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        archived = archive.put(data, ".png")  # the same bytes, uploaded to the line
        reviews = ReviewStore(store)
        result_id = store.add(PartResult("p1", 1.0, Verdict.UNSURE, 0.5, 0.5, "m1"),
                              image_path=str(archived))
        mask = np.zeros((8, 10), bool)
        mask[2:5, 3:7] = True
        submit_review(reviews, archive, result_id, "NG", "dent", mask_png(mask))
        labels = LabelStore(store)
        record = labels.get(sha)
        assert record is not None and record.source == "review" and record.label == "dent"
        assert archive.resolve(record.mask_path) is not None

        # the studio relabels the same image (its dataset copy): still one record
        labels.save(ImageLabel(sha, "scratch", str(dataset_file), 10, 8, source="studio",
                               mask_path=record.mask_path))
        assert [(r.sha256, r.label, r.revision) for r in labels.all()] == [(sha, "scratch", 2)]
        assert reviews.get(result_id).label == "dent"  # the review's own record is kept
    finally:
        store.close()
