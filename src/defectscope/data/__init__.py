"""Datasets: strict image I/O, content-hashed manifests, importers, splits and summaries.

>>> from defectscope.data import import_folder, split_manifest, format_summary
>>> result = import_folder("data/magnetic-tile")              # doctest: +SKIP
>>> split = split_manifest(result.manifest, seed=0)           # doctest: +SKIP
>>> print(format_summary(split.manifest))                      # doctest: +SKIP
"""

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

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImportResult",
    "Manifest",
    "Skipped",
    "SplitResult",
    "format_summary",
    "hold_out",
    "image_size",
    "import_dataset",
    "import_folder",
    "import_mvtec",
    "load_image",
    "load_mask",
    "sha256_file",
    "split_manifest",
]
