"""Promotion: make a candidate bundle the ``current`` model with one atomic rename.

``current`` is a symbolic link to ``releases/<model_version>`` beside it. Promoting copies the
candidate into ``releases/`` (through a temporary folder, so a half-copied release never has its
final name) and then swaps the link with ``os.replace`` of a fresh link: a reader opening
``current`` sees the old model or the new one, never a mix. The first promotion over a plain
``current`` folder moves that folder into ``releases/`` first. Rolling back is pointing
``current`` at an older release (``promote(releases/OLD, current)``).

>>> promote("candidates/2024-06-01", "models/current")     # doctest: +SKIP
PosixPath('models/releases/3f2a9c0d51e8')
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from defectscope.bundle import read_bundle_info


def _version(model_dir: Path) -> str:
    return read_bundle_info(model_dir)["files"]["tensors.safetensors"][:12]


def promote(candidate_dir: str | os.PathLike[str], current: str | os.PathLike[str]) -> Path:
    """Point ``current`` at a copy of ``candidate_dir`` in ``releases/``; returns the release."""
    candidate, current = Path(candidate_dir), Path(current)
    releases = current.parent / "releases"
    releases.mkdir(parents=True, exist_ok=True)
    release = releases / _version(candidate)  # also checks the candidate's files
    if not release.exists():
        staging = Path(tempfile.mkdtemp(prefix=".release-", dir=releases))
        try:
            shutil.copytree(candidate, staging, dirs_exist_ok=True)
            os.replace(staging, release)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    if current.exists() and not current.is_symlink():
        old, n = releases / _version(current), 1
        while old.exists():  # same tensors, other bundle.json (time, manifest): keep both
            old, n = releases / f"{_version(current)}-{n}", n + 1
        os.replace(current, old)
    link = current.parent / f".{current.name}.link"
    link.unlink(missing_ok=True)
    os.symlink(os.path.relpath(release, current.parent), link)
    os.replace(link, current)
    return release
