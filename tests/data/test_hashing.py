import hashlib

from defectscope.data.hashing import sha256_file


def test_sha256_matches_hashlib_for_multi_chunk_file(tmp_path):
    data = bytes(range(256)) * 9000  # > 1 MiB, so several chunks
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_sha256_of_empty_file(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert sha256_file(str(path)) == hashlib.sha256(b"").hexdigest()
