"""Operator reviews: the review queue and the labels table, beside the results log.

Why a unique constraint and not a check-then-insert: two operators (or two browser tabs) may
confirm the same part at the same moment. The database lets exactly one insert win; the other
gets ``AlreadyReviewedError`` (HTTP 409) and the first label is never overwritten or lost.

The queue is not a table: it is every UNSURE part plus a seeded sample of OK and NG parts (a
part is sampled when ``hash(seed, part_id)`` falls under the rate), minus the parts already
reviewed. So it is stable across restarts and needs no writer.

>>> reviews = ReviewStore(ResultStore("sqlite:///results.db"))     # doctest: +SKIP
>>> [s.result.part_id for s in reviews.queue(QueueConfig(ok_rate=0.02))]  # doctest: +SKIP
>>> reviews.add(ReviewLabel(result_id=7, verdict="NG", label="scratch"))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from sqlalchemy import (JSON, Column, Double, Integer, MetaData, String, Table, Text, select,
                        update)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from defectscope.errors import ConfigError
from defectscope.store.labels import LabelStore
from defectscope.store.results import ResultStore, StoredResult, StoreError, results_table
from defectscope.values import GOOD

_metadata = MetaData()
labels_table = Table(
    "review_labels",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("result_id", Integer, nullable=False, unique=True),  # one label per part, ever
    Column("part_id", String(128), nullable=False),
    Column("verdict", String(8), nullable=False),       # the operator's truth: OK or NG
    Column("label", String(64), nullable=False),        # "good" or a defect type
    Column("mask_path", Text, nullable=True),
    Column("box", JSON, nullable=True),
    Column("reviewer", String(64), nullable=False),
    Column("reviewed_at", Double, nullable=False),
    Column("exported_version", String(64), nullable=True, index=True),
)


class UnknownPartError(StoreError):
    """No result with this id in the results log."""


class AlreadyReviewedError(StoreError):
    """This part already has a label; labels are never overwritten."""


@dataclass(frozen=True)
class QueueConfig:
    """Which parts go to a person: every UNSURE part, and these shares of OK and NG parts."""

    ok_rate: float = 0.02
    ng_rate: float = 0.1
    seed: int = 0
    lookback: int = 5000  # how many recent results the queue is drawn from

    def __post_init__(self) -> None:
        for name in ("ok_rate", "ng_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1, not {getattr(self, name)}")
        if self.lookback < 1:
            raise ConfigError(f"lookback must be >= 1, not {self.lookback}")

    def sampled(self, part_id: str, verdict: str) -> bool:
        """True when this part is in the review sample (UNSURE always is)."""
        if verdict == "UNSURE":
            return True
        rate = self.ok_rate if verdict == "OK" else self.ng_rate
        digest = hashlib.sha256(f"{self.seed}:{part_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < rate


@dataclass(frozen=True)
class ReviewLabel:
    """An operator's confirmed label for one logged part.

    ``verdict`` is OK or NG; ``label`` is ``"good"`` for OK and the defect type for NG.
    ``box`` is (x1, y1, x2, y2) in image pixels; ``mask_path`` a PNG in the image archive.
    """

    result_id: int
    verdict: str
    label: str
    part_id: str = ""
    mask_path: str | None = None
    box: tuple[float, float, float, float] | None = None
    reviewer: str = "operator"
    reviewed_at: float = field(default_factory=time.time)
    exported_version: str | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        if self.verdict not in ("OK", "NG"):
            raise ConfigError(f"a review confirms OK or NG, not {self.verdict!r}")
        if (self.verdict == "OK") != (self.label == GOOD):
            raise ConfigError(f"verdict {self.verdict} does not fit label {self.label!r}: OK parts "
                              f"are {GOOD!r}, NG parts need a defect type")
        if not self.label or len(self.label) > 64:
            raise ConfigError("the label must be 1 to 64 characters")

    @property
    def is_defect(self) -> bool:
        return self.verdict == "NG"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "result_id": self.result_id, "part_id": self.part_id,
                "verdict": self.verdict, "label": self.label, "mask_path": self.mask_path,
                "box": None if self.box is None else list(self.box), "reviewer": self.reviewer,
                "reviewed_at": self.reviewed_at, "exported_version": self.exported_version}


class ReviewStore:
    """Labels in the same database (and engine) as the results log; ``image_labels`` is the
    store keyed by image content hash that the review queue shares with the labelling studio."""

    def __init__(self, results: ResultStore) -> None:
        self.results = results
        self.engine = results.engine
        self.image_labels = LabelStore(results)
        try:
            _metadata.create_all(self.engine)
        except SQLAlchemyError as error:
            raise StoreError(f"cannot create the review table ({error})") from error

    def add(self, label: ReviewLabel) -> int:
        """Record a label; raises ``UnknownPartError`` or ``AlreadyReviewedError`` (never
        overwrites). Returns the label's row id."""
        stored = self.results.get(label.result_id)
        if stored is None:
            raise UnknownPartError(f"no logged part with result id {label.result_id}")
        row = {**label.to_dict(), "part_id": stored.result.part_id, "exported_version": None}
        row.pop("id")
        try:
            with self.engine.begin() as connection:
                key = connection.execute(labels_table.insert().values(**row)).inserted_primary_key
                assert key is not None
                return int(key[0])
        except IntegrityError as error:
            raise AlreadyReviewedError(f"part {stored.result.part_id!r} (result "
                                       f"{label.result_id}) is already reviewed; labels are never "
                                       "overwritten") from error
        except SQLAlchemyError as error:
            raise StoreError(f"could not save the label ({type(error).__name__}: {error})") \
                from error

    def get(self, result_id: int) -> ReviewLabel | None:
        rows = self._labels(select(labels_table).where(labels_table.c.result_id == result_id))
        return rows[0] if rows else None

    def labels(self, exported: bool | None = None) -> list[ReviewLabel]:
        """All labels, oldest first; ``exported=False`` gives those in no dataset version yet."""
        statement = select(labels_table).order_by(labels_table.c.id)
        if exported is not None:
            column = labels_table.c.exported_version
            statement = statement.where(column.isnot(None) if exported else column.is_(None))
        return self._labels(statement)

    def mark_exported(self, label_ids: Sequence[int], version: str) -> int:
        """Record the dataset version that took these labels (only labels not yet exported)."""
        if not label_ids:
            return 0
        c = labels_table.c
        with self.engine.begin() as connection:
            done = connection.execute(update(labels_table)
                                      .where(c.id.in_(list(label_ids)), c.exported_version.is_(None))
                                      .values(exported_version=version))
        return int(done.rowcount)

    def queue(self, config: QueueConfig = QueueConfig(), limit: int = 50) -> list[StoredResult]:
        """Parts waiting for a person: UNSURE first, then the sample; newest first in each."""
        reviewed = select(labels_table.c.result_id)
        recent = self.results.query(limit=config.lookback)
        with self.engine.connect() as connection:
            done = {row[0] for row in connection.execute(reviewed)}
        waiting = [r for r in recent if r.id not in done
                   and config.sampled(r.result.part_id, r.result.verdict.value)]
        waiting.sort(key=lambda r: (r.result.verdict.value != "UNSURE", -r.id))
        return waiting[:limit]

    def reviewed_pairs(self) -> list[tuple[str, bool]]:
        """(model verdict, operator says defective) for every reviewed part still logged."""
        c, r = labels_table.c, results_table.c
        statement = select(r.verdict, c.verdict).join_from(labels_table, results_table,
                                                            c.result_id == r.id)
        with self.engine.connect() as connection:
            return [(model, truth == "NG") for model, truth in connection.execute(statement)]

    def _labels(self, statement) -> list[ReviewLabel]:
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(statement).mappings().all()
        except SQLAlchemyError as error:
            raise StoreError(f"review query failed ({error})") from error
        return [ReviewLabel(result_id=r["result_id"], verdict=r["verdict"], label=r["label"],
                            part_id=r["part_id"], mask_path=r["mask_path"],
                            box=None if r["box"] is None else tuple(r["box"]),
                            reviewer=r["reviewer"], reviewed_at=r["reviewed_at"],
                            exported_version=r["exported_version"], id=r["id"]) for r in rows]
