"""What every dataset importer shares: candidates, the all-or-nothing build, skip records.

An importer first decides from file names alone (a ``Plan`` of ``Candidate`` images, files it
skips and warnings), then ``build_result`` decodes and hashes every candidate once, so a corrupt
or truncated file is found at import time, and lists every file no rule used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from defectscope.data.hashing import sha256_file
from defectscope.data.image_io import load_image, load_mask
from defectscope.data.images.manifest import Manifest
from defectscope.errors import ConfigError, DataError, ImageReadError
from defectscope.values import Sample

MAX_LISTED = 20  # files named in one error message; the rest are counted


@dataclass(frozen=True)
class Skipped:
    """A file that was not imported, and why (``path`` is relative to the dataset root)."""

    path: str
    reason: str


@dataclass(frozen=True)
class ImportResult:
    """The manifest, every file left out (with its reason) and warnings worth reading."""

    manifest: Manifest
    skipped: tuple[Skipped, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Candidate:
    """An image an importer wants, before it is decoded and hashed."""

    path: Path
    label: str
    split: str | None = None
    mask: Path | None = None
    group: str | None = None


@dataclass
class Plan:
    """What an importer decided from file names alone."""

    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def build_result(base: Path, plan: Plan, on_bad: str, source: dict[str, Any]) -> ImportResult:
    """Decode and hash every candidate; collect bad files; account for every other file."""
    samples: list[Sample] = []
    bad: list[Skipped] = []
    bad_masks: list[Skipped] = []
    for candidate in tqdm(plan.candidates, desc="checking images", unit="img", disable=None):
        try:
            samples.append(_sample(candidate, base))
        except ImageReadError as error:
            image = relative_name(candidate.path, base)
            where = ("" if Path(error.path) == candidate.path
                     else f"mask {relative_name(error.path, base)}: ")
            bad.append(Skipped(image, where + error.problem))
            if candidate.mask is not None:
                bad_masks.append(Skipped(relative_name(candidate.mask, base),
                                         f"mask of bad image {image}"))
    if bad and on_bad == "error":
        raise DataError(
            f"{base}: {len(bad)} bad file(s): {listing([f'{b.path} ({b.reason})' for b in bad])}. "
            'Fix or remove them, or pass on_bad="skip" (CLI: --skip-bad) to import without them'
        )
    if not samples:
        raise DataError(f"{base}: no readable images were found; check the folder and its layout")
    skipped = plan.skipped + bad + bad_masks
    _account_for_every_file(base, samples, skipped)
    manifest = Manifest(root=base, samples=tuple(samples), name=base.name, source=source)
    return ImportResult(manifest, tuple(skipped), tuple(plan.warnings))


def _sample(candidate: Candidate, base: Path) -> Sample:
    image = load_image(candidate.path)
    mask_sha = None
    if candidate.mask is not None:
        load_mask(candidate.mask, image.shape[:2], image_path=candidate.path)
        mask_sha = sha256_file(candidate.mask)
    return Sample(
        path=relative_name(candidate.path, base),
        label=candidate.label,
        sha256=sha256_file(candidate.path),
        mask_path=None if candidate.mask is None else relative_name(candidate.mask, base),
        mask_sha256=mask_sha,
        group=candidate.group,
        split=candidate.split,
    )


def _account_for_every_file(base: Path, samples: list[Sample], skipped: list[Skipped]) -> None:
    """Nothing is left out silently: list any file no rule used (a safety net)."""
    used = {s.path for s in samples} | {s.mask_path for s in samples if s.mask_path}
    used |= {s.path for s in skipped}
    for file in walk_files(base):
        if relative_name(file, base) not in used:
            skipped.append(Skipped(relative_name(file, base), "not used by the importer"))


def walk_files(folder: Path) -> list[Path]:
    """Every non-hidden file under ``folder`` (hidden folders are not entered), sorted."""
    found = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(current) / f for f in files if not f.startswith("."))
    return sorted(found)


def check_root(root: str | os.PathLike[str]) -> Path:
    base = Path(os.path.abspath(root))
    if not base.exists():
        raise DataError(f"{base}: dataset folder does not exist; check the path")
    if not base.is_dir():
        raise DataError(f"{base}: is a file, not a dataset folder; pass the folder")
    return base


def check_on_bad(on_bad: str) -> None:
    if on_bad not in ("error", "skip"):
        raise ConfigError(f"on_bad must be 'error' or 'skip', got {on_bad!r}")


def listing(items: Sequence[str]) -> str:
    shown = "; ".join(items[:MAX_LISTED])
    more = len(items) - MAX_LISTED
    return shown + (f"; ... and {more} more" if more > 0 else "")


def relative_name(path: str | os.PathLike[str], base: Path) -> str:
    try:
        return Path(path).relative_to(base).as_posix()
    except ValueError:
        return Path(path).as_posix()
