"""Images held in memory with what a supervised model learns from each: the ``fit`` argument of
the image families (classifier: ``labels``; segmenter: ``masks``).

Every model's ``fit`` takes one dataset and an optional validation dataset of the same kind
(``defectscope.models.contract``): good images for the anomaly models (any iterable, streamed),
an ``ImageSet`` for the classifier and the segmenter, a ``DetectionDataset`` for the box models.

>>> data = ImageSet([np.zeros((8, 8, 3), np.uint8)], labels=["good"])
>>> len(data), data.labels
(1, ('good',))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class ImageSet:
    """RGB uint8 ``images`` and, per image, a class name (``labels``) and/or a boolean defect
    mask or None for a good image (``masks``). Each model checks what it needs."""

    images: Sequence[np.ndarray]
    labels: Sequence[str] | None = None
    masks: Sequence[np.ndarray | None] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "images", tuple(self.images))
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(self.labels))
        if self.masks is not None:
            object.__setattr__(self, "masks", tuple(self.masks))

    def __len__(self) -> int:
        return len(self.images)
