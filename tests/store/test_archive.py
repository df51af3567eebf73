"""The image archive: content-hash names, atomic and idempotent writes, no path traversal."""

from __future__ import annotations

import hashlib
import os

import pytest

from defectscope.errors import ConfigError
from defectscope.store import ImageArchive

DATA = b"\x89PNG\r\n\x1a\n" + b"pixels" * 10


def test_put_stores_under_the_content_hash(tmp_path):
    archive = ImageArchive(tmp_path / "archive")
    sha = hashlib.sha256(DATA).hexdigest()
    path = archive.put(DATA, ".png")
    assert path == tmp_path / "archive" / sha[:2] / f"{sha}.png"
    assert path.read_bytes() == DATA
    assert archive.path_for(sha, ".png") == path
    assert archive.find(sha) == path
    assert archive.find("0" * 64) is None


def test_put_is_idempotent_and_leaves_no_temporary_files(tmp_path):
    archive = ImageArchive(tmp_path)
    first = archive.put(DATA)
    mtime = first.stat().st_mtime_ns
    assert archive.put(DATA) == first
    assert first.stat().st_mtime_ns == mtime
    names = [name for _, _, files in os.walk(tmp_path) for name in files]
    assert names == [first.name]


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ab/../../x", "A" * 64, "a" * 63, "",
                                 "a" * 64 + "/", "..", "%2e%2e"])
def test_ids_that_are_not_hashes_are_refused(tmp_path, bad):
    with pytest.raises(ConfigError, match="not an image id"):
        ImageArchive(tmp_path).path_for(bad)


def test_bad_suffix_and_empty_data_are_refused(tmp_path):
    archive = ImageArchive(tmp_path)
    with pytest.raises(ConfigError, match="suffix"):
        archive.path_for("a" * 64, "/../../x.sh")
    with pytest.raises(ConfigError, match="empty"):
        archive.put(b"")


def test_resolve_accepts_only_files_inside_the_archive(tmp_path):
    archive = ImageArchive(tmp_path / "archive")
    path = archive.put(DATA)
    outside = tmp_path / "secret.png"
    outside.write_bytes(DATA)
    assert archive.resolve(str(path)) == path
    assert archive.resolve(path.relative_to(archive.root)) == path
    assert archive.resolve(str(outside)) is None
    assert archive.resolve("../secret.png") is None
    assert archive.resolve(str(archive.root / "ab" / "missing.png")) is None
