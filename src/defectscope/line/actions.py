"""What the line does with a decided part: reject it, alert someone, archive it, publish it.

An action is any object with a ``name`` and ``__call__(event: PartEvent)``; MQTT and OPC UA
plug in the same way. The pipeline isolates actions: one that raises is logged, counted and
alerted, and neither the part's result nor the other actions are affected. ``Archive`` runs
before the result is committed (so the logged row points at files that exist); the others after.

>>> actions = [RejectSignal(plc.reject), Publish(print)]       # doctest: +SKIP
>>> alert = Alert(webhook_url="http://alerts.local/hook")      # doctest: +SKIP
>>> archive = Archive(ImageArchive("archive"), ok_rate=0.05, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import cv2

from defectscope.errors import ConfigError
from defectscope.line.decision import Decision
from defectscope.store.archive import ImageArchive
from defectscope.values import PartResult, Verdict
from defectscope.visualize import overlay_heatmap

log = logging.getLogger(__name__)

NOT_OK = frozenset({Verdict.NG, Verdict.UNSURE})


@dataclass(frozen=True, eq=False)
class PartEvent:
    """A part after its result was committed: row id, result and the decision behind it."""

    record_id: int
    decision: Decision

    @property
    def result(self) -> PartResult:
        return self.decision.part

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.record_id, **self.result.to_dict()}


class Action(Protocol):
    name: str

    def __call__(self, event: PartEvent) -> None: ...


class RejectSignal:
    """Calls ``sink(result)`` for parts whose verdict is in ``verdicts`` (NG and UNSURE)."""

    name = "reject"

    def __init__(self, sink: Callable[[PartResult], None],
                 verdicts: Iterable[Verdict] = NOT_OK) -> None:
        self.sink, self.verdicts = sink, frozenset(Verdict(v) for v in verdicts)

    def __call__(self, event: PartEvent) -> None:
        if event.result.verdict in self.verdicts:
            self.sink(event.result)


class Publish:
    """Hands every result (its JSON-ready dict, with the row id) to ``sink``: MQTT is one."""

    name = "publish"

    def __init__(self, sink: Callable[[dict[str, Any]], None]) -> None:
        self.sink = sink

    def __call__(self, event: PartEvent) -> None:
        self.sink(event.to_dict())


class Alert:
    """Operator alerts: always to ``logging``, and POSTed as JSON to ``webhook_url`` if set.

    Alerts fire for every part a fail-safe rule decided (and for parts in ``verdicts``, none by
    default). Webhook calls run on a background thread with a ``timeout_s``, so a slow or dead
    receiver never holds up the line; failures are logged and counted in ``failed``, never raised.
    """

    name = "alert"

    def __init__(self, webhook_url: str | None = None, *, timeout_s: float = 2.0,
                 verdicts: Iterable[Verdict] = (), max_queue: int = 100) -> None:
        if webhook_url is not None and not webhook_url.startswith(("http://", "https://")):
            raise ConfigError(f"{webhook_url!r}: alert webhook must be an http(s) URL")
        self.webhook_url, self.timeout_s = webhook_url, timeout_s
        self.verdicts = frozenset(Verdict(v) for v in verdicts)
        self.raised = self.sent = self.failed = self.dropped = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_queue)
        self._worker: threading.Thread | None = None

    def __call__(self, event: PartEvent) -> None:
        decision = event.decision
        if decision.failure is not None or event.result.verdict in self.verdicts:
            self.raise_alert(f"part {event.result.part_id}: {event.result.verdict.value}"
                             f" ({event.result.reason or 'no reason given'})",
                             kind=decision.failure.value if decision.failure else "verdict", part=event.to_dict())

    def raise_alert(self, message: str, **details: Any) -> None:
        """Log ``message`` and queue it for the webhook; never raises."""
        self.raised += 1
        log.warning("ALERT %s", message)
        if self.webhook_url is None:
            return
        try:
            self._queue.put_nowait({"message": message, "time": time.time(), **details})
        except queue.Full:
            self.dropped += 1
            log.error("alert webhook queue full; alert dropped: %s", message)
            return
        if self._worker is None:
            self._worker = threading.Thread(target=self._send_loop, name="alert-webhook",
                                            daemon=True)
            self._worker.start()

    def _send_loop(self) -> None:
        url = str(self.webhook_url)
        while (payload := self._queue.get()) is not None:
            try:
                request = urllib.request.Request(
                    url, data=json.dumps(payload, default=str).encode(),
                    headers={"Content-Type": "application/json"}, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    response.read()
                self.sent += 1
            except Exception as error:  # network, HTTP status, timeout: count and go on
                self.failed += 1
                log.error("alert webhook %s failed: %s", url, error)

    def close(self, timeout_s: float | None = None) -> None:
        """Deliver what is queued (up to ``timeout_s``, default a few webhook timeouts), stop."""
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout_s if timeout_s is not None else 3 * self.timeout_s)
            self._worker = None


@dataclass(frozen=True)
class ArchivedPaths:
    image_path: str | None = None
    heatmap_path: str | None = None


def heatmap_png(decision: Decision) -> bytes | None:
    """The anomaly map over the image as PNG bytes (red at twice the threshold), if there is one."""
    inspection, image = decision.inspection, decision.frame.image
    if inspection is None or inspection.anomaly_map is None or image is None:
        return None
    if inspection.anomaly_map.shape[:2] != image.shape[:2]:
        return None
    vmax = 2 * (decision.part.threshold or 1.0)
    overlay = overlay_heatmap(image, inspection.anomaly_map.astype("float32"), vmax)
    ok, png = cv2.imencode(".png", cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
    return png.tobytes() if ok else None


class Archive:
    """Stores the image (and heatmap) of every NG and UNSURE part and a sample of OK parts.

    The sample is drawn from a ``random.Random(seed)``, so a rerun archives the same parts.
    """

    name = "archive"

    def __init__(self, archive: ImageArchive | str | Path, *, ok_rate: float = 0.05,
                 seed: int = 0, heatmaps: bool = True) -> None:
        if not 0.0 <= ok_rate <= 1.0:
            raise ConfigError(f"ok_rate must be between 0 and 1, not {ok_rate}")
        self.archive = archive if isinstance(archive, ImageArchive) else ImageArchive(archive)
        self.ok_rate, self.heatmaps = ok_rate, heatmaps
        self._random = random.Random(seed)

    def wants(self, part: PartResult) -> bool:
        draw = self._random.random()  # drawn for every part, so the sample does not shift
        return part.verdict is not Verdict.OK or draw < self.ok_rate

    def save(self, decision: Decision) -> ArchivedPaths:
        """Write the files this part should keep; returns their paths (None where not kept)."""
        if decision.image_bytes is None or not self.wants(decision.part):
            return ArchivedPaths()
        image_path = self.archive.put(decision.image_bytes, decision.image_suffix)
        heatmap = heatmap_png(decision) if self.heatmaps else None
        heatmap_path = self.archive.put(heatmap, ".png") if heatmap else None
        return ArchivedPaths(str(image_path), None if heatmap_path is None else str(heatmap_path))
