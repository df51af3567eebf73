"""Images on disk under their content hash: ``root/ab/abcdef....png``.

Why content-hash names: the same image stored twice takes one file, a name can never point at
other content, and a name built from a hash cannot be used to climb out of the archive (ids are
checked to be 64 hex digits). Writes go to a temporary file renamed into place, so a reader or a
crash never sees half an image.

>>> archive = ImageArchive("archive")                              # doctest: +SKIP
>>> path = archive.put(png_bytes, ".png")                          # doctest: +SKIP
>>> archive.path_for(hashlib.sha256(png_bytes).hexdigest(), ".png") == path  # doctest: +SKIP
True
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from defectscope.data.image_io import IMAGE_EXTENSIONS
from defectscope.errors import ConfigError

_SHA256 = re.compile(r"[0-9a-f]{64}")


class ImageArchive:
    """A folder of images named by the sha256 of their bytes; safe to share between processes."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def path_for(self, sha256: str, suffix: str = ".png") -> Path:
        """Where the image with this hash lives (it may not exist). Refuses anything but a hash."""
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise ConfigError(f"{sha256!r} is not an image id (64 lowercase hex digits)")
        suffix = suffix.lower()
        if suffix not in IMAGE_EXTENSIONS:
            raise ConfigError(f"{suffix!r} is not an image file suffix "
                              f"({', '.join(sorted(IMAGE_EXTENSIONS))})")
        return self.root / sha256[:2] / f"{sha256}{suffix}"

    def put(self, data: bytes, suffix: str = ".png") -> Path:
        """Store ``data`` (encoded image bytes) and return its path; storing it again is a no-op."""
        if not data:
            raise ConfigError("refusing to archive an empty image")
        target = self.path_for(hashlib.sha256(data).hexdigest(), suffix)
        if target.is_file() and target.stat().st_size == len(data):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return target

    def find(self, sha256: str) -> Path | None:
        """The stored file with this hash, whatever its suffix, or None."""
        for suffix in sorted(IMAGE_EXTENSIONS):
            path = self.path_for(sha256, suffix)
            if path.is_file():
                return path
        return None

    def resolve(self, stored_path: str | os.PathLike[str]) -> Path | None:
        """A path recorded in the results log, if it is a file inside this archive; else None.

        The service serves files through this, so a tampered database row cannot make it read
        ``/etc/passwd``.
        """
        path = Path(stored_path)
        path = (path if path.is_absolute() else self.root / path).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            return None
        return path
