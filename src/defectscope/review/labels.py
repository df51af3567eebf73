"""Checking and recording one operator review: verdict, defect type, and an optional mask or box.

Why check here and not only in the browser: masks arrive as PNG uploads or canvas drawings and
boxes as numbers anyone can send; a mask of the wrong size or a box outside the image would
silently corrupt the next dataset version. Every refusal says what to fix, and nothing is written
to the labels table unless the whole review is valid.

>>> submit_review(reviews, archive, 7, "NG", defect_type="scratch",
...               mask_png=png_bytes)                            # doctest: +SKIP
"""

from __future__ import annotations

import io
import math
from typing import Sequence

import numpy as np
from PIL import Image

from defectscope.data.hashing import sha256_file
from defectscope.data.image_io import image_size
from defectscope.errors import ConfigError, DefectscopeError
from defectscope.store.archive import ImageArchive
from defectscope.store.labels import ImageLabel, LabelBox
from defectscope.store.reviews import (AlreadyReviewedError, ReviewLabel, ReviewStore,
                                       UnknownPartError)
from defectscope.values import GOOD

MAX_MASK_BYTES = 8 << 20


def decode_mask(png: bytes, shape: tuple[int, int]) -> np.ndarray:
    """A PNG mask as bool (H x W): any nonzero colour (alpha ignored, except a fully transparent
    RGBA pixel, which is how a canvas leaves unpainted pixels) is defect."""
    if not png:
        raise ConfigError("the mask is empty; send a PNG or no mask at all")
    if len(png) > MAX_MASK_BYTES:
        raise ConfigError(f"the mask is larger than {MAX_MASK_BYTES >> 20} MB")
    try:
        with Image.open(io.BytesIO(png)) as image:
            if image.format != "PNG":
                raise ConfigError(f"the mask must be a PNG, not {image.format}")
            width, height = image.size
            if (height, width) != tuple(shape):
                raise ConfigError(f"the mask is {height}x{width} (height x width) but the image "
                                  f"is {shape[0]}x{shape[1]}; paint the mask at the image's size")
            array = np.asarray(image.convert("RGBA"))
    except ConfigError:
        raise
    except Exception as error:  # Pillow raises many types for broken data
        raise ConfigError(f"the mask is not a readable PNG ({error})") from None
    return np.any(array[..., :3] != 0, axis=2) & (array[..., 3] != 0)


def check_box(box: Sequence[float], shape: tuple[int, int]) -> tuple[float, float, float, float]:
    """(x1, y1, x2, y2) in pixels, inside the image and not empty; else a clear error."""
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ConfigError("a box is 4 numbers: x1, y1, x2, y2 (pixels)") from None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise ConfigError("box corners must be finite numbers")
    height, width = shape
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise ConfigError(f"box {[x1, y1, x2, y2]} is empty or outside the {width}x{height} image "
                          "(need 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height)")
    return x1, y1, x2, y2


def mask_png(mask: np.ndarray) -> bytes:
    """A bool mask as a black/white 8-bit PNG (255 = defect)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(mask, bool).astype(np.uint8) * 255, mode="L").save(buffer, "PNG")
    return buffer.getvalue()


def submit_review(reviews: ReviewStore, archive: ImageArchive, result_id: int, verdict: str,
                  defect_type: str | None = None, mask_png_bytes: bytes | None = None,
                  box: Sequence[float] | None = None, reviewer: str = "operator") -> ReviewLabel:
    """Validate a review, store its mask in the archive, then record the label (one per part).

    Raises ``UnknownPartError``, ``AlreadyReviewedError`` or ``ConfigError`` (bad input).
    """
    stored = reviews.results.get(result_id)
    if stored is None:
        raise UnknownPartError(f"no logged part with result id {result_id}")
    if reviews.get(result_id) is not None:  # fast path; the unique constraint is the real guard
        raise AlreadyReviewedError(f"part {stored.result.part_id!r} is already reviewed")
    verdict = str(verdict).upper()
    if verdict not in ("OK", "NG"):
        raise ConfigError(f"confirm the part as OK or NG, not {verdict!r}")
    defect_type = (defect_type or "").strip() or None
    if verdict == "NG" and defect_type is None:
        raise ConfigError("an NG part needs a defect type")
    if verdict == "NG" and defect_type == GOOD:
        raise ConfigError(f"{GOOD!r} is not a defect type")
    if verdict == "OK" and (defect_type or mask_png_bytes or box):
        raise ConfigError("an OK part has no defect type, mask or box")
    if not isinstance(reviewer, str) or not 1 <= len(reviewer.strip()) <= 64:
        raise ConfigError("reviewer must be 1 to 64 characters")
    mask_path, checked_box = None, None
    if mask_png_bytes is not None or box is not None:
        image = archive.resolve(stored.image_path) if stored.image_path else None
        if image is None:
            raise ConfigError(f"part {stored.result.part_id!r} has no archived image, so a mask "
                              "or box cannot be checked; confirm it without one")
        try:
            shape = image_size(image)
        except DefectscopeError as error:
            raise ConfigError(f"the archived image cannot be read ({error})") from None
        if box is not None:
            checked_box = check_box(box, shape)
        if mask_png_bytes is not None:
            mask = decode_mask(mask_png_bytes, shape)
            if not mask.any():
                raise ConfigError("the mask has no painted pixel; paint the defect or send none")
            mask_path = str(archive.put(mask_png(mask), ".png"))
    label = ReviewLabel(result_id=result_id, verdict=verdict, label=defect_type or GOOD,
                        mask_path=mask_path, box=checked_box, reviewer=reviewer.strip())
    label_id = reviews.add(label)
    saved = reviews.get(result_id)
    assert saved is not None and saved.id == label_id
    _share(reviews, archive, stored.image_path, saved)
    return saved


def _share(reviews: ReviewStore, archive: ImageArchive, image_path: str | None,
           label: ReviewLabel) -> None:
    """Record the review in the label store keyed by the image's content hash, so the studio
    sees the same image as labelled (one record per image, whichever tool labelled it)."""
    image = archive.resolve(image_path) if image_path else None
    if image is None:
        return  # no image: nothing to key the record by (the review table still has it)
    try:
        height, width = image_size(image)
    except DefectscopeError:
        return
    boxes = () if label.box is None else (LabelBox(label.box, label.label),)
    reviews.image_labels.save(ImageLabel(sha256_file(image), label.label, str(image), width,
                                         height, mask_path=label.mask_path, boxes=boxes,
                                         source="review", labeller=label.reviewer))
