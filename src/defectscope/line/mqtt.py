"""Publish part results over MQTT without ever losing one, even while the broker is down.

Why a local queue: a line keeps producing parts when the network or the broker hiccups, and the
factory's dashboards and MES must still get every result. Each result is written to a small
SQLite outbox first and deleted only when the broker acknowledges it (QoS 1 PUBACK), so a broker
outage loses nothing and a process restart resends whatever was not acknowledged. Delivery is
at least once: a consumer may see a part twice after a reconnect and should key on ``part_id``.

Topics (a contract other tools depend on, see docs/integration.md):

- ``defectscope/<line>/result``: one JSON object per part (``PartResult.to_dict()``), QoS 1.
- ``defectscope/<line>/status``: retained ``{"state": "running" | "stopped" | "offline", ...}``;
  the broker sets ``offline`` through the Last Will if the process dies.

The calls return at once; ``close`` waits for acknowledgements and says how many are left:

>>> publisher = MqttPublisher("mqtt://localhost:1883", queue_path="outbox.db")  # doctest: +SKIP
>>> publisher.publish(part_result)  # doctest: +SKIP
>>> publisher.close(timeout=5.0)  # doctest: +SKIP
0
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from defectscope.errors import ConfigError
from defectscope.values import PartResult

log = logging.getLogger(__name__)

TOPIC_ROOT = "defectscope"
STATES = ("running", "stopped", "offline")
_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class MqttUrl:
    """Where the broker is: ``mqtt://[user[:password]@]host[:port]`` or ``mqtts://`` for TLS."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None


def parse_mqtt_url(url: str) -> MqttUrl:
    """Split a broker URL into its parts, with a clear error for anything else.

    >>> parse_mqtt_url("mqtt://broker.local")
    MqttUrl(host='broker.local', port=1883, tls=False, username=None, password=None)
    """
    fix = "expected mqtt://host[:port] or mqtts://host[:port], e.g. mqtt://localhost:1883"
    parts = urlsplit(url.strip())
    if parts.scheme not in _DEFAULT_PORTS:
        raise ConfigError(f"MQTT URL {url!r}: unknown scheme {parts.scheme!r} ({fix})")
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ConfigError(f"MQTT URL {url!r}: the port is not in 1-65535 ({fix})") from None
    if not parts.hostname:
        raise ConfigError(f"MQTT URL {url!r}: no host ({fix})")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"MQTT URL {url!r}: unexpected path or query ({fix})")
    return MqttUrl(
        host=parts.hostname,
        port=port,
        tls=parts.scheme == "mqtts",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def result_topic(line: str) -> str:
    """``defectscope/<line>/result``: where every part result goes."""
    return f"{TOPIC_ROOT}/{_check_line(line)}/result"


def status_topic(line: str) -> str:
    """``defectscope/<line>/status``: the retained line state."""
    return f"{TOPIC_ROOT}/{_check_line(line)}/status"


def _check_line(line: str) -> str:
    if not line or any(c in line for c in "/+#\0") or line != line.strip():
        raise ConfigError(
            f"line name {line!r} cannot be an MQTT topic level "
            "(use letters, digits, '-' or '_', without '/', '+', '#' or spaces at the ends)"
        )
    return line


def _json(data: Any) -> bytes:
    """Strict JSON: NaN and infinity (not JSON) become null."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(data), allow_nan=False, separators=(",", ":")).encode()


class _Outbox:
    """The durable queue: rows live here until the broker has acknowledged them."""

    def __init__(self, path: str | Path | None) -> None:
        target = ":memory:" if path is None else str(path)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        if path is not None:
            # WAL + NORMAL survives a killed process (not a power cut) without an fsync per row.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "topic TEXT NOT NULL, payload BLOB NOT NULL, created REAL NOT NULL)"
        )

    def add(self, topic: str, payload: bytes) -> int:
        cursor = self._db.execute(
            "INSERT INTO outbox (topic, payload, created) VALUES (?, ?, ?)",
            (topic, payload, time.time()),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def remove(self, row_id: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))

    def rows(self) -> list[tuple[int, str, bytes]]:
        return self._db.execute("SELECT id, topic, payload FROM outbox ORDER BY id").fetchall()

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        self._db.close()


class MqttPublisher:
    """Sends each ``PartResult`` to ``defectscope/<line>/result`` and keeps the line status.

    ``publish`` never blocks the line for long and never raises because of the broker: the
    result is stored in the outbox and paho delivers it when the connection is (back) up.
    ``queue_path`` makes the outbox a SQLite file that survives a restart; None keeps it in
    memory (lost with the process); give each publisher its own file. Connection and
    reconnection run in paho's background thread.
    """

    def __init__(
        self,
        url: str = "mqtt://localhost:1883",
        line: str = "line1",
        client_id: str | None = None,
        queue_path: str | Path | None = None,
        keepalive: int = 30,
    ) -> None:
        self.url = url
        self.line = line
        self.result_topic = result_topic(line)
        self.status_topic = status_topic(line)
        self.client_id = client_id or f"defectscope-{line}-{uuid.uuid4().hex[:8]}"
        target = parse_mqtt_url(url)

        self._lock = threading.Lock()
        self._outbox = _Outbox(queue_path)
        # mid -> outbox row (None for status messages); acks that beat the bookkeeping wait in
        # _early_acks. paho calls on_publish under its own lock, so ours is never held into paho.
        self._inflight: dict[int, int | None] = {}
        self._early_acks: set[int] = set()
        self._connected = threading.Event()
        self._closed = False

        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv311,
        )
        if target.username:
            client.username_pw_set(target.username, target.password)
        if target.tls:
            client.tls_set()
        client.will_set(self.status_topic, self._status_payload("offline"), qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=5)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client

        # Whatever a previous process left unacknowledged goes first, in order.
        for row_id, topic, payload in self._outbox.rows():
            self._send(topic, payload, retain=False, row_id=row_id)
        client.connect_async(target.host, target.port, keepalive=keepalive)
        client.loop_start()

    # -- public API ---------------------------------------------------------------------------

    def publish(self, result: PartResult | Mapping[str, Any]) -> None:
        """Queue one result durably and hand it to the broker connection (returns at once).

        ``result`` is a ``PartResult`` or its JSON-ready dict (what the line's ``Publish``
        action hands over, with the results-log row ``id``): ``Publish(publisher.publish)``.
        """
        if self._closed:
            raise RuntimeError("MqttPublisher.publish() after close()")
        payload = _json(result.to_dict() if isinstance(result, PartResult) else dict(result))
        with self._lock:
            row_id = self._outbox.add(self.result_topic, payload)
        self._send(self.result_topic, payload, retain=False, row_id=row_id)

    def set_state(self, state: str, **extra: Any) -> None:
        """Publish the retained line status: ``running`` or ``stopped`` (``offline`` is the will).

        Extra keyword arguments go into the status JSON, e.g. ``set_state("stopped", reason=...)``.
        """
        if state not in STATES[:2]:
            raise ConfigError(f"line state {state!r}: expected 'running' or 'stopped'")
        payload = self._status_payload(state, **extra)
        self._send(self.status_topic, payload, retain=True, row_id=None)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float = 5.0) -> bool:
        """Block until the broker accepted the connection; False after ``timeout`` seconds."""
        return self._connected.wait(timeout)

    def pending(self) -> int:
        """How many results are stored and not yet acknowledged by the broker."""
        with self._lock:
            return self._outbox.count()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every message handed to paho is acknowledged; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._inflight:
                    return True
            time.sleep(0.01)
        return False

    def close(self, timeout: float = 5.0) -> int:
        """Say ``stopped``, wait up to ``timeout`` s for acks, disconnect; return results left.

        Results left over stay in the outbox file and are sent by the next publisher that
        opens the same ``queue_path``.
        """
        if self._closed:
            return 0
        if self.connected:
            self.set_state("stopped")
            self.flush(timeout)
        self._closed = True
        self._client.disconnect()
        self._client.loop_stop()
        with self._lock:
            left = self._outbox.count()
            self._outbox.close()
        if left:
            log.warning("MQTT publisher closed with %d unacknowledged result(s) in the queue", left)
        return left

    def __enter__(self) -> "MqttPublisher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paho plumbing (runs in paho's network thread) -----------------------------------------

    def _status_payload(self, state: str, **extra: Any) -> bytes:
        return _json(
            {"state": state, "line": self.line, "client_id": self.client_id,
             "timestamp": time.time(), **extra}
        )

    def _send(self, topic: str, payload: bytes, retain: bool, row_id: int | None) -> None:
        try:
            info = self._client.publish(topic, payload, qos=1, retain=retain)
        except Exception:  # never let the broker side break the line: the outbox keeps it
            log.exception("MQTT publish to %s failed; the message stays queued", topic)
            return
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.warning("MQTT publish to %s refused (%s); it stays queued", topic, info.rc)
            return
        with self._lock:
            if info.mid in self._early_acks:
                self._early_acks.discard(info.mid)
                self._acked(row_id)
            else:
                self._inflight[info.mid] = row_id

    def _acked(self, row_id: int | None) -> None:
        if row_id is not None:
            self._outbox.remove(row_id)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, *rest: Any) -> None:
        with self._lock:
            if mid in self._inflight:
                self._acked(self._inflight.pop(mid))
            else:
                self._early_acks.add(mid)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s refused the connection: %s", self.url, reason)
            return
        log.info("MQTT connected to %s", self.url)
        # Status first: whoever waits for the connection and then flushes knows the broker
        # holds the retained "running" (the other order let a late subscriber beat it there).
        self.set_state("running")
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self._connected.clear()
        if not self._closed:
            log.warning("MQTT disconnected from %s (%s); results are queued", self.url, reason)
