"""What the detection importers (DeepPCB, COCO, YOLO boxes) share: the result and the builder.

Each importer reads its own layout into ``PendingImage`` records (paths, raw boxes with the
file and line they came from, group, split) and hands them to ``build_detection_import``, which
reads every image once (size, content hash, and a full decode unless ``verify=False``), turns raw
boxes into pixel ``Box`` es and decides what is fixable. Fixable problems are counted warnings:
a box partly outside its image is clipped to it, a box with zero area (after clipping) is
dropped. Unfixable ones (unreadable image, missing template, bad label line, unknown class) stop
the import with one error listing them all, unless ``on_bad="skip"`` leaves those images out and
lists them in ``skipped``. Why so strict: a silently mislabelled image teaches a detector that a
real defect is background.

>>> result = import_deeppcb("../shared/data/deeppcb")        # doctest: +SKIP
>>> len(result.dataset.samples), len(result.skipped), result.warnings  # doctest: +SKIP
(999, 3, ())
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from defectscope.data.boxes.dataset import Box, DetectionDataset, DetectionSample
from defectscope.data.hashing import sha256_file
from defectscope.data.image_io import image_size, load_image
from defectscope.data.import_common import Skipped, check_on_bad, listing, relative_name
from defectscope.errors import DataError, ImageReadError

__all__ = ["DetectionImport", "PendingImage", "RawBox", "build_detection_import", "clip_box"]


@dataclass(frozen=True)
class DetectionImport:
    """The imported dataset, every file or image left out (with its reason), and warnings."""

    dataset: DetectionDataset
    skipped: tuple[Skipped, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class RawBox:
    """A box as read from a label file, before it meets its image's size.

    ``normalised`` corners are fractions of the image's width and height (YOLO); otherwise
    pixels. ``where`` is ``file:line`` for messages.
    """

    x1: float
    y1: float
    x2: float
    y2: float
    label: str
    where: str
    normalised: bool = False


@dataclass(frozen=True)
class PendingImage:
    """An image an importer wants, with its raw boxes; ``problem`` marks it bad up front
    (e.g. ``"missing template"``, ``"unknown type 7 at x.txt:3"``); ``expected_size`` is the
    (width, height) its label file declares (COCO), checked against the file."""

    path: Path
    boxes: tuple[RawBox, ...] = ()
    template: Path | None = None
    group: str | None = None
    split: str | None = None
    problem: str | None = None
    expected_size: tuple[int, int] | None = None


@dataclass
class _Tally:
    clipped: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def clip_box(x1: float, y1: float, x2: float, y2: float, width: int, height: int
             ) -> tuple[float, float, float, float] | None:
    """Clip pixel corners to ``[0, width] x [0, height]``; None when no area is left.

    >>> clip_box(-5, 2, 10, 8, width=8, height=8)
    (0.0, 2.0, 8.0, 8.0)
    >>> clip_box(9, 2, 12, 8, width=8, height=8) is None
    True
    """
    w, h = float(width), float(height)
    cx1, cx2 = min(max(float(x1), 0.0), w), min(max(float(x2), 0.0), w)
    cy1, cy2 = min(max(float(y1), 0.0), h), min(max(float(y2), 0.0), h)
    if cx2 <= cx1 or cy2 <= cy1:
        return None
    return cx1, cy1, cx2, cy2


def _to_boxes(raw: Sequence[RawBox], width: int, height: int, tally: _Tally) -> tuple[Box, ...]:
    boxes = []
    for box in raw:
        corners = (box.x1, box.y1, box.x2, box.y2)
        if box.normalised:  # rounded to a micro-pixel: 0.05 * 20 is 1.0, not 1.0000000000000002
            corners = (round(box.x1 * width, 6), round(box.y1 * height, 6),
                       round(box.x2 * width, 6), round(box.y2 * height, 6))
        clipped = clip_box(*corners, width, height)
        if clipped is None:
            tally.dropped.append(box.where)
            continue
        if clipped != tuple(float(c) for c in corners):
            tally.clipped.append(box.where)
        boxes.append(Box(*clipped, box.label))
    return tuple(boxes)


def _read_image(path: Path, verify: bool) -> tuple[int, int]:
    """(height, width); with ``verify`` every pixel is decoded so truncation shows now."""
    if verify:
        return tuple(load_image(path).shape[:2])  # type: ignore[return-value]
    return image_size(path)


def _sample(pending: PendingImage, base: Path, verify: bool, tally: _Tally) -> DetectionSample:
    height, width = _read_image(pending.path, verify)
    if pending.expected_size is not None and tuple(pending.expected_size) != (width, height):
        declared = "x".join(str(v) for v in pending.expected_size)
        raise ImageReadError(pending.path, f"the labels say {declared} but the image is "
                             f"{width}x{height}", "fix the width/height in the label file")
    template_rel = template_sha = None
    if pending.template is not None:
        t_height, t_width = _read_image(pending.template, verify)
        if (t_height, t_width) != (height, width):
            raise ImageReadError(pending.template, f"template is {t_width}x{t_height} but its "
                                 f"image is {width}x{height}", "pair each image with its template")
        template_rel, template_sha = relative_name(pending.template, base), sha256_file(pending.template)
    return DetectionSample(path=relative_name(pending.path, base), sha256=sha256_file(pending.path),
                           width=width, height=height,
                           boxes=_to_boxes(pending.boxes, width, height, tally),
                           template_path=template_rel, template_sha256=template_sha,
                           group=pending.group, split=pending.split)


def build_detection_import(base: Path, pending: Sequence[PendingImage], classes: Sequence[str],
                           *, on_bad: str, source: Mapping[str, Any], name: str | None = None,
                           skipped: Sequence[Skipped] = (), warnings: Sequence[str] = (),
                           verify: bool = True) -> DetectionImport:
    """Read every pending image and build the dataset; see the module docstring for the rules."""
    check_on_bad(on_bad)
    samples: list[DetectionSample] = []
    bad: list[Skipped] = []
    tally = _Tally()
    for item in tqdm(pending, desc="checking images", unit="img", disable=None):
        if item.problem is not None:
            bad.append(Skipped(relative_name(item.path, base), item.problem))
            continue
        try:
            samples.append(_sample(item, base, verify, tally))
        except ImageReadError as error:
            where = "" if Path(error.path) == item.path else f"{relative_name(error.path, base)}: "
            bad.append(Skipped(relative_name(item.path, base), where + error.problem))
    if bad and on_bad == "error":
        raise DataError(
            f"{base}: {len(bad)} bad image(s): "
            f"{listing([f'{b.path} ({b.reason})' for b in bad])}. Fix or remove them, or pass "
            'on_bad="skip" (CLI: --skip-bad) to import without them')
    if not samples:
        raise DataError(f"{base}: no usable images were found; check the folder and its layout")
    notes = list(warnings)
    if tally.clipped:
        notes.append(f"{len(tally.clipped)} box(es) partly outside their image were clipped to "
                     f"it: {listing(tally.clipped)}")
    if tally.dropped:
        notes.append(f"{len(tally.dropped)} box(es) with zero area (after clipping to the image) "
                     f"were dropped: {listing(tally.dropped)}")
    dataset = DetectionDataset(root=base, classes=tuple(classes), samples=tuple(samples),
                               name=base.name if name is None else name, source=dict(source))
    return DetectionImport(dataset, tuple(skipped) + tuple(bad), tuple(notes))
