"""Datasets: strict image I/O, content-hashed manifests, importers, splits and summaries.

Two domains, one folder each, over what they share here (``image_io``: strict decoding and
limits; ``hashing``; ``stream``: read-ahead; ``import_common``; ``near_duplicates``):

- ``images/``: image-level labels and masks: ``Manifest``, the MVTec / folder / YOLO importers,
  group-aware splits and hold-outs, summaries, synthetic defects, paired augmentation, the
  ``ImageSet`` a supervised model fits on;
- ``boxes/``: boxes: ``DetectionDataset``, COCO / YOLO / DeepPCB import and export, splits,
  the model-selection hold-out, box-aware augmentation.

>>> from defectscope.data import import_folder, split_manifest, format_summary
>>> result = import_folder("data/magnetic-tile")              # doctest: +SKIP
>>> split = split_manifest(result.manifest, seed=0)           # doctest: +SKIP
>>> print(format_summary(split.manifest))                      # doctest: +SKIP
"""

from defectscope.data.boxes.coco import export_coco, import_coco
from defectscope.data.boxes.deeppcb import DEEPPCB_CLASSES, import_deeppcb
from defectscope.data.boxes.dataset import Box, DetectionDataset, DetectionSample, load_pair
from defectscope.data.boxes.imports import DetectionImport
from defectscope.data.boxes.splits import split_detection
from defectscope.data.hashing import sha256_file
from defectscope.data.image_io import IMAGE_EXTENSIONS, image_size, load_image, load_mask
from defectscope.data.images.importers import (
    ImportResult,
    Skipped,
    import_dataset,
    import_folder,
    import_mvtec,
)
from defectscope.data.images.manifest import Manifest
from defectscope.data.images.splits import SplitResult, hold_out, split_manifest
from defectscope.data.images.summary import format_summary
from defectscope.data.boxes.yolo import export_yolo, import_yolo_boxes

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
