"""Move detection data between tools: import one format, export another.

Formats read: ``yolo`` (boxes, ``import_yolo_boxes``), ``coco``, ``deeppcb`` and ``dataset`` (a
saved ``DetectionDataset`` JSON). Formats written: ``yolo`` and ``coco``. Splits travel with the
data (a sample without one lands in ``train``); DeepPCB's templates are copied to
``templates/<split>/`` under their image's name (see ``detection_export``).

>>> result = convert("../shared/data/deeppcb", "deeppcb", "coco", "out/pcb-coco")   # doctest: +SKIP
>>> result.out, len(result.imported.dataset.samples)                                # doctest: +SKIP
(PosixPath('.../out/pcb-coco'), 999)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from defectscope.data.boxes.coco import export_coco, import_coco
from defectscope.data.boxes.deeppcb import import_deeppcb
from defectscope.data.boxes.dataset import DetectionDataset
from defectscope.data.boxes.imports import DetectionImport
from defectscope.data.boxes.yolo import export_yolo, import_yolo_boxes
from defectscope.errors import ConfigError

__all__ = ["EXPORT_FORMATS", "IMPORT_FORMATS", "Conversion", "convert", "import_detection"]

IMPORT_FORMATS = ("yolo", "coco", "deeppcb", "dataset")
EXPORT_FORMATS = ("yolo", "coco")


@dataclass(frozen=True)
class Conversion:
    """What was read (dataset, skips, warnings) and where it was written."""

    imported: DetectionImport
    out: Path


def _load_dataset(path: str | os.PathLike[str], *, on_bad: str = "error") -> DetectionImport:
    return DetectionImport(DetectionDataset.load(path))


def import_detection(src: str | os.PathLike[str], format: str, *, on_bad: str = "error"
                     ) -> DetectionImport:
    """Import ``src`` with the detection importer named by ``format`` (see ``IMPORT_FORMATS``)."""
    importers: dict[str, Callable[..., DetectionImport]] = {
        "yolo": import_yolo_boxes, "yolo-boxes": import_yolo_boxes, "coco": import_coco,
        "deeppcb": import_deeppcb, "dataset": _load_dataset}
    if format not in importers:
        raise ConfigError(f"unknown detection format {format!r}; read formats: "
                          f"{', '.join(IMPORT_FORMATS)}")
    return importers[format](src, on_bad=on_bad)


def convert(src: str | os.PathLike[str], from_format: str, to_format: str,
            out: str | os.PathLike[str], *, on_bad: str = "error") -> Conversion:
    """Import ``src`` as ``from_format`` and write it to ``out`` as ``to_format``."""
    exporters: dict[str, Callable[[DetectionDataset, str | os.PathLike[str]], Path]] = {
        "yolo": export_yolo, "coco": export_coco}
    if to_format not in exporters:
        raise ConfigError(f"cannot write format {to_format!r}; write formats: "
                          f"{', '.join(EXPORT_FORMATS)}")
    imported = import_detection(src, from_format, on_bad=on_bad)
    return Conversion(imported, exporters[to_format](imported.dataset, out))
