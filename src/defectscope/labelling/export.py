"""Labelled images out of the label store, as a new dataset version or in a standard layout.

Formats (``out`` must be a new or empty folder):

- ``manifest``: a new dataset version: ``images/ab/<sha>.<ext>`` (hard link or copy),
  ``masks/ab/<sha>.png`` and ``manifest.json`` with every image's content hash and the base's
  version as ``parent_version``. The base's other samples stay in (absolute paths); a labelled
  image replaces the base's sample of the same content.
- ``mvtec``: MVTec AD: ``train/good``, ``test/good``, ``test/<type>``, ``ground_truth/<type>/
  <name>_mask.png``; files are named ``<sha[:16]><ext>``.
- ``coco`` and ``yolo``: boxes (``data.coco.export_coco``, ``data.yolo_boxes.export_yolo``).

Splits: an image keeps the base's split; otherwise defects go to test and good images to train
or test by a seeded hash of their content (the review export's rule). A defect with boxes but no
mask gets the boxes filled as its mask; one with a mask but no boxes gets one box per connected
region of the mask.

>>> export_labels(labels.all(), archive, "mvtec", "out/mvtec", base=manifest)  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from defectscope.data.boxes.coco import export_coco
from defectscope.data.boxes.dataset import Box, DetectionDataset, DetectionSample
from defectscope.data.boxes.exports import prepare_out_dir
from defectscope.data.images.manifest import Manifest
from defectscope.data.boxes.yolo import export_yolo
from defectscope.errors import ConfigError, DataError
from defectscope.review.dataset_version import (ExportConfig, absolute_samples, place_file, split_for,
                                       write_file)
from defectscope.review.labels import mask_png
from defectscope.store.archive import ImageArchive
from defectscope.store.label_masks import label_mask
from defectscope.store.labels import ImageLabel
from defectscope.values import GOOD, Sample

FORMATS = ("manifest", "mvtec", "coco", "yolo")


@dataclass(frozen=True)
class LabelExport:
    """What was written: the folder, how many labelled images, and (``manifest``) the version."""

    format: str
    out: Path
    images: int
    version_id: str | None = None
    parent_version: str | None = None

    def to_dict(self) -> dict:
        return {"format": self.format, "out": str(self.out), "images": self.images,
                "version_id": self.version_id, "parent_version": self.parent_version}


def _image(label: ImageLabel) -> Path:
    path = Path(label.image_path)
    if not path.is_file():
        raise DataError(f"image {label.sha256[:12]}: its file {path} is gone; put it back or "
                        "remove the label")
    return path


def label_boxes(label: ImageLabel, archive: ImageArchive) -> tuple[Box, ...]:
    """The label's boxes, else one box per connected region of its mask (the defect type)."""
    if label.boxes:
        return tuple(Box(*b.box, b.label) for b in label.boxes)
    mask = label_mask(label, archive) if label.is_defect else None
    if mask is None or not mask.any():
        return ()
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return tuple(Box(float(x), float(y), float(x + w), float(y + h), label.label)
                 for x, y, w, h, _area in stats[1:count])


def _splits(labels: Sequence[ImageLabel], base: Manifest | None, config: ExportConfig
            ) -> dict[str, str]:
    known = {s.sha256: s.split for s in base.samples if s.split} if base else {}
    return {label.sha256: known.get(label.sha256) or split_for(label.label, label.sha256, config)
            for label in labels}


def export_labels(labels: Sequence[ImageLabel], archive: ImageArchive, format: str,
                  out: str | os.PathLike[str], *, base: Manifest | None = None,
                  classes: Sequence[str] = (), config: ExportConfig = ExportConfig()
                  ) -> LabelExport:
    """Write ``labels`` to ``out`` in ``format`` (see ``FORMATS`` and the module docstring).

    ``classes`` fixes the class order of COCO and YOLO (every label's defect type is added).
    Raises ``ConfigError`` (unknown format, non-empty folder) or ``DataError`` (no labels, a
    missing image or mask).
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if not labels:
        raise DataError("nothing to export: no image is labelled yet")
    for label in labels:
        _image(label)
    out_dir = prepare_out_dir(out)
    splits = _splits(labels, base, config)
    if format == "manifest":
        return _manifest(labels, archive, out_dir, base, splits, config)
    if format == "mvtec":
        return _mvtec(labels, archive, out_dir, splits)
    names = list(dict.fromkeys([*classes, *sorted({b.label for label in labels
                                                   for b in label_boxes(label, archive)})]))
    samples = [DetectionSample(str(_image(label)), label.sha256, label.width, label.height,
                               label_boxes(label, archive), split=splits[label.sha256])
               for label in labels]
    dataset = DetectionDataset(out_dir, tuple(names), tuple(samples), name="labelled")
    out_dir.rmdir()  # the exporters check the folder themselves (it is empty)
    written = export_coco(dataset, out_dir) if format == "coco" else export_yolo(dataset, out_dir)
    return LabelExport(format, written, len(labels))


def _manifest(labels: Sequence[ImageLabel], archive: ImageArchive, out: Path,
              base: Manifest | None, splits: dict[str, str], config: ExportConfig
              ) -> LabelExport:
    relabelled = {label.sha256 for label in labels}
    kept = [s for s in absolute_samples(base) if s.sha256 not in relabelled] if base else []
    groups = {s.sha256: s.group for s in base.samples} if base else {}
    added = []
    for label in labels:
        image = _image(label)
        target = place_file(image, out / "images" / label.sha256[:2]
                            / f"{label.sha256}{image.suffix.lower()}")
        mask_file = mask_sha = None
        mask = label_mask(label, archive) if label.is_defect else None
        if mask is not None:
            data = mask_png(mask)
            mask_file = str(write_file(out / "masks" / label.sha256[:2] / f"{label.sha256}.png",
                                       data))
            mask_sha = hashlib.sha256(data).hexdigest()
        added.append(Sample(str(target), label.label, label.sha256, mask_file, mask_sha,
                            groups.get(label.sha256), splits[label.sha256]))
    manifest = Manifest(root=out, samples=tuple(kept + added),
                        name=config.name or (base.name if base else "labelled"),
                        parent_version=base.version_id if base else None,
                        source={"labelling": {
                            "labelled": len(added),
                            "defect_types": sorted({s.label for s in added} - {GOOD}),
                            "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(
                                timespec="seconds"),
                            "train_fraction_good": config.train_fraction_good,
                            "seed": config.seed}})
    manifest.save(out / "manifest.json")
    return LabelExport("manifest", out, len(added), manifest.version_id, manifest.parent_version)


def _mvtec(labels: Sequence[ImageLabel], archive: ImageArchive, out: Path,
           splits: dict[str, str]) -> LabelExport:
    for label in labels:
        image = _image(label)
        name = f"{label.sha256[:16]}{image.suffix.lower()}"
        if not label.is_defect:
            folder = "train" if splits[label.sha256] == "train" else "test"
            target = out / folder / GOOD / name
        else:
            target = out / "test" / label.label / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image, target)
        mask = label_mask(label, archive) if label.is_defect else None
        if mask is not None:
            write_file(out / "ground_truth" / label.label / f"{label.sha256[:16]}_mask.png",
                       mask_png(mask))
    return LabelExport("mvtec", out, len(labels))
