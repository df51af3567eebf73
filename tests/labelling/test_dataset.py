"""The studio's image list: from a folder or a manifest, least sure first."""

from __future__ import annotations

import math

import pytest

from defectscope.data.hashing import sha256_file
from defectscope.data.images.manifest import Manifest
from defectscope.errors import ConfigError, DataError
from defectscope.labelling.dataset import ItemScore, open_label_dataset
from defectscope.values import Sample
from tests.fakes import write_png


def test_a_folder_needs_classes_and_lists_each_content_once(tmp_path):
    write_png(tmp_path / "imgs" / "a.png", 10)
    write_png(tmp_path / "imgs" / "sub" / "copy.png", 10)  # the same bytes: one image
    write_png(tmp_path / "imgs" / "b.png", 20)
    (tmp_path / "imgs" / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="--label-classes"):
        open_label_dataset(tmp_path / "imgs")
    images = open_label_dataset(tmp_path / "imgs", ["dent", "scratch"])
    assert len(images.items) == 2 and images.classes == ("dent", "scratch")
    assert images.parent_version is None
    with pytest.raises(ConfigError, match="not 'good'"):
        open_label_dataset(tmp_path / "imgs", ["good"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        open_label_dataset(tmp_path / "empty", ["dent"])
    with pytest.raises(ConfigError, match="not a folder"):
        open_label_dataset(tmp_path / "nowhere", ["dent"])


def test_a_manifest_gives_classes_parent_and_the_least_sure_order(tmp_path):
    files = [write_png(tmp_path / f"{i}.png", 10 * i + 5) for i in range(5)]
    shas = [sha256_file(f) for f in files]
    labels = ["good", "crack", "good", "good", "scratch"]
    base = Manifest(tmp_path, tuple(Sample(str(f), label, s)
                                    for f, label, s in zip(files, labels, shas)))
    base.save(tmp_path / "manifest.json")
    images = open_label_dataset(tmp_path / "manifest.json")
    assert images.classes == ("crack", "scratch")
    assert images.parent_version == base.version_id
    scores = {shas[0]: ItemScore(0.10, "OK"), shas[1]: ItemScore(0.52, "UNSURE"),
              shas[2]: ItemScore(0.45, "OK"), shas[3]: ItemScore(0.80, "NG"),
              shas[4]: ItemScore(math.nan, "UNSURE")}
    images.score_all(lambda item: scores[item.sha256])
    order = [item.sha256 for item in images.ordered(threshold=0.5)]
    # unscoreable and UNSURE first, then nearest the threshold
    assert order == [shas[4], shas[1], shas[2], shas[3], shas[0]]


def test_an_unreadable_image_is_scored_unsure_not_fatal(tmp_path):
    write_png(tmp_path / "a.png", 10)
    images = open_label_dataset(tmp_path, ["dent"])

    def broken(item):
        raise DataError("cannot read")

    images.score_all(broken)
    assert images.scores[images.items[0].sha256].verdict == "UNSURE"
