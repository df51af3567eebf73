"""The line end to end with a fake inspector: commit before ack, isolated actions, counters."""

from __future__ import annotations

import threading
import time

import pytest

from defectscope.line.actions import Alert, Archive, Publish, RejectSignal
from defectscope.line.pipeline import BundleInspector, Inspector, LinePipeline
from defectscope.line.sources import FileListSource, FolderWatchSource
from defectscope.store import ImageArchive, ResultStore, StoreError
from defectscope.values import Verdict


@pytest.fixture
def store(tmp_path):
    store = ResultStore(f"sqlite:///{tmp_path / 'results.db'}")
    yield store
    store.close()


@pytest.fixture
def parts(tmp_path, png):
    """Four readable parts (two bright = NG) and one corrupt file."""
    paths = [png(tmp_path / "in" / f"{i}.png", value) for i, value in
             enumerate([10, 240, 20, 250])]
    broken = tmp_path / "in" / "4.png"
    broken.write_bytes(b"\x89PNG not really")
    return [*paths, broken]


def test_every_part_is_committed_before_it_is_acknowledged(tmp_path, store, parts,
                                                           fake_inspector):
    acked, published = [], []

    def ack(part_id: str, record_id: int) -> None:
        stored = store.get(record_id)  # already durable when the PLC hears about it
        assert stored is not None and stored.result.part_id == part_id
        acked.append(part_id)

    def publish(message: dict) -> None:
        assert message["part_id"] in acked
        published.append(message)

    archive = Archive(ImageArchive(tmp_path / "archive"), ok_rate=0.0)
    pipeline = LinePipeline(FileListSource(parts), fake_inspector, store, ack=ack,
                            archive=archive, actions=[Publish(publish)], line="L7")
    counters = pipeline.run()
    assert counters.parts == 5 and len(acked) == 5 and len(published) == 5
    assert counters.verdicts == {"OK": 2, "NG": 2, "UNSURE": 1}
    assert counters.fail_safe == {"unreadable": 1}
    assert store.count(line="L7") == 5
    ng = store.query(verdict="NG")
    assert all(r.image_path and r.heatmap_path for r in ng)
    assert all(r.image_path is None for r in store.query(verdict="OK"))
    unsure = store.query(verdict=Verdict.UNSURE)[0].result
    assert unsure.score is None and "could not be read" in unsure.reason


def test_a_failing_action_is_isolated_counted_and_alerted(store, parts, fake_inspector):
    rejected, published = [], []

    def broken_sink(result):
        raise ConnectionError("PLC unreachable")

    alert = Alert()
    pipeline = LinePipeline(FileListSource(parts), fake_inspector, store, alert=alert,
                            actions=[RejectSignal(broken_sink), Publish(published.append),
                                     RejectSignal(rejected.append)])
    counters = pipeline.run()
    assert counters.parts == 5 and store.count() == 5  # results unaffected
    assert counters.action_errors == {"reject": 3}  # 2 NG + 1 UNSURE
    assert len(published) == 5 and len(rejected) == 3  # later actions still ran
    assert alert.raised == 3 + 1  # three action failures and one fail-safe part


def test_ack_failure_does_not_lose_the_result(store, parts, fake_inspector):
    def ack(part_id, record_id):
        raise TimeoutError("PLC did not answer")

    counters = LinePipeline(FileListSource(parts[:2]), fake_inspector, store, ack=ack).run()
    assert counters.ack_errors == 2 and store.count() == 2


def test_store_failure_stops_the_line_without_acknowledging(tmp_path, parts, fake_inspector):
    acked = []

    class BrokenStore:
        def add(self, *args, **kwargs):
            raise StoreError("database is gone")

    pipeline = LinePipeline(FileListSource(parts), fake_inspector, BrokenStore(),
                            ack=lambda *a: acked.append(a))
    with pytest.raises(StoreError):
        pipeline.run()
    assert acked == []


def test_stop_ends_a_watching_line_cleanly(tmp_path, store, png, fake_inspector):
    watched = tmp_path / "watch"
    watched.mkdir()
    pipeline = LinePipeline(FolderWatchSource(watched, settle_s=0.0, poll_s=0.02),
                            fake_inspector, store)
    thread = threading.Thread(target=pipeline.run)
    thread.start()
    png(watched / "a.png", 30)
    deadline = time.monotonic() + 3
    while pipeline.counters.parts < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    pipeline.stop()
    thread.join(2)
    assert not thread.is_alive() and store.count() == 1


def test_max_parts_and_the_inspector_protocol(store, parts, fake_inspector):
    assert isinstance(fake_inspector, Inspector)
    counters = LinePipeline(FileListSource(parts), fake_inspector, store).run(max_parts=2)
    assert counters.parts == 2 and store.count() == 2


def test_bundle_inspector_reports_a_missing_bundle_clearly(tmp_path):
    from defectscope.errors import BundleError

    with pytest.raises(BundleError, match="no such model folder"):
        BundleInspector(tmp_path / "nope")
