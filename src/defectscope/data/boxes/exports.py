"""What the detection exporters (YOLO, COCO) share: where each image and template is copied.

Exports are self-contained folders: every image is copied to ``images/<split>/`` (``train`` for
a sample without a split, as YOLO tools expect a train set) and, when the dataset has templates
(DeepPCB), each template to ``templates/<split>/`` under the same file name as its image, so a
tool that knows nothing of templates still reads the export, and defectscope reads the pairs
back. File names are the images' own names, or their dataset path with ``/`` turned into
``__`` where two images of a split share a name.

>>> plan = plan_export(dataset)                                       # doctest: +SKIP
>>> plan[0].image, plan[0].template                                   # doctest: +SKIP
('images/train/00041000_test.jpg', 'templates/train/00041000_test.jpg')
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from defectscope.data.boxes.dataset import DetectionDataset, DetectionSample
from defectscope.errors import ConfigError

__all__ = ["ExportItem", "copy_export", "plan_export", "prepare_out_dir"]

DEFAULT_SPLIT = "train"


@dataclass(frozen=True)
class ExportItem:
    """One sample and its destinations (POSIX paths relative to the export folder)."""

    sample: DetectionSample
    split: str
    image: str
    template: str | None


def plan_export(dataset: DetectionDataset) -> list[ExportItem]:
    """Destinations of every sample; see the module docstring for the naming rule."""
    split_of = [s.split or DEFAULT_SPLIT for s in dataset.samples]
    names = Counter((split, Path(s.path).name) for split, s in zip(split_of, dataset.samples))
    items = []
    for split, sample in zip(split_of, dataset.samples):
        name = Path(sample.path).name
        if names[(split, name)] > 1:
            name = Path(sample.path).as_posix().lstrip("/").replace("/", "__")
        template = f"templates/{split}/{name}" if sample.template_path else None
        items.append(ExportItem(sample, split, f"images/{split}/{name}", template))
    return items


def prepare_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Create ``out_dir``; refuse one that already holds files, so exports never mix."""
    out = Path(os.path.abspath(out_dir))
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: is a file; pass a folder to export into")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"{out}: folder is not empty; export into a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def copy_export(dataset: DetectionDataset, items: list[ExportItem], out: Path) -> None:
    """Copy each item's image (and template) to its destination under ``out``."""
    for item in items:
        pairs = [(dataset.path_of(item.sample), item.image)]
        template = dataset.template_path_of(item.sample)
        if item.template is not None and template is not None:
            pairs.append((template, item.template))
        for source, target in pairs:
            destination = out / target
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
