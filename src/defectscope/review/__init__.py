"""Operator review: check and record labels, and turn them into a new dataset version.

>>> from defectscope.review import submit_review, export_version      # doctest: +SKIP
"""

from defectscope.review.dataset_version import (ExportConfig, ExportResult, export_version,
                                       latest_manifest, versions)
from defectscope.review.labels import check_box, decode_mask, submit_review

__all__ = ["ExportConfig", "ExportResult", "check_box", "decode_mask", "export_version",
           "latest_manifest", "submit_review", "versions"]
