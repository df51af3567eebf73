"""Compare a part with its golden template: a difference that forgives small misregistration,
and the candidate regions a defect classifier then looks at (numpy and OpenCV, no torch).

Why tolerant: even a well-registered pair (DeepPCB's are aligned by template matching, then
binarised) differs by a pixel along every edge, and a plain XOR fires on all of them. Here a
pixel of the image counts as different only by how far it lies outside the range of the
template's values within ``tolerance`` pixels, and the same is checked the other way round (a
template pixel against the image's neighbourhood), so a missing and an added structure both show
while an edge moved by ``tolerance`` px does not. A global integer shift (up to ``max_shift``
px, found by template matching) is removed first, because a scan offset by three pixels turns
every edge into a difference. ``align`` goes further: a full homography with
``defectscope.preprocess.align``, and an ``AlignmentError`` when it cannot be trusted, never a
silent comparison of misaligned images.

Candidate regions are the connected components of the thresholded difference with at least
``min_area`` pixels; a component wider or taller than ``max_region`` (a long strip where a trace
is drawn a little wider than on the template) is cut into tiles of ``max_region // 2`` so a real
defect touching it still gets a region of its own. Regions are deliberately generous: the
classifier decides which are defects and where the box really is. Fragments of one defect are
by default not merged here (``merge_distance`` 0) but after the classifier has placed each
fragment's box, by non-maximum suppression: on DeepPCB, merging fragments within 3 px first
dropped the labelled boxes holding a candidate's centre from 97 % to 92 %, because a merged
region's centre drifts off the defect when noise joins it.

>>> import numpy as np
>>> template = np.zeros((64, 64), np.uint8); template[20:44, 10:54] = 255
>>> image = template.copy(); image[28:36, 28:36] = 0          # a hole in the copper
>>> compare(image, template, CompareConfig()).regions.tolist()
[[28, 28, 36, 36]]
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from defectscope.errors import ConfigError, DataError, DefectscopeError, ImageReadError
from defectscope.preprocess.steps import grey, to_rgb8


@dataclass(frozen=True)
class CompareConfig:
    """How an image and its template are compared and cut into candidate regions."""

    tolerance: int = 2  # px of misregistration forgiven at every pixel
    min_difference: int = 60  # grey levels outside the neighbourhood's range that count
    max_shift: int = 6  # largest global shift (px) removed before comparing; 0: none
    align: bool = False  # full homography alignment first (preprocess.align); fails loudly
    open_size: int = 0  # morphological opening of the difference mask (0: none)
    min_area: int = 4  # smallest candidate region, in difference pixels
    max_region: int = 48  # components larger than this (px) are cut into tiles of half of it
    merge_distance: int = 0  # difference pixels this close (px) form one region; 0: touching

    def __post_init__(self) -> None:
        checks = {"tolerance": (0, 16), "min_difference": (1, 255), "max_shift": (0, 64),
                  "open_size": (0, 15), "min_area": (1, 10_000), "max_region": (4, 4096),
                  "merge_distance": (0, 64)}
        for name, (low, high) in checks.items():
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or \
                    not low <= value <= high:
                raise ConfigError(f"{name} must be an integer in {low}..{high}, not {value!r}")


@dataclass(frozen=True, eq=False)
class Comparison:
    """One compared pair, in the template's frame.

    ``image`` and ``template`` are the grey uint8 pictures compared (the template shifted by
    ``shift``; the image warped by ``homography`` when aligning), ``difference`` the tolerant
    difference (uint8, 0 where equal), ``regions`` the candidate boxes (N x 4 int x1, y1, x2, y2,
    exclusive ends). ``homography`` maps input-image pixels to this frame (None: identity).
    """

    image: np.ndarray
    template: np.ndarray
    difference: np.ndarray
    regions: np.ndarray
    shift: tuple[int, int] = (0, 0)
    homography: np.ndarray | None = None

    def to_image_frame(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes of this frame as boxes of the input image (the identity without alignment)."""
        if self.homography is None:
            return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        return transform_boxes(boxes, np.linalg.inv(self.homography))

    def to_compare_frame(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes of the input image (its labels) as boxes of this frame."""
        if self.homography is None:
            return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        return transform_boxes(boxes, self.homography)


def as_grey(image: np.ndarray | None, what: str = "image") -> np.ndarray:
    """Grey uint8 H x W from grey, grey x 1, RGB or RGBA, 8 or 16 bit; a clear error otherwise."""
    if image is None:
        raise DefectscopeError(f"the {what} is missing; pass a decoded image array")
    array = np.asarray(image)
    try:
        if array.ndim == 2 and array.dtype == np.uint8:
            return np.ascontiguousarray(array)
        return grey(to_rgb8(array))
    except ImageReadError as error:
        raise ImageReadError(f"<{what}>", error.problem, error.fix) from None


def check_pair(image: np.ndarray, template: np.ndarray | None, align: bool = False) -> None:
    """A missing template, or one of another size when not aligning, is a clear error."""
    if template is None:
        raise DefectscopeError("reference comparison needs the part's defect-free template; "
                               "pass it with the image (DeepPCB: the <id>_temp.jpg beside it)")
    if not align and np.shape(image)[:2] != np.shape(template)[:2]:
        h, w = np.shape(image)[:2]
        th, tw = np.shape(template)[:2]
        raise DataError(f"the template is {tw}x{th} but the image is {w}x{h}; pass this part's "
                        "template, or turn on align to warp the image onto it")


def estimate_shift(image: np.ndarray, template: np.ndarray, max_shift: int) -> tuple[int, int]:
    """The integer (dx, dy) with ``template[y + dy, x + dx]`` best matching ``image[y, x]``.

    Sum of squared differences over the image's centre, every shift at once
    (``cv2.matchTemplate``). Shifts whose cost is within 1 % of the best count as ties and the
    smallest one wins, so a blank or periodic pair keeps (0, 0) instead of an arbitrary offset.
    """
    h, w = image.shape
    m = int(min(max_shift, h // 4, w // 4))
    if m < 1:
        return (0, 0)
    centre = image[m:h - m, m:w - m].astype(np.float32)
    cost = cv2.matchTemplate(template.astype(np.float32), centre, cv2.TM_SQDIFF)
    best = float(cost.min())
    ys, xs = np.nonzero(cost <= best + 0.01 * max(best, 1.0))
    dy, dx = ys - m, xs - m
    pick = int(np.argmin(dx * dx + dy * dy))
    return int(dx[pick]), int(dy[pick])


def shift_image(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``out[y, x] = image[y + dy, x + dx]``, edges repeated."""
    if dx == 0 and dy == 0:
        return image
    h, w = image.shape[:2]
    pad = max(abs(dx), abs(dy))
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(padded[pad + dy:pad + dy + h, pad + dx:pad + dx + w])


def tolerant_difference(image: np.ndarray, template: np.ndarray, tolerance: int) -> np.ndarray:
    """How far each pixel lies outside the other picture's range within ``tolerance`` px, both
    ways, as uint8 (0: some pixel within reach matches it)."""
    if tolerance == 0:
        return cv2.absdiff(image, template)
    kernel = np.ones((2 * tolerance + 1, 2 * tolerance + 1), np.uint8)
    forward = cv2.max(cv2.subtract(image, cv2.dilate(template, kernel)),
                      cv2.subtract(cv2.erode(template, kernel), image))
    backward = cv2.max(cv2.subtract(template, cv2.dilate(image, kernel)),
                       cv2.subtract(cv2.erode(image, kernel), template))
    return cv2.max(forward, backward)


def find_regions(mask: np.ndarray, min_area: int, max_region: int,
                 merge_distance: int = 0) -> np.ndarray:
    """Candidate boxes (N x 4 int, exclusive ends) of a boolean difference mask, sorted by
    (y1, x1). Pixels closer than ``merge_distance`` px join one region (its box still bounds
    only difference pixels); see the module docstring for the tiling of large components."""
    mask = np.asarray(mask, dtype=bool)
    grouping = mask.astype(np.uint8)
    if merge_distance > 0:
        size = 2 * merge_distance + 1
        grouping = cv2.dilate(grouping, np.ones((size, size), np.uint8))
    count, labels = cv2.connectedComponents(grouping, connectivity=8)
    labels = np.where(mask, labels, 0)
    ys, xs = np.nonzero(labels)
    owner = labels[ys, xs]
    area = np.bincount(owner, minlength=count)
    x1 = np.full(count, mask.shape[1]); np.minimum.at(x1, owner, xs)
    y1 = np.full(count, mask.shape[0]); np.minimum.at(y1, owner, ys)
    x2 = np.zeros(count, np.int64); np.maximum.at(x2, owner, xs + 1)
    y2 = np.zeros(count, np.int64); np.maximum.at(y2, owner, ys + 1)
    boxes: list[tuple[int, int, int, int]] = []
    step = max(max_region // 2, 2)
    for index in np.flatnonzero(area >= min_area):
        if index == 0:
            continue
        x, y, w, h = int(x1[index]), int(y1[index]), int(x2[index] - x1[index]), \
            int(y2[index] - y1[index])
        if w <= max_region and h <= max_region:
            boxes.append((x, y, x + w, y + h))
            continue
        own = labels[y:y + h, x:x + w] == index
        for ty in range(0, h, step):
            for tx in range(0, w, step):
                tile_ys, tile_xs = np.nonzero(own[ty:ty + step, tx:tx + step])
                if len(tile_xs) >= min_area:
                    boxes.append((x + tx + int(tile_xs.min()), y + ty + int(tile_ys.min()),
                                  x + tx + int(tile_xs.max()) + 1,
                                  y + ty + int(tile_ys.max()) + 1))
    if not boxes:
        return np.zeros((0, 4), np.int64)
    array = np.asarray(boxes, np.int64)
    return array[np.lexsort((array[:, 0], array[:, 1]))]


def transform_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The axis-aligned bounds of ``boxes`` (N x 4) mapped through a 3 x 3 ``matrix``."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(boxes):
        return boxes
    corners = np.stack([boxes[:, [0, 1]], boxes[:, [2, 1]], boxes[:, [0, 3]], boxes[:, [2, 3]]],
                       axis=1).reshape(-1, 1, 2)
    mapped = cv2.perspectiveTransform(corners, np.asarray(matrix, np.float64)).reshape(-1, 4, 2)
    return np.concatenate([mapped.min(axis=1), mapped.max(axis=1)], axis=1)


def crop_windows(regions: np.ndarray, context: int, region_scale: float) -> np.ndarray:
    """Square windows (N x 3 int: x0, y0, side) centred on each region: at least ``context`` px
    and ``region_scale`` times the region's longer side, so the classifier sees the defect with
    the copper around it and the whole labelled box, which is often well larger than the
    region."""
    regions = np.asarray(regions, dtype=np.float64).reshape(-1, 4)
    longer = np.maximum(regions[:, 2] - regions[:, 0], regions[:, 3] - regions[:, 1])
    side = np.maximum(float(context), np.ceil(region_scale * longer)).astype(np.int64)
    cx, cy = (regions[:, 0] + regions[:, 2]) / 2, (regions[:, 1] + regions[:, 3]) / 2
    x0 = np.round(cx - side / 2).astype(np.int64)
    y0 = np.round(cy - side / 2).astype(np.int64)
    return np.stack([x0, y0, side], axis=1) if len(regions) else np.zeros((0, 3), np.int64)


def extract_crops(comparison: Comparison, windows: np.ndarray, crop_size: int) -> np.ndarray:
    """N x 3 x crop_size x crop_size uint8: image, template and difference inside each window,
    resized to ``crop_size`` (outside the picture: zeros in all three, so no false difference)."""
    windows = np.asarray(windows, dtype=np.int64).reshape(-1, 3)
    crops = np.zeros((len(windows), 3, crop_size, crop_size), np.uint8)
    if not len(windows):
        return crops
    pad = int(max(windows[:, 2].max(), 1))
    stack = np.dstack([comparison.image, comparison.template, comparison.difference])
    padded = cv2.copyMakeBorder(stack, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    for i, (x0, y0, side) in enumerate(windows):
        patch = padded[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side]
        interpolation = cv2.INTER_AREA if side > crop_size else cv2.INTER_LINEAR
        crops[i] = cv2.resize(patch, (crop_size, crop_size),
                              interpolation=interpolation).transpose(2, 0, 1)
    return crops


def encode_boxes(boxes: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Boxes (N x 4 px) as fractions of their window: 0..1 inside it, beyond for a box that
    sticks out (float32)."""
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 3)
    origin = np.concatenate([windows[:, :2], windows[:, :2]], axis=1)
    return ((np.asarray(boxes, np.float64).reshape(-1, 4) - origin)
            / windows[:, 2:3]).astype(np.float32)


def decode_boxes(offsets: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """The inverse of ``encode_boxes``: window fractions back to pixel corners (float64)."""
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 3)
    origin = np.concatenate([windows[:, :2], windows[:, :2]], axis=1)
    return np.asarray(offsets, np.float64).reshape(-1, 4) * windows[:, 2:3] + origin


def compare(image: np.ndarray, template: np.ndarray | None, config: CompareConfig) -> Comparison:
    """Register, difference and cut one pair into candidate regions (see the module docstring).

    Raises ``DefectscopeError`` for a missing template, ``DataError`` for a template of another
    size (without ``align``), ``AlignmentError`` when ``align`` cannot register the pair.
    """
    check_pair(image, template, config.align)
    image_grey, template_grey = as_grey(image, "image"), as_grey(template, "template")
    homography = None
    if config.align:
        from defectscope.preprocess.align import estimate_alignment

        found = estimate_alignment(template_grey, image_grey)  # AlignmentError when untrusted
        homography = found.homography
        th, tw = template_grey.shape
        image_grey = cv2.warpPerspective(image_grey, homography, (tw, th),
                                         flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    dx, dy = estimate_shift(image_grey, template_grey, config.max_shift)
    template_grey = shift_image(template_grey, dx, dy)
    difference = tolerant_difference(image_grey, template_grey, config.tolerance)
    mask = difference >= config.min_difference
    if config.open_size > 1:
        kernel = np.ones((config.open_size, config.open_size), np.uint8)
        mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel) > 0
    regions = find_regions(mask, config.min_area, config.max_region, config.merge_distance)
    return Comparison(image_grey, template_grey, difference, regions, (dx, dy), homography)
