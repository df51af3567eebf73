"""Actions: reject, publish, alert (log + webhook that may fail), archive (NG/UNSURE + OK sample)."""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time

import numpy as np
import pytest

from defectscope.errors import ConfigError
from defectscope.line.actions import Alert, Archive, PartEvent, Publish, RejectSignal
from defectscope.line.decision import evaluate
from defectscope.line.sources import Frame
from defectscope.store import ImageArchive
from defectscope.values import Verdict


def event_for(inspector, value: int, record_id: int = 1, frame_id: str = "f") -> PartEvent:
    frame = Frame(frame_id, time.time(), "test", np.full((6, 7, 3), value, np.uint8))
    return PartEvent(record_id, evaluate(frame, inspector))


@pytest.fixture
def webhook():
    """A real HTTP server on loopback that records the JSON bodies POSTed to it."""
    received: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


def test_reject_signal_fires_for_ng_and_unsure_only(fake_inspector, make_inspector):
    rejected = []
    reject = RejectSignal(rejected.append)
    reject(event_for(fake_inspector, 10))
    reject(event_for(fake_inspector, 250))
    reject(event_for(make_inspector(error=RuntimeError("boom")), 10))
    assert [r.verdict for r in rejected] == [Verdict.NG, Verdict.NG]


def test_publish_hands_over_json_ready_results(fake_inspector):
    published = []
    Publish(published.append)(event_for(fake_inspector, 250, record_id=7, frame_id="p7"))
    assert published[0]["id"] == 7 and published[0]["part_id"] == "p7"
    assert published[0]["verdict"] == "NG"
    json.dumps(published[0])


def test_alert_logs_and_posts_fail_safe_parts(webhook, make_inspector, fake_inspector, caplog):
    url, received = webhook
    alert = Alert(url, timeout_s=2)
    with caplog.at_level(logging.WARNING):
        alert(event_for(make_inspector(error=RuntimeError("model crashed")), 10, frame_id="p1"))
        alert(event_for(fake_inspector, 10))  # an ordinary OK part: no alert
    alert.close()
    assert alert.raised == 1 and alert.sent == 1 and alert.failed == 0
    assert received[0]["kind"] == "inference" and received[0]["part"]["part_id"] == "p1"
    assert "model crashed" in caplog.text


def test_alert_webhook_failures_are_counted_never_raised(caplog):
    alert = Alert("http://127.0.0.1:9/nothing-listens-here", timeout_s=0.5)
    with caplog.at_level(logging.ERROR):
        alert.raise_alert("disk almost full")
        alert.close()
    assert alert.raised == 1 and alert.failed == 1 and alert.sent == 0
    assert "webhook" in caplog.text
    with pytest.raises(ConfigError):
        Alert("file:///etc/passwd")


def test_archive_keeps_every_ng_and_unsure_and_a_seeded_sample_of_ok(tmp_path, fake_inspector,
                                                                      make_inspector):
    archive = Archive(ImageArchive(tmp_path), ok_rate=0.3, seed=1)
    ng = archive.save(event_for(fake_inspector, 250).decision)
    assert ng.image_path and ng.heatmap_path
    failed = archive.save(event_for(make_inspector(error=RuntimeError("x")), 10).decision)
    assert failed.image_path and failed.heatmap_path is None  # no anomaly map without a model
    kept = [archive.save(event_for(fake_inspector, i).decision).image_path is not None
            for i in range(100)]
    again = Archive(ImageArchive(tmp_path), ok_rate=0.3, seed=1)
    for _ in range(2):  # the two not-OK parts above drew from the sampler too
        again.wants(event_for(fake_inspector, 250).result)
    kept_again = [again.save(event_for(fake_inspector, i).decision).image_path is not None
                  for i in range(100)]
    assert kept == kept_again and 15 <= sum(kept) <= 45
    with pytest.raises(ConfigError):
        Archive(tmp_path, ok_rate=1.5)
