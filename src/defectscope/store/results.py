"""The results log: one row per inspected part, committed before anyone is told about it.

Why a database and not a CSV: the line is killed, power-cycled and restarted; a result that was
acknowledged to the PLC or published must still be there afterwards. ``add`` commits (SQLite in
WAL mode with ``synchronous=FULL``, or PostgreSQL) before it returns, so the caller acknowledges
only what is durable.

>>> store = ResultStore("sqlite:///results.db")                    # doctest: +SKIP
>>> row_id = store.add(part_result, image_path="archive/ab/ab12....png")  # doctest: +SKIP
>>> [r.result.verdict for r in store.query(verdict="NG", limit=10)]  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import (
    JSON,
    Column,
    Double,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError

from defectscope.errors import ConfigError, DefectscopeError
from defectscope.store.locations import DEFAULT_DB_URL
from defectscope.values import PartResult, Verdict

DEFAULT_URL = DEFAULT_DB_URL  # runs/line/results.db: the one default (store.locations)
MAX_PART_ID = 128

_metadata = MetaData()
results_table = Table(
    "results",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("part_id", String(MAX_PART_ID), nullable=False, unique=True),
    Column("timestamp", Double, nullable=False, index=True),
    Column("line", String(64), nullable=False, index=True),
    Column("source", Text, nullable=False),
    Column("verdict", String(8), nullable=False, index=True),
    Column("score", Double, nullable=True),
    Column("threshold", Double, nullable=True),
    Column("model_version", String(64), nullable=False, index=True),
    Column("dataset_version", String(64), nullable=True),
    Column("defect_types", JSON, nullable=False),
    Column("timings", JSON, nullable=False),
    Column("reason", Text, nullable=True),
    Column("image_sha256", String(64), nullable=True),
    Column("image_path", Text, nullable=True),
    Column("heatmap_path", Text, nullable=True),
    Column("failure", String(16), nullable=True),
)

# Columns added after the first release: (name, SQL type), added to older databases on open.
_ADDED_COLUMNS = (("failure", "VARCHAR(16)"),)


class StoreError(DefectscopeError):
    """The results database cannot be reached or refused a write."""


class DuplicatePartError(StoreError):
    """A result for this part id is already logged (part ids are unique)."""


@dataclass(frozen=True)
class StoredResult:
    """A logged part: its row id, the result, and where its archived image and heatmap are."""

    id: int
    result: PartResult
    image_path: str | None = None
    heatmap_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.result.to_dict(),
                "image_path": self.image_path, "heatmap_path": self.heatmap_path}


TimeLike = float | int | _dt.datetime | None


def _seconds(value: TimeLike) -> float | None:
    """Unix seconds from a number or a datetime (a naive datetime is taken as UTC)."""
    if value is None or isinstance(value, (int, float)):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return value.timestamp()


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers (the service, the dashboard) run while the line writes; FULL syncs the
    # WAL on every commit, so a committed result survives a power cut, not only a kill -9.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _add_missing_columns(engine: Engine) -> None:
    """Bring a results log written by an older version up to the current columns (additive
    only: nothing is rewritten, old rows read the new columns as NULL)."""
    present = {column["name"] for column in sa_inspect(engine).get_columns(results_table.name)}
    with engine.begin() as connection:
        for name, sql_type in _ADDED_COLUMNS:
            if name not in present:
                connection.execute(text(f"ALTER TABLE {results_table.name} ADD COLUMN {name} "
                                        f"{sql_type}"))


def create_store_engine(url: str) -> Engine:
    """An engine for ``url``: SQLite (WAL, synchronous=FULL) or any SQLAlchemy URL (PostgreSQL)."""
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise ConfigError(f"{url!r} is not a database URL (try sqlite:///results.db or "
                          "postgresql+psycopg://user:password@host/db)") from error
    try:
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed, connect_args={"check_same_thread": False,
                                                         "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ModuleNotFoundError) as error:
        raise ConfigError(f"{parsed.drivername}: no database driver installed for this URL "
                          "(for PostgreSQL: pip install 'psycopg[binary]' and use "
                          "postgresql+psycopg://...)") from error


class ResultStore:
    """Results of inspected parts in a SQL database; creates its table on first use.

    ``url`` is a SQLAlchemy URL: ``sqlite:///path/results.db`` (default) or
    ``postgresql+psycopg://user:password@host:5432/db``. Rows are returned newest first.
    """

    def __init__(self, url: str = DEFAULT_URL) -> None:
        self.url = url
        self.engine = create_store_engine(url)
        try:
            _metadata.create_all(self.engine)
            _add_missing_columns(self.engine)
        except SQLAlchemyError as error:
            raise StoreError(f"{self._where()}: cannot open the results database "
                             f"({type(error).__name__}: {error})") from error

    def _where(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def add(self, result: PartResult, image_path: str | None = None,
            heatmap_path: str | None = None) -> int:
        """Log one part and commit; returns the row id. Only then may the part be acknowledged."""
        row = _row(result, image_path, heatmap_path)
        try:
            with self.engine.begin() as connection:  # commits on leaving the block
                inserted = connection.execute(results_table.insert().values(**row))
                key = inserted.inserted_primary_key
                assert key is not None  # an insert always has a primary key
                return int(key[0])
        except IntegrityError as error:
            raise DuplicatePartError(f"part {result.part_id!r} is already in the results "
                                     "log; part ids must be unique") from error
        except SQLAlchemyError as error:
            raise StoreError(f"{self._where()}: could not log part {result.part_id!r} "
                             f"({type(error).__name__}: {error})") from error

    def add_many(self, results: Sequence[PartResult]) -> int:
        """Log several parts in one transaction (one commit): all of them or, on any error
        (a part id already there included), none. Returns how many were written. For a
        forwarder that ships a second of a line's results at a time."""
        rows = [_row(result) for result in results]
        if not rows:
            return 0
        try:
            with self.engine.begin() as connection:
                connection.execute(results_table.insert(), rows)
        except IntegrityError as error:
            raise DuplicatePartError(f"one of {len(rows)} parts (first {rows[0]['part_id']!r}) "
                                     "is already in the results log or given twice; nothing "
                                     "was written") from error
        except SQLAlchemyError as error:
            raise StoreError(f"{self._where()}: could not log {len(rows)} parts "
                             f"({type(error).__name__}: {error})") from error
        return len(rows)

    def get(self, id: int) -> StoredResult | None:
        """The row with this id, or None."""
        rows = self._select(select(results_table).where(results_table.c.id == int(id)))
        return rows[0] if rows else None

    def get_by_part(self, part_id: str) -> StoredResult | None:
        rows = self._select(select(results_table).where(results_table.c.part_id == part_id))
        return rows[0] if rows else None

    def query(self, verdict: Verdict | str | None = None, since: TimeLike = None,
              until: TimeLike = None, line: str | None = None,
              model_version: str | None = None, limit: int = 100,
              offset: int = 0) -> list[StoredResult]:
        """Rows matching every given filter, newest first; ``since`` <= timestamp < ``until``."""
        if limit < 0 or offset < 0:
            raise ConfigError(f"limit and offset must be >= 0 (got {limit}, {offset})")
        statement = self._filtered(select(results_table), verdict, since, until, line,
                                   model_version)
        statement = statement.order_by(results_table.c.id.desc()).limit(limit).offset(offset)
        return self._select(statement)

    def count(self, verdict: Verdict | str | None = None, since: TimeLike = None,
              until: TimeLike = None, line: str | None = None,
              model_version: str | None = None) -> int:
        """How many rows match the filters (same meaning as ``query``)."""
        statement = self._filtered(select(func.count()).select_from(results_table), verdict,
                                   since, until, line, model_version)
        with self._connect() as connection:
            return int(connection.execute(statement).scalar_one())

    def ping(self) -> bool:
        """True when the database answers (for health checks)."""
        try:
            with self.engine.connect() as connection:
                connection.execute(select(1))
            return True
        except SQLAlchemyError:
            return False

    def close(self) -> None:
        self.engine.dispose()

    # -- helpers -------------------------------------------------------------------------------
    def _filtered(self, statement, verdict, since, until, line, model_version):
        c = results_table.c
        if verdict is not None:
            try:
                statement = statement.where(c.verdict == Verdict(verdict).value)
            except ValueError as error:
                raise ConfigError(f"verdict must be OK, NG or UNSURE, not {verdict!r}") from error
        if since is not None:
            statement = statement.where(c.timestamp >= _seconds(since))
        if until is not None:
            statement = statement.where(c.timestamp < _seconds(until))
        if line is not None:
            statement = statement.where(c.line == line)
        if model_version is not None:
            statement = statement.where(c.model_version == model_version)
        return statement

    def _connect(self):
        try:
            return self.engine.connect()
        except SQLAlchemyError as error:
            raise StoreError(f"{self._where()}: cannot reach the results database "
                             f"({type(error).__name__}: {error})") from error

    def _select(self, statement) -> list[StoredResult]:
        try:
            with self._connect() as connection:
                rows = connection.execute(statement).mappings().all()
        except SQLAlchemyError as error:
            raise StoreError(f"{self._where()}: query failed ({type(error).__name__}: "
                             f"{error})") from error
        return [_from_row(row) for row in rows]


def _row(result: PartResult, image_path: str | None = None,
         heatmap_path: str | None = None) -> dict[str, Any]:
    """The table row of one part (its part id checked)."""
    if not result.part_id or len(result.part_id) > MAX_PART_ID:
        raise ConfigError(f"part id must be 1 to {MAX_PART_ID} characters, "
                          f"got {result.part_id!r}")
    return {
        "part_id": result.part_id,
        "timestamp": float(result.timestamp),
        "line": result.line,
        "source": result.source,
        "verdict": result.verdict.value,
        "score": _finite(result.score),
        "threshold": _finite(result.threshold),
        "model_version": result.model_version,
        "dataset_version": result.dataset_version,
        "defect_types": list(result.defect_types),
        "timings": {k: float(v) for k, v in result.timings.items()},
        "reason": result.reason,
        "image_sha256": result.image_sha256,
        "image_path": None if image_path is None else str(image_path),
        "heatmap_path": None if heatmap_path is None else str(heatmap_path),
        "failure": None if result.failure is None else result.failure.value,
    }


def _from_row(row) -> StoredResult:
    result = PartResult(
        part_id=row["part_id"],
        timestamp=float(row["timestamp"]),
        verdict=Verdict(row["verdict"]),
        score=row["score"],
        threshold=row["threshold"],
        model_version=row["model_version"],
        dataset_version=row["dataset_version"],
        line=row["line"],
        source=row["source"],
        defect_types=tuple(row["defect_types"] or ()),
        timings=dict(row["timings"] or {}),
        reason=row["reason"],
        image_sha256=row["image_sha256"],
        failure=row["failure"],
    )
    return StoredResult(id=int(row["id"]), result=result, image_path=row["image_path"],
                        heatmap_path=row["heatmap_path"])
