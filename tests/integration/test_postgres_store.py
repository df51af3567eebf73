"""The results log against a real PostgreSQL server.

Needs ``DEFECTSCOPE_TEST_POSTGRES_URL``
(``postgresql+psycopg://defectscope:...@localhost:5432/defectscope_test``): ``scripts/test.sh``
starts a server and sets it. A plain ``pytest`` without it skips these tests; under
``scripts/test.sh`` a missing server fails them.
"""

from __future__ import annotations

import os
import uuid

import pytest

from defectscope.store import DuplicatePartError, ResultStore
from defectscope.values import PartResult, Verdict
from tests.services import service_missing

URL = os.environ.get("DEFECTSCOPE_TEST_POSTGRES_URL")
pytestmark = pytest.mark.integration


@pytest.fixture
def store():
    if not URL:
        service_missing("set DEFECTSCOPE_TEST_POSTGRES_URL (scripts/ci-services.sh starts "
                        "PostgreSQL) to test against PostgreSQL")
    store = ResultStore(URL)
    yield store
    store.close()


@pytest.fixture
def line() -> str:
    """A line name of its own, so runs against a shared database never see each other's rows."""
    return f"pg-{uuid.uuid4().hex[:12]}"


def part(line: str, i: int, verdict: Verdict, score: float | None) -> PartResult:
    return PartResult(part_id=f"{line}-{i}", timestamp=1_700_000_000.0 + i, verdict=verdict,
                      score=score, threshold=0.5, model_version="m1", dataset_version="d1",
                      line=line, source=f"cam/{i}.png", defect_types=("blob",),
                      timings={"total": 3.25}, reason=None if score is not None else "unreadable",
                      image_sha256="cd" * 32)


def test_round_trip_filters_and_duplicates_on_postgres(store, line):
    ids = [store.add(part(line, i, v, s), image_path=f"x/{i}.png") for i, (v, s) in
           enumerate([(Verdict.OK, 0.1), (Verdict.NG, 0.9), (Verdict.UNSURE, None)])]
    stored = store.get(ids[1])
    assert stored.result == part(line, 1, Verdict.NG, 0.9) and stored.image_path == "x/1.png"
    assert [r.id for r in store.query(line=line)] == ids[::-1]
    assert store.count(line=line, verdict="NG") == 1
    assert store.count(line=line, since=1_700_000_001, until=1_700_000_002) == 1
    assert store.get(ids[2]).result.score is None
    with pytest.raises(DuplicatePartError):
        store.add(part(line, 0, Verdict.OK, 0.1))
    assert store.count(line=line) == 3 and store.ping()


def test_add_is_committed_when_it_returns(store, line):
    psycopg = pytest.importorskip("psycopg")
    row_id = store.add(part(line, 7, Verdict.OK, 0.2))
    plain_url = URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain_url) as other:  # another session sees it at once
        row = other.execute("SELECT part_id FROM results WHERE id = %s", (row_id,)).fetchone()
    assert row == (f"{line}-7",)


def test_add_many_is_one_transaction_on_postgres(store, line):
    assert store.add_many([part(line, i, Verdict.OK, 0.1) for i in range(50)]) == 50
    with pytest.raises(DuplicatePartError):
        store.add_many([part(line, 50, Verdict.OK, 0.1), part(line, 0, Verdict.OK, 0.1)])
    assert store.count(line=line) == 50 and store.get_by_part(f"{line}-50") is None
