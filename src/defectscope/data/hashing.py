"""Content hashes of dataset files.

A manifest records the sha256 of every image and mask, so a silently edited or replaced file is
caught before it quietly changes a model (see ``Manifest.verify_files``).

>>> sha256_file("part_001.png")  # doctest: +SKIP
'9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'
"""

from __future__ import annotations

import hashlib
import os

_CHUNK = 1 << 20  # 1 MiB: large enough to be fast, small enough to never hold a big file


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex sha256 of a file's bytes, read in chunks so memory stays flat."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
