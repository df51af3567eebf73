"""The label store: one record per image, keyed by the image's content hash (sha256 of its bytes).

Why by content hash: the same image reached through the review queue (an archived upload) and
through the labelling studio (a dataset file) is one image, so it gets one label, whichever
tool wrote it last; a renamed or copied file keeps its label. Records live in the results
database (same engine as the results log and the review table), so a restarted service or a
closed browser tab loses nothing: the studio saves on every action.

A record is replaced as a whole on each save (``revision`` counts the saves); the review
queue's own per-part table (``review_labels``) still records who confirmed which part, and
writes its label here too (see ``defectscope.review.labels.submit_review``).

>>> labels = LabelStore(ResultStore("sqlite:///results.db"))           # doctest: +SKIP
>>> labels.save(ImageLabel(sha, "scratch", "/data/a.png", 640, 480,
...                        mask_path="/archive/ab/ab...png"))          # doctest: +SKIP
>>> labels.get(sha).revision                                          # doctest: +SKIP
1
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from sqlalchemy import (JSON, Column, Double, Integer, MetaData, String, Table, Text, delete,
                        select, update)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from defectscope.errors import ConfigError
from defectscope.store.results import ResultStore, StoreError
from defectscope.values import GOOD

SOURCES = ("studio", "review")
_SHA256 = re.compile(r"[0-9a-f]{64}")

_metadata = MetaData()
image_labels_table = Table(
    "image_labels",
    _metadata,
    Column("sha256", String(64), primary_key=True),  # the image's content hash
    Column("label", String(64), nullable=False),      # "good" or a defect type
    Column("image_path", Text, nullable=False),       # where the image file lives
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("mask_path", Text, nullable=True),         # a 0/255 PNG in the image archive
    Column("boxes", JSON, nullable=False),            # [{"box": [x1, y1, x2, y2], "label": ..}]
    Column("source", String(16), nullable=False),     # studio or review
    Column("labeller", String(64), nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("revision", Integer, nullable=False),
)


@dataclass(frozen=True)
class LabelBox:
    """A labelled box, pixel corners (x1, y1, x2, y2) with x1 < x2, y1 < y2."""

    box: tuple[float, float, float, float]
    label: str

    def to_dict(self) -> dict[str, Any]:
        return {"box": [float(v) for v in self.box], "label": self.label}


@dataclass(frozen=True)
class ImageLabel:
    """One image's label: ``"good"`` (no mask, no boxes) or a defect type with an optional mask
    (``mask_path``, an archived PNG) and boxes. ``revision`` and ``updated_at`` are set by
    ``LabelStore.save``."""

    sha256: str
    label: str
    image_path: str
    width: int
    height: int
    mask_path: str | None = None
    boxes: tuple[LabelBox, ...] = ()
    source: str = "studio"
    labeller: str = "operator"
    updated_at: float = field(default_factory=time.time)
    revision: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.sha256, str) or not _SHA256.fullmatch(self.sha256):
            raise ConfigError(f"{self.sha256!r} is not an image hash (64 lowercase hex digits)")
        if not isinstance(self.label, str) or not 1 <= len(self.label.strip()) <= 64 \
                or self.label != self.label.strip():
            raise ConfigError("a label is 1 to 64 characters without surrounding spaces")
        if any(c in self.label for c in '/\\:') or self.label in (".", ".."):
            raise ConfigError(f"label {self.label!r}: no '/', '\\' or ':' (it names folders)")
        if self.label == GOOD and (self.mask_path or self.boxes):
            raise ConfigError(f"a {GOOD!r} image has no mask and no boxes")
        if self.source not in SOURCES:
            raise ConfigError(f"label source must be one of {SOURCES}, not {self.source!r}")
        if not (int(self.width) > 0 and int(self.height) > 0):
            raise ConfigError(f"image size {self.width}x{self.height} is not positive")
        if not 1 <= len(self.labeller.strip()) <= 64:
            raise ConfigError("labeller must be 1 to 64 characters")
        for box in self.boxes:
            x1, y1, x2, y2 = box.box
            if not (0 <= x1 < x2 <= self.width and 0 <= y1 < y2 <= self.height):
                raise ConfigError(f"box {list(box.box)} is empty or outside the "
                                  f"{self.width}x{self.height} image")
            if box.label == GOOD or not box.label:
                raise ConfigError(f"a box needs a defect type, not {box.label!r}")

    @property
    def is_defect(self) -> bool:
        return self.label != GOOD

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "label": self.label, "image_path": self.image_path,
                "width": self.width, "height": self.height, "mask_path": self.mask_path,
                "boxes": [b.to_dict() for b in self.boxes], "source": self.source,
                "labeller": self.labeller, "updated_at": self.updated_at,
                "revision": self.revision}


def boxes_from_json(rows: Sequence[Any] | None, default_label: str) -> tuple[LabelBox, ...]:
    """``[{"box": [x1, y1, x2, y2], "label": ...}, ...]`` (label optional) as ``LabelBox``es."""
    found = []
    for row in rows or ():
        if not isinstance(row, dict) or "box" not in row:
            raise ConfigError('a box is {"box": [x1, y1, x2, y2], "label": "defect type"}')
        try:
            x1, y1, x2, y2 = (float(v) for v in row["box"])
        except (TypeError, ValueError):
            raise ConfigError("a box is 4 numbers: x1, y1, x2, y2 (pixels)") from None
        found.append(LabelBox((x1, y1, x2, y2), str(row.get("label") or default_label)))
    return tuple(found)


class LabelStore:
    """Image labels in the results database, one row per image content hash."""

    def __init__(self, results: ResultStore) -> None:
        self.engine = results.engine
        try:
            _metadata.create_all(self.engine)
        except SQLAlchemyError as error:
            raise StoreError(f"cannot create the image label table ({error})") from error

    def save(self, label: ImageLabel) -> ImageLabel:
        """Insert or replace the image's label; returns it with its new revision."""
        for _attempt in range(3):  # a concurrent first save of the same image: retry as update
            try:
                with self.engine.begin() as connection:
                    current = connection.execute(
                        select(image_labels_table.c.revision)
                        .where(image_labels_table.c.sha256 == label.sha256)).scalar()
                    saved = replace(label, revision=(current or 0) + 1, updated_at=time.time())
                    row = saved.to_dict()
                    if current is None:
                        connection.execute(image_labels_table.insert().values(**row))
                    else:
                        connection.execute(update(image_labels_table)
                                           .where(image_labels_table.c.sha256 == label.sha256)
                                           .values(**row))
                    return saved
            except IntegrityError:
                continue
            except SQLAlchemyError as error:
                raise StoreError(f"could not save the label ({type(error).__name__}: {error})") \
                    from error
        raise StoreError(f"could not save the label of {label.sha256}: concurrent writes")

    def get(self, sha256: str) -> ImageLabel | None:
        rows = self._query(select(image_labels_table)
                           .where(image_labels_table.c.sha256 == sha256))
        return rows[0] if rows else None

    def delete(self, sha256: str) -> bool:
        """Forget the image's label (it is unlabelled again); False when it had none."""
        try:
            with self.engine.begin() as connection:
                done = connection.execute(delete(image_labels_table)
                                          .where(image_labels_table.c.sha256 == sha256))
        except SQLAlchemyError as error:
            raise StoreError(f"could not delete the label ({error})") from error
        return bool(done.rowcount)

    def all(self) -> list[ImageLabel]:
        """Every label, oldest save first."""
        return self._query(select(image_labels_table)
                           .order_by(image_labels_table.c.updated_at, image_labels_table.c.sha256))

    def counts(self) -> dict[str, int]:
        """Labelled images per label."""
        return dict(Counter(label.label for label in self.all()))

    def _query(self, statement) -> list[ImageLabel]:
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(statement).mappings().all()
        except SQLAlchemyError as error:
            raise StoreError(f"label query failed ({error})") from error
        return [ImageLabel(sha256=r["sha256"], label=r["label"], image_path=r["image_path"],
                           width=r["width"], height=r["height"], mask_path=r["mask_path"],
                           boxes=tuple(LabelBox(tuple(b["box"]), b["label"]) for b in r["boxes"]),
                           source=r["source"], labeller=r["labeller"],
                           updated_at=r["updated_at"], revision=r["revision"]) for r in rows]
