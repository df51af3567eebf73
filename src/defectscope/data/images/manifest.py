"""The dataset manifest: every sample with its label, split, group and content hash, plus a
version id that changes whenever any of that changes.

Why: a model bundle records the manifest's ``version_id``, so "which data was this trained on?"
always has an exact answer, and ``verify_files`` catches images edited after the import.

>>> manifest = Manifest.load("dataset.json")           # doctest: +SKIP
>>> manifest.version_id                                 # doctest: +SKIP
'3f2a9c0d51e8b774'
>>> manifest.select(split="train", good=True)           # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from defectscope.data.hashing import sha256_file
from defectscope.fileio import write_text_atomic
from defectscope.errors import DataError
from defectscope.values import GOOD, SPLITS, Sample

FORMAT = "defectscope-manifest"
FORMAT_VERSION = 1
UNSPLIT = "unsplit"


@dataclass(frozen=True)
class Manifest:
    """An immutable list of samples under one dataset root.

    ``root`` is made absolute; sample paths under it are stored relative to it (POSIX). ``source``
    records how the manifest was made (importer and options) and is not part of ``version_id``.
    """

    root: Path
    samples: tuple[Sample, ...]
    name: str = ""
    parent_version: str | None = None
    source: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        root = Path(os.path.abspath(self.root))
        samples = tuple(_relative_to(sample, root) for sample in self.samples)
        _check_samples(samples)
        object.__setattr__(self, "root", root)
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "source", dict(self.source))

    @cached_property
    def version_id(self) -> str:
        """First 16 hex chars of the sha256 of the canonical JSON of the content.

        Same samples (in any order) and parent give the same id; any change of a path, label,
        hash, mask, group or split gives a new one.
        """
        rows = sorted((s.to_dict() for s in self.samples), key=lambda row: row["path"])
        canonical = json.dumps(
            {"samples": rows, "parent_version": self.parent_version},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    def path_of(self, sample: Sample) -> Path:
        """The image file of ``sample`` as an absolute path."""
        return self.root / sample.path

    def mask_path_of(self, sample: Sample) -> Path | None:
        """The mask file of ``sample`` as an absolute path, or None when it has no mask."""
        return None if sample.mask_path is None else self.root / sample.mask_path

    def select(
        self, split: str | None = None, label: str | None = None, good: bool | None = None
    ) -> tuple[Sample, ...]:
        """Samples matching every given filter (``split="unsplit"`` picks samples with no split).

        >>> manifest.select(split="train", good=True)   # doctest: +SKIP
        """
        return tuple(
            s
            for s in self.samples
            if (split is None or (s.split or UNSPLIT) == split)
            and (label is None or s.label == label)
            and (good is None or s.is_good == good)
        )

    @property
    def labels(self) -> tuple[str, ...]:
        """Sorted unique labels, ``"good"`` included when present."""
        return tuple(sorted({s.label for s in self.samples}))

    @property
    def defect_types(self) -> tuple[str, ...]:
        """Sorted unique labels other than ``"good"``."""
        return tuple(label for label in self.labels if label != GOOD)

    def counts(self) -> dict[str, dict[str, int]]:
        """``{label: {"train": n, "val": n, "test": n, "unsplit": n}}``, every key present."""
        tally = Counter((s.label, s.split or UNSPLIT) for s in self.samples)
        return {
            label: {split: tally[(label, split)] for split in (*SPLITS, UNSPLIT)}
            for label in self.labels
        }

    def with_samples(self, samples: Iterable[Sample]) -> Manifest:
        """A new manifest with the same root, name, parent and source but other samples."""
        return dataclasses.replace(self, samples=tuple(samples))

    def to_dict(self) -> dict[str, Any]:
        """The JSON document ``save`` writes."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "version_id": self.version_id,
            "name": self.name,
            "root": str(self.root),
            "parent_version": self.parent_version,
            "source": dict(self.source),
            "samples": [s.to_dict() for s in self.samples],
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the manifest as JSON atomically (temp file, then rename); returns the path."""
        text = json.dumps(self.to_dict(), indent=1, sort_keys=False) + "\n"
        return write_text_atomic(path, text)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Manifest:
        """Read a manifest saved by ``save``, refusing anything that is not exactly that.

        A relative ``root`` is resolved against the manifest file's folder, so a dataset and its
        manifest can move together.
        """
        source = Path(path)
        if not source.is_file():
            raise DataError(f"{source}: manifest file does not exist (check the path)")
        try:
            document = json.loads(source.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DataError(
                f"{source}: not valid JSON ({error}); re-create it with `defectscope data import`"
            ) from error
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise DataError(
                f'{source}: not a defectscope manifest (no "format": "{FORMAT}"); '
                "create one with `defectscope data import`"
            )
        version = document.get("format_version")
        if not isinstance(version, int):
            raise DataError(f"{source}: format_version missing or not an integer")
        if version > FORMAT_VERSION:
            raise DataError(
                f"{source}: manifest format_version {version} was made by a newer defectscope "
                f"(this one reads up to {FORMAT_VERSION}); upgrade defectscope"
            )
        try:
            root = Path(document["root"])
            manifest = cls(
                root=root if root.is_absolute() else source.parent / root,
                samples=tuple(Sample.from_dict(row) for row in document["samples"]),
                name=str(document.get("name") or ""),
                parent_version=document.get("parent_version"),
                source=document.get("source") or {},
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise DataError(
                f"{source}: manifest is malformed (missing or wrong field: {error}); "
                "re-create it with `defectscope data import`"
            ) from error
        if document.get("version_id") != manifest.version_id:
            raise DataError(
                f"{source}: version_id {document.get('version_id')!r} does not match the content "
                f"({manifest.version_id}): the file was edited by hand or damaged; re-create it "
                "with `defectscope data import` (or `data split`) instead of editing it"
            )
        return manifest

    def verify_files(self) -> list[tuple[Path, str]]:
        """Re-hash every image and mask; return ``(path, problem)`` for each missing or changed."""
        problems: list[tuple[Path, str]] = []
        for sample in self.samples:
            pairs = [(self.path_of(sample), sample.sha256)]
            mask = self.mask_path_of(sample)
            if mask is not None:
                pairs.append((mask, sample.mask_sha256))
            for file, expected in pairs:
                if not file.is_file():
                    problems.append((file, "file is missing"))
                elif sha256_file(file) != expected:
                    problems.append((file, "content changed since the manifest was made"))
        return problems


def _relative_to(sample: Sample, root: Path) -> Sample:
    """Store paths under ``root`` relative to it with POSIX separators; leave others absolute."""

    def rel(path: str | None) -> str | None:
        if path is None:
            return None
        candidate = Path(path)
        if candidate.is_absolute():
            try:
                return Path(os.path.abspath(candidate)).relative_to(root).as_posix()
            except ValueError:
                return candidate.as_posix()
        return candidate.as_posix()

    path, mask = rel(sample.path), rel(sample.mask_path)
    if path == sample.path and mask == sample.mask_path:
        return sample
    return dataclasses.replace(sample, path=path, mask_path=mask)


def _check_samples(samples: tuple[Sample, ...]) -> None:
    seen: set[str] = set()
    for sample in samples:
        if not isinstance(sample, Sample):
            raise DataError(f"manifest samples must be Sample objects, got {type(sample).__name__}")
        if sample.path in seen:
            raise DataError(f"{sample.path}: listed twice in the manifest; keep one entry")
        seen.add(sample.path)
        if sample.split is not None and sample.split not in SPLITS:
            raise DataError(
                f"{sample.path}: unknown split {sample.split!r}; use one of {', '.join(SPLITS)}"
            )
