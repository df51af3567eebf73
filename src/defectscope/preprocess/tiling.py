"""Tiling of large images: overlapping tiles at native resolution, maps stitched back.

Why: a 10-pixel defect on a 5-megapixel image vanishes when the image is resized to 256 px.
Cutting the image into overlapping tiles of the network's input size keeps every defect at its
native size; each tile is scored on its own, the tile maps are stitched into one full-size map
(``merge``: ``max`` or ``mean`` where tiles overlap) and the image score is the highest tile
score. Training images are tiled the same way, so the model learns what a good tile looks like.

The ``tile`` step (always the last step) sets ``mode``: ``auto`` (the default, also when the
pipeline has no ``tile`` step) tiles only when the image's shorter side is at least
``auto_factor`` (default 16) times the longer side of the network input the whole image would be
resized to: only then would a defect of a few percent of the image shrink below a few feature
cells. An ordinary camera image (a 900 px bottle, a 1024 px MVTec image at PatchCore's 256 px
input) is scored whole; whether tiling helps a given product is the tuner's call
(``tuning``), which tries it. ``on`` always tiles (an image smaller than a tile is an error);
``off`` never. ``size`` 0 means the model's ``image_size``.

The work per image is bounded: at most ``max_tiles`` (default 16) tiles. Where tiles of
``size`` would be more, the tiles grow until they are few enough (each is resized to the
network input as usual), so a 6000 x 6000 px image costs 16 network passes, not 2,000. Bundles
written before steps existed load with tiling ``off``.

>>> tile_boxes((300, 500), 256, 0.25)[:2]
[(0, 0, 256, 256), (0, 192, 256, 448)]
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Callable, ClassVar, Iterable, Iterator

import cv2
import numpy as np

from defectscope.errors import DataError
from defectscope.preprocess.steps import Step, check_choice, check_range, register_step

Box = tuple[int, int, int, int]  # y0, x0, y1, x1


@register_step
@dataclasses.dataclass(frozen=True)
class Tile(Step):
    name: ClassVar[str] = "tile"
    mode: str = "auto"
    size: int = 0
    overlap: float = 0.25
    merge: str = "max"
    auto_factor: float = 16.0
    max_tiles: int = 16

    def validate(self) -> None:
        check_choice(self.name, "mode", self.mode, ("auto", "on", "off"))
        if self.size != 0:
            check_range(self.name, "size", self.size, 16, 8192)
        check_range(self.name, "overlap", self.overlap, 0.0, 0.9)
        check_choice(self.name, "merge", self.merge, ("max", "mean"))
        check_range(self.name, "auto_factor", self.auto_factor, 1.0, 1000.0)
        check_range(self.name, "max_tiles", self.max_tiles, 1, 4096)

    def apply(self, image, state):
        return image, None  # a marker: the model's scoring loop does the tiling


def _starts(length: int, size: int, stride: int) -> list[int]:
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)  # the last tile ends at the border: every pixel covered
    return starts


def tile_boxes(shape: tuple[int, ...], size: int, overlap: float) -> list[Box]:
    """Boxes (y0, x0, y1, x1) of ``size`` x ``size`` tiles covering every pixel of ``shape``."""
    h, w = shape[:2]
    if h < size or w < size:
        raise DataError(f"the {h}x{w} image is smaller than the {size} px tile; use a smaller "
                        "tile size or tile mode 'auto'")
    stride = max(1, int(round(size * (1.0 - overlap))))
    return [(y, x, y + size, x + size)
            for y in _starts(h, size, stride) for x in _starts(w, size, stride)]


def plan_tiles(shape: tuple[int, ...], tile: Tile, image_size: int,
               input_side: int | None = None) -> list[Box] | None:
    """The tiles for an image of ``shape``, or None when it is scored whole.

    ``image_size`` is the default tile size; ``input_side`` the longer side of the network
    input the whole image would be resized to (default ``image_size``), which ``auto`` compares
    the image's shorter side with. Never more than ``tile.max_tiles`` tiles: the tile size grows
    until they fit; an image so elongated that even tiles of its shorter side are too many is
    scored whole (resized), which bounds the work as well.
    """
    size = tile.size or image_size
    if tile.mode == "off":
        return None
    if tile.mode == "auto" and min(shape[:2]) < tile.auto_factor * (input_side or image_size):
        return None
    boxes = tile_boxes(shape, size, tile.overlap)
    shorter = min(shape[:2])
    while len(boxes) > tile.max_tiles and size < shorter:
        size = min(shorter, int(np.ceil(size * 1.25)))
        boxes = tile_boxes(shape, size, tile.overlap)
    return boxes if len(boxes) <= tile.max_tiles else None


def stitch(maps: list[np.ndarray], boxes: list[Box], shape: tuple[int, int],
           merge: str = "max") -> np.ndarray:
    """Tile maps back into one ``shape`` map; overlaps take the max or the mean."""
    if merge == "max":
        out = np.full(shape, -np.inf, np.float32)
        for tile_map, (y0, x0, y1, x1) in zip(maps, boxes):
            np.maximum(out[y0:y1, x0:x1], tile_map, out=out[y0:y1, x0:x1])
        return out
    total = np.zeros(shape, np.float64)
    count = np.zeros(shape, np.float64)
    for tile_map, (y0, x0, y1, x1) in zip(maps, boxes):
        total[y0:y1, x0:x1] += tile_map
        count[y0:y1, x0:x1] += 1
    return (total / np.maximum(count, 1)).astype(np.float32)


def training_inputs(preprocessor, images: Iterable[np.ndarray], n_learn: int = 16,
                    learn: bool = True) -> Iterator[np.ndarray]:
    """Network inputs for fitting: learns the preprocessor's state from the first ``n_learn``
    images (when a step needs it and ``learn``), then yields each prepared image (or each of its
    tiles). ``learn=False``: the state was set beforehand (a shard of a distributed fit)."""
    images = iter(images)
    if learn and preprocessor.needs_fit:
        head = list(itertools.islice(images, n_learn))
        if head:
            preprocessor.fit(head)
        images = itertools.chain(head, images)
    for image in images:
        prepared = preprocessor.prepare(image).image
        boxes = preprocessor.tiles(prepared.shape)
        if boxes is None:
            yield preprocessor.to_input(prepared)
            continue
        for y0, x0, y1, x1 in boxes:
            yield preprocessor.to_input(prepared[y0:y1, x0:x1])


ScoreFn = Callable[[np.ndarray], tuple[float, np.ndarray, dict[str, float]]]


def score_tiled(preprocessor, image: np.ndarray, score_input: ScoreFn):
    """(score, anomaly map at ``image``'s size, timings ms) through steps, tiles and stitching.

    ``score_input`` takes one network input (C x h x w) and returns its score, its map at the
    input's size and its timings (``backbone``, ``scoring``, ``anomaly_map``).
    """
    t0 = time.perf_counter()
    prepared = preprocessor.prepare(image)
    full = prepared.image
    boxes = preprocessor.tiles(full.shape) or [(0, 0, full.shape[0], full.shape[1])]
    timings = {"preprocess": (time.perf_counter() - t0) * 1e3, "backbone": 0.0, "scoring": 0.0,
               "anomaly_map": 0.0}
    scores, maps = [], []
    for y0, x0, y1, x1 in boxes:
        t0 = time.perf_counter()
        array = preprocessor.to_input(full[y0:y1, x0:x1])
        timings["preprocess"] += (time.perf_counter() - t0) * 1e3
        score, tile_map, parts = score_input(array)
        for key in ("backbone", "scoring", "anomaly_map"):
            timings[key] += parts.get(key, 0.0)
        t0 = time.perf_counter()
        if tile_map.shape != (y1 - y0, x1 - x0):
            tile_map = cv2.resize(tile_map, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        maps.append(tile_map)
        scores.append(score)
        timings["anomaly_map"] += (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    anomaly_map = maps[0] if len(maps) == 1 else stitch(maps, boxes, full.shape[:2],
                                                          preprocessor.tile.merge)
    if prepared.matrix is not None or anomaly_map.shape != image.shape[:2]:
        anomaly_map = map_back(anomaly_map, prepared.matrix, image.shape[:2])
    timings["anomaly_map"] += (time.perf_counter() - t0) * 1e3
    return float(max(scores)), anomaly_map, timings


def map_back(anomaly_map: np.ndarray, matrix: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """A map in prepared-image coordinates -> the original image's pixels (``matrix`` maps
    original to prepared coordinates; None means a plain resize)."""
    h, w = shape
    if matrix is None:
        return cv2.resize(anomaly_map, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.warpPerspective(anomaly_map, matrix, (w, h),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
