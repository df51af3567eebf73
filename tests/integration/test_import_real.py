"""Import the real Magnetic Tile dataset from ../shared/data (skipped where it is absent)."""

import os
from collections import Counter
from pathlib import Path

import pytest

from defectscope.data import format_summary, import_folder, split_manifest


def shared_data() -> Path:
    configured = os.environ.get("DEFECTSCOPE_SHARED_DATA")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.mark.integration
def test_import_magnetic_tile():
    root = shared_data() / "magnetic-tile"
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set DEFECTSCOPE_SHARED_DATA)")
    result = import_folder(root)
    manifest = result.manifest
    assert Counter(s.label for s in manifest.samples) == {
        "good": 952,
        "blowhole": 115,
        "break": 85,
        "crack": 57,
        "fray": 32,
        "uneven": 103,
    }
    assert sum(s.mask_path is not None for s in manifest.samples) == 1344
    assert all(s.mask_path.endswith(".png") and s.path.endswith(".jpg") for s in manifest.samples)
    assert all(s.reason == "not an image" for s in result.skipped)
    split = split_manifest(manifest, seed=0)
    assert split.warnings == ()
    for per_split in split.manifest.counts().values():
        assert min(per_split["train"], per_split["val"], per_split["test"]) > 0
    assert "blowhole" in format_summary(split.manifest)
