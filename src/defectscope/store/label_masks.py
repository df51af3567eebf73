"""An image label's defect mask, whichever tool wrote it: its archived mask, else its boxes filled.

One function, used by both exports (the review queue's dataset version and the labelling
studio's formats), so a label reads the same way out of either.

>>> label_mask(labels.get(sha), archive)          # doctest: +SKIP
array([[False, ...]])
"""

from __future__ import annotations

import numpy as np

from defectscope.data.image_io import load_mask
from defectscope.errors import DataError
from defectscope.store.archive import ImageArchive
from defectscope.store.labels import ImageLabel


def label_mask(label: ImageLabel, archive: ImageArchive) -> np.ndarray | None:
    """The label's mask (bool, H x W): its archived mask, else its boxes filled, else None."""
    shape = (label.height, label.width)
    if label.mask_path:
        stored = archive.resolve(label.mask_path)
        if stored is None:
            raise DataError(f"image {label.sha256[:12]}: its mask {label.mask_path} is missing "
                            "from the archive")
        return load_mask(stored, shape)
    if label.boxes:
        mask = np.zeros(shape, bool)
        for box in label.boxes:
            x1, y1, x2, y2 = box.box
            mask[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))] = True
        return mask
    return None
