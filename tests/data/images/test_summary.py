"""Tests for defectscope.data.images.summary."""

from defectscope.data.images.importers import Skipped
from defectscope.data.images.manifest import Manifest
from defectscope.data.images.summary import format_summary
from defectscope.values import Sample


def test_summary_table_and_sections():
    samples = (
        Sample("a.png", "good", "0" * 64, split="train", group="p1"),
        Sample("b.png", "good", "1" * 64, split="test", group="p2"),
        Sample("c.png", "crack", "2" * 64, mask_path="c_mask.png", mask_sha256="3" * 64),
    )
    manifest = Manifest("/data/tiles", samples, name="tiles", parent_version="abcd")
    skipped = [Skipped(f"junk{i}.txt", "not an image") for i in range(25)]
    text = format_summary(manifest, skipped, ["class 'crack' is small"])
    lines = text.splitlines()
    assert "tiles" in lines[0] and manifest.version_id in lines[1] and "parent abcd" in lines[1]
    assert "/data/tiles" in lines[2]
    header = next(line for line in lines if line.startswith("class"))
    assert header.split() == ["class", "train", "val", "test", "unsplit", "total"]
    assert next(line for line in lines if line.startswith("crack")).split() == [
        "crack",
        "0",
        "0",
        "0",
        "1",
        "1",
    ]
    assert next(line for line in lines if line.startswith("good")).split() == [
        "good",
        "1",
        "0",
        "1",
        "0",
        "2",
    ]
    assert next(line for line in lines if line.startswith("total")).split() == [
        "total",
        "1",
        "0",
        "1",
        "1",
        "3",
    ]
    assert "1 of 3 images" in text and "Groups    2" in text
    assert "Skipped 25 file(s)" in text and "junk19.txt" in text and "junk20.txt" not in text
    assert "... and 5 more" in text
    assert "Warnings (1)" in text and "class 'crack' is small" in text


def test_summary_of_empty_manifest():
    text = format_summary(Manifest("/d", ()))
    assert "(unnamed)" in text and "0 of 0 images" in text and "Skipped" not in text
