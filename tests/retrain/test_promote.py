"""Promotion swaps a `current` link atomically and keeps every release."""

from __future__ import annotations

import json

import pytest

from defectscope.errors import BundleError
from defectscope.retrain import promote


def fake_bundle(folder, tensors: bytes):
    import hashlib

    folder.mkdir(parents=True)
    (folder / "tensors.safetensors").write_bytes(tensors)
    (folder / "bundle.json").write_text(json.dumps({
        "format": "defectscope-bundle", "format_version": 1,
        "files": {"tensors.safetensors": hashlib.sha256(tensors).hexdigest()}}))
    return folder


def test_first_promotion_moves_the_folder_then_swaps_links(tmp_path):
    current = fake_bundle(tmp_path / "models" / "current", b"old")
    first = promote(fake_bundle(tmp_path / "c1", b"new"), current)
    assert current.is_symlink() and (current / "tensors.safetensors").read_bytes() == b"new"
    releases = sorted(p.name for p in (tmp_path / "models" / "releases").iterdir())
    assert len(releases) == 2 and first.name in releases
    old = [p for p in (tmp_path / "models" / "releases").iterdir() if p != first][0]
    promote(old, current)  # roll back
    assert (current / "tensors.safetensors").read_bytes() == b"old"


def test_a_damaged_candidate_is_refused(tmp_path):
    candidate = fake_bundle(tmp_path / "c1", b"new")
    (candidate / "tensors.safetensors").write_bytes(b"tampered")
    with pytest.raises(BundleError):
        promote(candidate, tmp_path / "models" / "current")
