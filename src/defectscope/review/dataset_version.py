"""Confirmed labels become a new dataset version; the old version is never touched.

Layout under the datasets folder (``out_root``)::

    images/ab/abcd....png      reviewed images, named by content hash (hard link or copy)
    masks/ab/abcd....png       their masks (255 = defect), named by the image's hash
    <version_id>/manifest.json one folder per version; its parent_version is the base's id
    versions.jsonl             one line per exported version, oldest first

The new manifest holds every sample of the base (by absolute path where it lives outside
``out_root``) plus the reviewed parts. Defective parts go to the test split (anomaly models
learn from good parts only); good parts go to train or test by a seeded hash of their content,
so the candidate learns from new good parts while the regression gate still sees unseen ones.
A box without a mask is written as a filled rectangle mask.

One label store: what is exported for a reviewed part is its image's record in the label store
(``store.labels``, keyed by content hash), so a correction made later in the labelling studio
(another defect type, a painted mask, or "good") is what the new version gets. The review table
only says which parts were confirmed and which are already exported; a part whose image has no
record there (its studio label was deleted, or a database from before the shared store) is
exported as the review recorded it.

>>> result = export_version(base, reviews, archive, "datasets")      # doctest: +SKIP
>>> result.manifest.parent_version == base.version_id                # doctest: +SKIP
True
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path


from defectscope.data.hashing import sha256_file
from defectscope.data.image_io import image_size
from defectscope.data.images.manifest import Manifest
from defectscope.errors import ConfigError, DataError
from defectscope.review.labels import mask_png
from defectscope.store.archive import ImageArchive
from defectscope.store.label_masks import label_mask
from defectscope.store.labels import ImageLabel, LabelBox
from defectscope.store.reviews import ReviewLabel, ReviewStore
from defectscope.values import GOOD, Sample

HISTORY = "versions.jsonl"


@dataclass(frozen=True)
class ExportConfig:
    """How reviewed good parts are split: this share to train (seeded), the rest to test."""

    train_fraction_good: float = 0.5
    seed: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.train_fraction_good <= 1.0:
            raise ConfigError("train_fraction_good must be between 0 and 1")


@dataclass(frozen=True)
class ExportResult:
    manifest: Manifest
    path: Path
    added: tuple[Sample, ...]
    skipped: tuple[str, ...]  # labels left for later, with the reason


def split_for(label: str, sha256: str, config: ExportConfig) -> str:
    """Defective images go to test; good ones to train or test by a seeded hash of content."""
    if label != GOOD:
        return "test"
    draw = int.from_bytes(hashlib.sha256(f"{config.seed}:{sha256}".encode()).digest()[:8], "big")
    return "train" if draw / 2**64 < config.train_fraction_good else "test"


def place_file(source: Path, target: Path) -> Path:
    """Hard-link (or copy) ``source`` to ``target`` unless it is already there (same hash)."""
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=".place-", dir=target.parent)) / target.name
    try:
        try:
            os.link(source, temp)
        except OSError:
            shutil.copyfile(source, temp)
        os.replace(temp, target)
    finally:
        shutil.rmtree(temp.parent, ignore_errors=True)
    return target


def write_file(target: Path, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically (temporary file, then rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(temp, target)
    return target


def absolute_samples(base: Manifest) -> list[Sample]:
    """The base's samples with absolute paths, so a manifest under another root can list them."""
    rows = []
    for s in base.samples:
        mask = base.mask_path_of(s)
        rows.append(Sample(str(base.path_of(s)), s.label, s.sha256,
                           None if mask is None else str(mask), s.mask_sha256, s.group, s.split))
    return rows


def export_version(base: Manifest | None, reviews: ReviewStore, archive: ImageArchive,
                   out_root: str | os.PathLike[str], config: ExportConfig = ExportConfig()
                   ) -> ExportResult:
    """Write a new version with every label not yet exported; marks those labels exported.

    Labels whose part has no archived image are skipped (and stay unexported, so no label is
    lost). Raises ``DataError`` when no label can be exported.
    """
    out_root = Path(out_root).resolve()
    pending = reviews.labels(exported=False)
    known = {s.sha256 for s in base.samples} if base else set()
    added: list[Sample] = []
    taken: list[int] = []
    skipped: list[str] = []
    for label in pending:
        stored = reviews.results.get(label.result_id)
        image = archive.resolve(stored.image_path) if stored and stored.image_path else None
        if image is None:
            skipped.append(f"result {label.result_id}: no archived image; kept for later")
            continue
        sha = sha256_file(image)
        if sha in known:
            taken.append(label.id or 0)  # already in the dataset by content: nothing to add
            skipped.append(f"result {label.result_id}: same image already in the dataset")
            continue
        known.add(sha)
        record = reviews.image_labels.get(sha) or _as_image_label(label, image, sha)
        target = place_file(image, out_root / "images" / sha[:2] / f"{sha}{image.suffix.lower()}")
        mask_file, mask_sha = _write_mask(record, archive, out_root / "masks" / sha[:2])
        added.append(Sample(str(target), record.label, sha, mask_file, mask_sha,
                            group=label.part_id or None, split=split_for(record.label, sha, config)))
        taken.append(label.id or 0)
    if not added:
        reasons = "; ".join(skipped) or "no reviewed part waits for export"
        raise DataError(f"nothing to export: {reasons}")
    samples = (absolute_samples(base) if base else []) + added
    manifest = Manifest(root=out_root, samples=tuple(samples),
                        name=config.name or (base.name if base else "reviewed"),
                        parent_version=base.version_id if base else None,
                        source={"review": {
                            "added": len(added),
                            "defect_types": sorted({s.label for s in added} - {GOOD}),
                            "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(
                                timespec="seconds"),
                            "train_fraction_good": config.train_fraction_good,
                            "seed": config.seed}})
    target = out_root / manifest.version_id / "manifest.json"
    if target.exists():
        raise DataError(f"{target}: version {manifest.version_id} already exists; nothing new")
    manifest.save(target)
    with open(out_root / HISTORY, "a", encoding="utf-8") as log:
        log.write(json.dumps({"version_id": manifest.version_id,
                              "parent_version": manifest.parent_version,
                              "path": str(target), "samples": len(manifest.samples),
                              "added": len(added),
                              "created": manifest.source["review"]["exported_at"]}) + "\n")
    reviews.mark_exported(taken, manifest.version_id)
    return ExportResult(manifest, target, tuple(manifest.samples[-len(added):]), tuple(skipped))


def _as_image_label(label: ReviewLabel, image: Path, sha: str) -> ImageLabel:
    """The review row as a label-store record (for a part the shared store has no record of)."""
    height, width = image_size(image)
    boxes = () if label.box is None else (LabelBox(label.box, label.label),)
    return ImageLabel(sha, label.label, str(image), width, height, mask_path=label.mask_path,
                      boxes=boxes, source="review", labeller=label.reviewer)


def _write_mask(record: ImageLabel, archive: ImageArchive, folder: Path
                ) -> tuple[str | None, str | None]:
    mask = label_mask(record, archive) if record.is_defect else None
    if mask is None:
        return None, None
    data = mask_png(mask)
    target = write_file(folder / f"{record.sha256}.png", data)
    return str(target), hashlib.sha256(data).hexdigest()


def versions(out_root: str | os.PathLike[str]) -> list[dict]:
    """Exported versions, oldest first (empty when none)."""
    path = Path(out_root) / HISTORY
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def latest_manifest(out_root: str | os.PathLike[str], base: Manifest | None = None
                    ) -> Manifest | None:
    """The newest exported version, else ``base``: what the next export builds on."""
    history = versions(out_root)
    return Manifest.load(history[-1]["path"]) if history else base
