"""Where inspected parts end up: the results log (SQL) and the image archive (files).

Torch-free, like everything on the line side.

>>> from defectscope.store import ResultStore, ImageArchive
>>> store = ResultStore("sqlite:///results.db")        # doctest: +SKIP
>>> archive = ImageArchive("archive")                  # doctest: +SKIP
"""

from defectscope.store.archive import ImageArchive
from defectscope.store.labels import ImageLabel, LabelBox, LabelStore
from defectscope.store.reviews import (
    AlreadyReviewedError,
    QueueConfig,
    ReviewLabel,
    ReviewStore,
    UnknownPartError,
)
from defectscope.store.results import (
    DEFAULT_URL,
    DuplicatePartError,
    ResultStore,
    StoredResult,
    StoreError,
)

__all__ = [
    "AlreadyReviewedError",
    "QueueConfig",
    "ReviewLabel",
    "ReviewStore",
    "UnknownPartError",
    "DEFAULT_URL",
    "DuplicatePartError",
    "ImageArchive",
    "ImageLabel",
    "LabelBox",
    "LabelStore",
    "ResultStore",
    "StoreError",
    "StoredResult",
]
