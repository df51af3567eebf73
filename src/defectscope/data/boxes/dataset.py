"""Detection datasets: images with labelled boxes, optionally paired with a defect-free template.

A ``DetectionDataset`` is to object detection what ``Manifest`` is to image labels: one record per
image (path, content hash, size, boxes, optional template, group, split), a class list, and a
version id that changes whenever any of that changes. Importers (YOLO, COCO, DeepPCB) produce it;
exporters write YOLO and COCO from it; detection models train from it.

>>> dataset = DetectionDataset.load("deeppcb.json")                      # doctest: +SKIP
>>> image, template = load_pair(dataset, dataset.samples[0])             # doctest: +SKIP
>>> dataset.samples[0].boxes[0]                                          # doctest: +SKIP
Box(x1=466.0, y1=441.0, x2=493.0, y2=470.0, label='mousebite')
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from defectscope.data.stream import load_verified
from defectscope.errors import DataError
from defectscope.fileio import write_text_atomic
from defectscope.values import SPLITS

FORMAT = "defectscope-detection-dataset"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Box:
    """A labelled, axis-aligned box in pixel coordinates: x1 < x2 and y1 < y2, corners in
    the image's own pixel frame (x to the right, y down; x2/y2 exclusive like a slice end)."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: str

    def __post_init__(self) -> None:
        values = (self.x1, self.y1, self.x2, self.y2)
        if not all(np.isfinite(v) for v in values):
            raise DataError(f"box {values} has a non-finite corner")
        if not (self.x2 > self.x1 and self.y2 > self.y1):
            raise DataError(f"box {values} has zero or negative area")

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    @property
    def area(self) -> float:
        return (self.x2 - self.x1) * (self.y2 - self.y1)

    def to_dict(self) -> dict[str, Any]:
        return {"box": [self.x1, self.y1, self.x2, self.y2], "label": self.label}

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> "Box":
        x1, y1, x2, y2 = (float(v) for v in row["box"])
        return cls(x1, y1, x2, y2, str(row["label"]))


@dataclass(frozen=True)
class DetectionSample:
    """One image with its boxes. ``template_path`` is its aligned defect-free reference (DeepPCB's
    ``_temp.jpg``) when the dataset has one. Paths are relative to the dataset root (POSIX) or
    absolute. An image with no boxes is a good part."""

    path: str
    sha256: str
    width: int
    height: int
    boxes: tuple[Box, ...] = ()
    template_path: str | None = None
    template_sha256: str | None = None
    group: str | None = None
    split: str | None = None

    def __post_init__(self) -> None:
        if self.split is not None and self.split not in SPLITS:
            raise DataError(f"{self.path}: split {self.split!r} is not one of {SPLITS}")
        if (self.template_path is None) != (self.template_sha256 is None):
            raise DataError(f"{self.path}: a template needs both its path and its sha256")

    @property
    def is_good(self) -> bool:
        return not self.boxes

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "width": self.width,
                "height": self.height, "boxes": [b.to_dict() for b in self.boxes],
                "template_path": self.template_path, "template_sha256": self.template_sha256,
                "group": self.group, "split": self.split}

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> "DetectionSample":
        return cls(path=str(row["path"]), sha256=str(row["sha256"]), width=int(row["width"]),
                   height=int(row["height"]),
                   boxes=tuple(Box.from_dict(b) for b in row.get("boxes", ())),
                   template_path=row.get("template_path"),
                   template_sha256=row.get("template_sha256"), group=row.get("group"),
                   split=row.get("split"))


@dataclass(frozen=True)
class DetectionDataset:
    """An immutable list of detection samples under one root, with the class names in order
    (class id = index, as in YOLO). ``source`` records how it was made; not part of the id."""

    root: Path
    classes: tuple[str, ...]
    samples: tuple[DetectionSample, ...]
    name: str = ""
    source: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(os.path.abspath(self.root)))
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "samples", tuple(self.samples))
        object.__setattr__(self, "source", dict(self.source))
        if len(set(self.classes)) != len(self.classes):
            raise DataError(f"class names repeat: {list(self.classes)}")
        known = set(self.classes)
        seen: set[str] = set()
        for sample in self.samples:
            if sample.path in seen:
                raise DataError(f"{sample.path} appears twice in the dataset")
            seen.add(sample.path)
            unknown = {b.label for b in sample.boxes} - known
            if unknown:
                raise DataError(f"{sample.path}: box labels {sorted(unknown)} are not among the "
                                f"dataset's classes {list(self.classes)}")

    @cached_property
    def version_id(self) -> str:
        """First 16 hex chars of the sha256 of the canonical JSON of classes and samples."""
        rows = sorted((s.to_dict() for s in self.samples), key=lambda row: row["path"])
        canonical = json.dumps({"classes": list(self.classes), "samples": rows},
                               sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    def path_of(self, sample: DetectionSample) -> Path:
        return self.root / sample.path

    def template_path_of(self, sample: DetectionSample) -> Path | None:
        return None if sample.template_path is None else self.root / sample.template_path

    @property
    def has_templates(self) -> bool:
        return bool(self.samples) and all(s.template_path for s in self.samples)

    def select(self, split: str | None = None) -> tuple[DetectionSample, ...]:
        return tuple(s for s in self.samples if split is None or s.split == split)

    def with_samples(self, samples: Iterable[DetectionSample]) -> "DetectionDataset":
        return replace(self, samples=tuple(samples))

    def only(self, split: str) -> "DetectionDataset":
        """This dataset with the samples of ``split`` alone (what a box model's ``fit`` takes)."""
        return self.with_samples(self.select(split))

    def box_counts(self, split: str | None = None) -> Counter:
        return Counter(b.label for s in self.select(split) for b in s.boxes)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "name": self.name,
                "root": str(self.root), "classes": list(self.classes),
                "version_id": self.version_id, "source": dict(self.source),
                "samples": [s.to_dict() for s in self.samples]}

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "DetectionDataset":
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such detection dataset file")
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise DataError(f"{path}: not a detection dataset JSON file ({error})") from error
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise DataError(f"{path}: not a {FORMAT} file")
        if int(document.get("format_version", 0)) > FORMAT_VERSION:
            raise DataError(f"{path}: written by a newer defectscope (format "
                            f"{document['format_version']}); upgrade defectscope")
        return cls(root=Path(document["root"]), classes=tuple(document["classes"]),
                   samples=tuple(DetectionSample.from_dict(r) for r in document["samples"]),
                   name=document.get("name", ""), source=document.get("source", {}))


def load_pair(dataset: DetectionDataset, sample: DetectionSample
              ) -> tuple[np.ndarray, np.ndarray | None]:
    """The sample's RGB uint8 image and its template (or None), after checking both hashes."""
    image = load_verified(dataset.path_of(sample), sample.sha256)
    if image.shape[:2] != (sample.height, sample.width):
        raise DataError(f"{dataset.path_of(sample)}: is {image.shape[1]}x{image.shape[0]}, the "
                        f"dataset recorded {sample.width}x{sample.height}; re-import it")
    template_path = dataset.template_path_of(sample)
    if template_path is None:
        return image, None
    template = load_verified(template_path, sample.template_sha256)
    if template.shape[:2] != image.shape[:2]:
        raise DataError(f"{template_path}: template is {template.shape[1]}x{template.shape[0]} "
                        f"but its image is {image.shape[1]}x{image.shape[0]}")
    return image, template
