"""The results log on SQLite: round trip, filters, WAL, commit-before-return, clear errors."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from defectscope.errors import ConfigError
from defectscope.store import DuplicatePartError, ResultStore
from defectscope.values import Failure, PartResult, Verdict


def part(i: int, verdict: Verdict = Verdict.OK, **changes) -> PartResult:
    fields = dict(part_id=f"p{i:03d}", timestamp=1_700_000_000.0 + i, verdict=verdict,
                  score=0.1 * i, threshold=0.5, model_version="m1", dataset_version="d1",
                  source=f"cam/{i}.png", defect_types=("scratch",) if verdict is Verdict.NG
                  else (), timings={"model": 1.5, "total": 2.0}, image_sha256="ab" * 32)
    fields.update(changes)
    return PartResult(**fields)


@pytest.fixture
def store(tmp_path):
    store = ResultStore(f"sqlite:///{tmp_path / 'db' / 'results.db'}")
    yield store
    store.close()


def test_add_then_get_round_trips_every_field(store):
    result = part(3, Verdict.NG, reason="score above threshold")
    row_id = store.add(result, image_path="a/b.png", heatmap_path="a/c.png")
    stored = store.get(row_id)
    assert stored.id == row_id
    assert stored.result == result
    assert (stored.image_path, stored.heatmap_path) == ("a/b.png", "a/c.png")
    assert store.get_by_part("p003").id == row_id
    assert store.get(row_id + 100) is None


def test_add_commits_before_returning(tmp_path, store):
    row_id = store.add(part(1))
    # a separate connection (another process would see the same) already sees the row
    with sqlite3.connect(tmp_path / "db" / "results.db") as other:
        assert other.execute("SELECT part_id FROM results WHERE id = ?", (row_id,)).fetchone() \
            == ("p001",)


def test_sqlite_runs_in_wal_mode_with_full_sync(store):
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_query_filters_order_and_paging(store):
    for i in range(10):
        verdict = Verdict.NG if i % 3 == 0 else Verdict.OK
        store.add(part(i, verdict, line="l2" if i >= 8 else "line1",
                       model_version="m2" if i == 9 else "m1"))
    newest = store.query(limit=3)
    assert [r.result.part_id for r in newest] == ["p009", "p008", "p007"]
    assert [r.result.part_id for r in store.query(limit=3, offset=3)] == ["p006", "p005", "p004"]
    assert {r.result.part_id for r in store.query(verdict="NG")} == {"p000", "p003", "p006",
                                                                   "p009"}
    assert store.count(verdict=Verdict.NG) == 4
    assert store.count(since=1_700_000_002, until=1_700_000_005) == 3
    since = dt.datetime.fromtimestamp(1_700_000_008, dt.timezone.utc)
    assert store.count(since=since) == 2
    assert store.count(line="l2") == 2
    assert [r.result.part_id for r in store.query(model_version="m2")] == ["p009"]
    assert store.count() == 10


def test_duplicate_part_id_is_refused_clearly(store):
    store.add(part(1))
    with pytest.raises(DuplicatePartError, match="p001"):
        store.add(part(1))
    assert store.count() == 1


def test_non_finite_numbers_are_stored_as_null(store):
    row_id = store.add(part(1, Verdict.UNSURE, score=float("nan")))
    assert store.get(row_id).result.score is None


def test_a_part_without_score_round_trips(store):
    row_id = store.add(part(2, Verdict.UNSURE, score=None, reason="image could not be read",
                            image_sha256=None))
    stored = store.get(row_id).result
    assert stored.score is None and stored.verdict is Verdict.UNSURE


def test_bad_inputs_give_clear_errors(tmp_path, store):
    with pytest.raises(ConfigError, match="verdict"):
        store.query(verdict="MAYBE")
    with pytest.raises(ConfigError, match="part id"):
        store.add(part(1, part_id="x" * 500))
    with pytest.raises(ConfigError, match="not a database URL"):
        ResultStore("not a url")
    with pytest.raises(ConfigError, match="driver"):
        ResultStore("postgresql+nosuchdriver://u@localhost/db")


def test_two_stores_on_one_file_share_results(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    writer, reader = ResultStore(url), ResultStore(url)
    writer.add(part(1))
    assert reader.count() == 1
    writer.close(), reader.close()


def test_failure_kind_round_trips(store):
    part = PartResult("p-fail", 1.0, Verdict.UNSURE, None, 0.5, "m1", reason="corrupt",
                      failure=Failure.UNREADABLE)
    stored = store.get(store.add(part))
    assert stored.result.failure is Failure.UNREADABLE
    assert stored.to_dict()["failure"] == "unreadable"


def test_a_log_from_before_the_failure_column_is_upgraded_on_open(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:  # the table as the first release wrote it
        connection.execute(
            "CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, part_id VARCHAR(200) "
            "NOT NULL UNIQUE, timestamp FLOAT NOT NULL, line VARCHAR(64) NOT NULL, source TEXT "
            "NOT NULL, verdict VARCHAR(8) NOT NULL, score FLOAT, threshold FLOAT, model_version "
            "VARCHAR(64) NOT NULL, dataset_version VARCHAR(64), defect_types JSON NOT NULL, "
            "timings JSON NOT NULL, reason TEXT, image_sha256 VARCHAR(64), image_path TEXT, "
            "heatmap_path TEXT)")
        connection.execute(
            "INSERT INTO results (part_id, timestamp, line, source, verdict, score, threshold, "
            "model_version, defect_types, timings) VALUES ('old-1', 1.0, 'line1', 'f', 'OK', "
            "0.1, 0.5, 'm0', '[]', '{}')")
    store = ResultStore(f"sqlite:///{path}")
    old = store.query()[0]
    assert old.result.part_id == "old-1" and old.result.failure is None
    store.add(PartResult("new-1", 2.0, Verdict.NG, None, 0.5, "m1", failure=Failure.INFERENCE))
    assert {r.result.part_id: r.result.failure for r in store.query()} == {
        "old-1": None, "new-1": Failure.INFERENCE}


def test_a_failed_part_can_never_be_ok():
    with pytest.raises(ValueError, match="never be OK"):
        PartResult("p", 1.0, Verdict.OK, 0.1, 0.5, "m1", failure=Failure.TIMEOUT)


def test_add_many_commits_all_parts_in_one_go_or_none(store):
    assert store.add_many([part(i) for i in range(5)]) == 5
    assert store.count() == 5 and store.get_by_part("p004").result == part(4)
    with pytest.raises(DuplicatePartError):  # p004 is there already: the batch is refused whole
        store.add_many([part(10), part(4), part(11)])
    with pytest.raises(DuplicatePartError):  # twice within one batch
        store.add_many([part(20), part(20)])
    assert store.count() == 5 and store.get_by_part("p010") is None
    with pytest.raises(ConfigError):
        store.add_many([part(30, part_id="")])
    assert store.add_many([]) == 0
