"""The images a labelling session works through: a folder or a manifest, in the order that
teaches the model most.

Order: images the current model is least sure about come first: the UNSURE band (and any image
it could not score), then the rest by how near the score is to the threshold (relative to the
threshold), so a person's first labels land where the model would learn most. Scores are
computed once per session (``score_all``), not stored.

>>> images = open_label_dataset("data/tiles/manifest.json", classes=None)      # doctest: +SKIP
>>> images.parent_version, images.classes                                       # doctest: +SKIP
('3f2a9c0d51e8b774', ('crack', 'scratch'))
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from defectscope.data.hashing import sha256_file
from defectscope.data.image_io import IMAGE_EXTENSIONS
from defectscope.data.images.manifest import Manifest
from defectscope.errors import ConfigError, DataError
from defectscope.values import GOOD


@dataclass(frozen=True)
class LabelItem:
    """One image to label: its content hash, file and (when the manifest had one) old label."""

    sha256: str
    path: Path
    prior_label: str | None = None
    split: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class ItemScore:
    score: float
    verdict: str  # OK, NG or UNSURE


@dataclass
class LabelDataset:
    """The images of one labelling session (one item per distinct content hash)."""

    items: tuple[LabelItem, ...]
    classes: tuple[str, ...]
    base: Manifest | None = None
    scores: dict[str, ItemScore] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_sha = {item.sha256: item for item in self.items}

    @property
    def parent_version(self) -> str | None:
        return self.base.version_id if self.base is not None else None

    def item(self, sha256: str) -> LabelItem | None:
        return self.by_sha.get(sha256)

    def score_all(self, score: Callable[[LabelItem], ItemScore]) -> None:
        """Score every image not scored yet (an image that cannot be read counts as UNSURE)."""
        for item in self.items:
            if item.sha256 not in self.scores:
                try:
                    self.scores[item.sha256] = score(item)
                except DataError:
                    self.scores[item.sha256] = ItemScore(math.nan, "UNSURE")

    def ordered(self, threshold: float) -> list[LabelItem]:
        """Least sure first: UNSURE (or unscored), then by |score - threshold| / threshold."""
        def key(item: LabelItem) -> tuple:
            found = self.scores.get(item.sha256)
            if found is None or not math.isfinite(found.score):
                return (0, 0.0, str(item.path))
            distance = abs(found.score - threshold) / max(abs(threshold), 1e-12)
            return (0 if found.verdict == "UNSURE" else 1, distance, str(item.path))
        return sorted(self.items, key=key)


def _classes(given: Sequence[str] | None, found: Sequence[str]) -> tuple[str, ...]:
    names = [c.strip() for c in (given if given else found)]
    if not given and not names:
        raise ConfigError("no defect types: the manifest has none; pass --label-classes "
                          "(for example --label-classes scratch,crack)")
    for name in names:
        if not name or name == GOOD or len(name) > 64:
            raise ConfigError(f"defect type {name!r}: 1 to 64 characters, and not {GOOD!r}")
    if len(set(names)) != len(names):
        raise ConfigError(f"defect types repeat: {names}")
    return tuple(names)


def open_label_dataset(source: str | os.PathLike[str],
                       classes: Sequence[str] | None = None) -> LabelDataset:
    """A folder of images (searched recursively) or a manifest JSON; ``classes`` overrides
    the manifest's defect types and is required for a folder."""
    path = Path(source)
    if path.is_file():
        base = Manifest.load(path)
        items, seen = [], set()
        for sample in base.samples:
            if sample.sha256 not in seen:
                seen.add(sample.sha256)
                items.append(LabelItem(sample.sha256, base.path_of(sample), sample.label,
                                       sample.split, sample.group))
        return LabelDataset(tuple(items), _classes(classes, base.defect_types), base)
    if not path.is_dir():
        raise ConfigError(f"{path}: not a folder of images or a manifest file")
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"{path}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found")
    items, seen = [], set()
    for file in files:
        sha = sha256_file(file)
        if sha not in seen:
            seen.add(sha)
            items.append(LabelItem(sha, file.resolve()))
    return LabelDataset(tuple(items), _classes(classes, ()))
