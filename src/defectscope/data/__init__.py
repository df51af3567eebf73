"""Datasets: strict image I/O, content-hashed manifests, importers, splits and summaries.

>>> from defectscope.data import import_folder, split_manifest, format_summary
>>> result = import_folder("data/magnetic-tile")              # doctest: +SKIP
>>> split = split_manifest(result.manifest, seed=0)           # doctest: +SKIP
>>> print(format_summary(split.manifest))                      # doctest: +SKIP
"""

from defectscope.data.coco import export_coco, import_coco
from defectscope.data.deeppcb import DEEPPCB_CLASSES, import_deeppcb
from defectscope.data.detection import Box, DetectionDataset, DetectionSample, load_pair
from defectscope.data.detection_import import DetectionImport
from defectscope.data.detection_splits import split_detection
from defectscope.data.hashing import sha256_file
from defectscope.data.images import IMAGE_EXTENSIONS, image_size, load_image, load_mask
from defectscope.data.importers import (
    ImportResult,
    Skipped,
    import_dataset,
    import_folder,
    import_mvtec,
)
from defectscope.data.manifest import Manifest
from defectscope.data.splits import SplitResult, hold_out, split_manifest
from defectscope.data.summary import format_summary
from defectscope.data.yolo_boxes import export_yolo, import_yolo_boxes

__all__ = [
    "Box",
    "DEEPPCB_CLASSES",
    "DetectionDataset",
    "DetectionImport",
    "DetectionSample",
    "IMAGE_EXTENSIONS",
    "ImportResult",
    "Manifest",
    "Skipped",
    "SplitResult",
    "export_coco",
    "export_yolo",
    "format_summary",
    "hold_out",
    "image_size",
    "import_coco",
    "import_dataset",
    "import_deeppcb",
    "import_folder",
    "import_mvtec",
    "import_yolo_boxes",
    "load_image",
    "load_mask",
    "load_pair",
    "sha256_file",
    "split_detection",
    "split_manifest",
]
