"""The labels table: one label per part, concurrent reviews, the seeded queue."""

from __future__ import annotations

import threading

import pytest

from defectscope.errors import ConfigError
from defectscope.store import (AlreadyReviewedError, QueueConfig, ResultStore, ReviewLabel,
                               ReviewStore, UnknownPartError)
from defectscope.values import PartResult, Verdict


@pytest.fixture
def reviews(tmp_path):
    store = ResultStore(f"sqlite:///{tmp_path / 'results.db'}")
    yield ReviewStore(store)
    store.close()


def log(reviews, n=40, verdicts=("OK", "NG", "UNSURE", "OK")):
    ids = []
    for i in range(n):
        verdict = verdicts[i % len(verdicts)]
        ids.append(reviews.results.add(PartResult(f"part-{i}", 1000.0 + i, Verdict(verdict),
                                                  0.1 * (i % 10), 0.5, "m1")))
    return ids


def test_label_round_trip_and_export_marking(reviews):
    ids = log(reviews, 4)
    label_id = reviews.add(ReviewLabel(ids[1], "NG", "scratch", box=(1, 2, 3, 4)))
    saved = reviews.get(ids[1])
    assert saved.id == label_id and saved.part_id == "part-1" and saved.box == (1, 2, 3, 4)
    assert [label.result_id for label in reviews.labels(exported=False)] == [ids[1]]
    assert reviews.mark_exported([label_id], "v1") == 1
    assert reviews.mark_exported([label_id], "v2") == 0  # never re-assigned
    assert reviews.labels(exported=True)[0].exported_version == "v1"
    assert reviews.reviewed_pairs() == [("NG", True)]


def test_unknown_and_already_reviewed_parts_are_refused(reviews):
    ids = log(reviews, 2)
    with pytest.raises(UnknownPartError):
        reviews.add(ReviewLabel(999, "OK", "good"))
    reviews.add(ReviewLabel(ids[0], "OK", "good", reviewer="ann"))
    with pytest.raises(AlreadyReviewedError):
        reviews.add(ReviewLabel(ids[0], "NG", "dent", reviewer="bob"))
    assert reviews.get(ids[0]).reviewer == "ann"  # the first label is kept


@pytest.mark.parametrize("verdict, label", [("OK", "dent"), ("NG", "good"), ("MAYBE", "x"),
                                            ("NG", "")])
def test_inconsistent_labels_are_refused(verdict, label):
    with pytest.raises(ConfigError):
        ReviewLabel(1, verdict, label)


def test_concurrent_reviews_of_one_part_exactly_one_wins(reviews):
    [part] = log(reviews, 1)
    outcomes, barrier = [], threading.Barrier(6)

    def review(name):
        barrier.wait()
        try:
            reviews.add(ReviewLabel(part, "NG", "dent", reviewer=name))
            outcomes.append("won")
        except AlreadyReviewedError:
            outcomes.append("409")

    threads = [threading.Thread(target=review, args=(f"op{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["409"] * 5 + ["won"]
    assert len(reviews.labels()) == 1


def test_queue_has_every_unsure_part_and_a_stable_sample(reviews):
    ids = log(reviews, 40)
    config = QueueConfig(ok_rate=0.3, ng_rate=0.0, seed=1)
    queue = reviews.queue(config, limit=100)
    verdicts = [row.result.verdict.value for row in queue]
    assert verdicts.count("UNSURE") == 10 and "NG" not in verdicts
    assert verdicts[:10] == ["UNSURE"] * 10  # UNSURE first
    assert 0 < verdicts.count("OK") < 20
    assert [r.id for r in reviews.queue(config, limit=100)] == [r.id for r in queue]
    reviews.add(ReviewLabel(queue[0].id, "OK", "good"))
    assert queue[0].id not in [r.id for r in reviews.queue(config, limit=100)]
    assert len(reviews.queue(QueueConfig(ok_rate=1, ng_rate=1), limit=100)) == 39
    with pytest.raises(ConfigError):
        QueueConfig(ok_rate=1.5)
    assert ids
