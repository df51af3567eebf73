"""Tests for defectscope.data.images.manifest: version ids, queries, save/load and verification."""

import dataclasses
import json

import pytest

from defectscope.data.hashing import sha256_file
from defectscope.data.images.manifest import Manifest
from defectscope.errors import DataError
from defectscope.values import Sample


def make_manifest(root, n_good=3, n_bad=2, **kwargs) -> Manifest:
    samples = [Sample(f"good/{i}.png", "good", f"{i:064x}", split="train") for i in range(n_good)]
    samples += [
        Sample(
            f"crack/{i}.png",
            "crack",
            f"{i + 50:064x}",
            mask_path=f"crack/{i}_mask.png",
            mask_sha256=f"{i + 90:064x}",
            group=f"lot{i % 2}",
            split="test",
        )
        for i in range(n_bad)
    ]
    return Manifest(root=root, samples=tuple(samples), **kwargs)


def test_version_id_is_stable_and_order_independent(tmp_path):
    a = make_manifest(tmp_path)
    b = a.with_samples(reversed(a.samples))
    assert len(a.version_id) == 16 and a.version_id == b.version_id
    assert dataclasses.replace(a, name="other", source={"x": 1}).version_id == a.version_id


@pytest.mark.parametrize(
    "change",
    [
        {"label": "dent"},
        {"sha256": "f" * 64},
        {"mask_path": None},
        {"group": "lot9"},
        {"split": "val"},
    ],
)
def test_version_id_changes_with_content(tmp_path, change):
    manifest = make_manifest(tmp_path)
    changed = manifest.samples[-1].__class__(**{**manifest.samples[-1].to_dict(), **change})
    other = manifest.with_samples((*manifest.samples[:-1], changed))
    assert other.version_id != manifest.version_id


def test_version_id_depends_on_parent(tmp_path):
    manifest = make_manifest(tmp_path)
    assert dataclasses.replace(manifest, parent_version="abc").version_id != manifest.version_id


def test_queries(tmp_path):
    manifest = make_manifest(tmp_path)
    assert manifest.labels == ("crack", "good")
    assert manifest.defect_types == ("crack",)
    assert len(manifest.select(split="train")) == 3
    assert len(manifest.select(good=False)) == 2
    assert len(manifest.select(label="crack", split="train")) == 0
    assert manifest.select(split="unsplit") == ()
    assert manifest.counts() == {
        "crack": {"train": 0, "val": 0, "test": 2, "unsplit": 0},
        "good": {"train": 3, "val": 0, "test": 0, "unsplit": 0},
    }


def test_paths_resolve_against_root_and_absolute_paths_become_relative(tmp_path):
    sample = Sample(
        str(tmp_path / "a" / "x.png"), "good", "0" * 64, mask_path=str(tmp_path / "a" / "m.png")
    )
    manifest = Manifest(root=tmp_path, samples=(sample,))
    stored = manifest.samples[0]
    assert stored.path == "a/x.png" and stored.mask_path == "a/m.png"
    assert manifest.path_of(stored) == tmp_path / "a" / "x.png"
    assert manifest.mask_path_of(stored) == tmp_path / "a" / "m.png"
    assert manifest.mask_path_of(dataclasses.replace(stored, mask_path=None)) is None


def test_relative_root_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Manifest(root="data", samples=()).root == tmp_path / "data"


def test_duplicate_path_and_unknown_split_are_refused(tmp_path):
    sample = Sample("a.png", "good", "0" * 64)
    with pytest.raises(DataError, match="twice"):
        Manifest(root=tmp_path, samples=(sample, sample))
    with pytest.raises(DataError, match="unknown split"):
        Manifest(root=tmp_path, samples=(dataclasses.replace(sample, split="holdout"),))


def test_save_load_round_trip(tmp_path):
    manifest = make_manifest(
        tmp_path, name="demo", parent_version="0123456789abcdef", source={"importer": "x"}
    )
    path = manifest.save(tmp_path / "out" / "m.json")
    document = json.loads(path.read_text())
    assert document["format"] == "defectscope-manifest" and document["format_version"] == 1
    assert document["version_id"] == manifest.version_id and document["root"] == str(tmp_path)
    assert not list(path.parent.glob("*.tmp"))
    loaded = Manifest.load(path)
    assert loaded == manifest and loaded.version_id == manifest.version_id


def test_relative_root_in_file_resolves_against_manifest_folder(tmp_path):
    path = make_manifest(tmp_path).save(tmp_path / "m.json")
    document = json.loads(path.read_text())
    document["root"] = "data"
    path.write_text(json.dumps(document))
    assert Manifest.load(path).root == tmp_path / "data"


def _rewrite(path, **changes):
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


def test_load_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        Manifest.load(tmp_path / "nope.json")


def test_load_invalid_json(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        Manifest.load(path)


def test_load_wrong_format(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"format": "coco"}))
    with pytest.raises(DataError, match="not a defectscope manifest"):
        Manifest.load(path)


def test_load_newer_format_version(tmp_path):
    path = make_manifest(tmp_path).save(tmp_path / "m.json")
    _rewrite(path, format_version=99)
    with pytest.raises(DataError, match="newer defectscope.*upgrade"):
        Manifest.load(path)


def test_load_tampered_manifest(tmp_path):
    path = make_manifest(tmp_path).save(tmp_path / "m.json")
    document = json.loads(path.read_text())
    document["samples"][0]["label"] = "crack"
    path.write_text(json.dumps(document))
    with pytest.raises(DataError, match="does not match the content"):
        Manifest.load(path)


def test_load_malformed_samples(tmp_path):
    path = make_manifest(tmp_path).save(tmp_path / "m.json")
    document = json.loads(path.read_text())
    del document["samples"][0]["sha256"]
    path.write_text(json.dumps(document))
    with pytest.raises(DataError, match="malformed"):
        Manifest.load(path)


def test_verify_files_reports_missing_and_changed(tmp_path, image_writer, mask_writer):
    image = image_writer(tmp_path / "a.png")
    mask = mask_writer(tmp_path / "a_mask.png")
    other = image_writer(tmp_path / "b.png")
    samples = (
        Sample("a.png", "crack", sha256_file(image), "a_mask.png", sha256_file(mask)),
        Sample("b.png", "good", sha256_file(other)),
    )
    manifest = Manifest(root=tmp_path, samples=samples)
    assert manifest.verify_files() == []
    mask.write_bytes(b"changed")
    other.unlink()
    problems = dict(manifest.verify_files())
    assert set(problems) == {mask, other}
    assert "changed" in problems[mask] and "missing" in problems[other]
