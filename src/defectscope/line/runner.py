"""Wire a whole line from one typed config: source, inspector, results log, archive, actions,
MQTT and OPC UA, then run it until the source ends, ``max_parts`` or ``stop()``.

Why a runner apart from ``LinePipeline``: the pipeline knows one part's order of events; the
runner knows what a *process* must add to survive the factory floor. Part ids of image files are
derived from the file (name and content hash), and parts already in the results log are skipped,
so a line killed with ``kill -9`` and restarted on the same folder neither loses nor double-logs
a part. Everything it opens it closes, MQTT last (flushed, status ``stopped``).

>>> config = LineConfig(model_dir=Path("models/tiles"), source="folder:incoming")  # doctest: +SKIP
>>> runner = LineRunner(config, on_part=print)                                   # doctest: +SKIP
>>> summary = runner.run()              # Ctrl-C handlers call runner.stop()     # doctest: +SKIP
>>> print(summary.format())                                                      # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from defectscope.errors import ConfigError
from defectscope.line.actions import Alert, Archive, Publish
from defectscope.line.pipeline import BundleInspector, Inspector, LinePipeline
from defectscope.line.sources import Frame, Source, SourceError, parse_source
from defectscope.store.archive import ImageArchive
from defectscope.data.image_io import DEFAULT_MAX_PIXELS
from defectscope.store.locations import DEFAULT_ARCHIVE, DEFAULT_DB_URL, describe_db
from defectscope.store.results import ResultStore, StoreError

log = logging.getLogger(__name__)

DEFAULT_DB = DEFAULT_DB_URL
TRIGGERS = ("free", "opcua")
ONNX_DIR = "onnx"
# What runs the model: auto (the ONNX runtime when the bundle has an onnx/ export, else torch),
# torch, or a backend of the torch-free runtime (``defectscope.runtime.backends.BACKENDS``).
BACKENDS = ("auto", "torch", "onnxruntime", "openvino")


@dataclass(frozen=True)
class LineConfig:
    """Everything a line needs, checked on creation. Paths are relative to the working folder.

    ``trigger="opcua"`` (the default when ``opcua_endpoint`` is set) inspects one frame per PLC
    trigger; ``"free"`` inspects every frame the source gives. ``mqtt_queue`` (default
    ``runs/line/mqtt-outbox-<line>.db``) keeps unpublished results across restarts.
    """

    model_dir: Path
    source: str
    db_url: str = DEFAULT_DB
    archive_dir: Path | None = DEFAULT_ARCHIVE
    line: str = "line1"
    mqtt_url: str | None = None
    mqtt_queue: Path | None = None
    opcua_endpoint: str | None = None
    trigger: str | None = None
    cycle_budget_ms: float | None = None
    max_parts: int | None = None
    ok_archive_rate: float = 0.05
    settle_s: float = 0.5
    alert_webhook: str | None = None
    frame_timeout_s: float = 5.0
    once: bool = False
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    backend: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_dir", Path(self.model_dir))
        check_backend(self.backend)
        trigger = self.trigger or ("opcua" if self.opcua_endpoint else "free")
        object.__setattr__(self, "trigger", trigger)
        if trigger not in TRIGGERS:
            raise ConfigError(f"trigger {trigger!r}: use one of {', '.join(TRIGGERS)}")
        if trigger == "opcua" and not self.opcua_endpoint:
            raise ConfigError("--trigger opcua needs --opcua opc.tcp://HOST:PORT/PATH (the "
                              "server the PLC triggers)")
        if trigger == "free" and self.opcua_endpoint:
            raise ConfigError("--opcua serves the PLC handshake, which only trigger mode "
                              "answers; drop --opcua or use --trigger opcua")
        if self.once and not self.source.startswith(("folder:", "glob:", "video:")):
            raise ConfigError("--once inspects a batch of files: use it with folder:DIR (glob "
                              "and video sources end by themselves)")
        if self.once and self.trigger == "opcua":
            raise ConfigError("--once and --trigger opcua do not mix: the PLC decides when "
                              "the line stops")
        if not self.line or not all(c.isalnum() or c in "-_" for c in self.line):
            raise ConfigError(f"line name {self.line!r}: use letters, digits, '-' or '_'")
        for name in ("cycle_budget_ms", "max_parts", "frame_timeout_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name.replace('_', '-')} must be > 0, not {value}")
        if not 0.0 <= self.ok_archive_rate <= 1.0:
            raise ConfigError(f"ok archive rate must be in [0, 1], not {self.ok_archive_rate}")
        if self.mqtt_url:  # check addresses now, not after the model has loaded
            from defectscope.line.mqtt import parse_mqtt_url

            parse_mqtt_url(self.mqtt_url)
        if self.opcua_endpoint:
            from defectscope.line.opcua import parse_opcua_endpoint

            parse_opcua_endpoint(self.opcua_endpoint)

    @property
    def outbox_path(self) -> Path:
        return self.mqtt_queue or Path("runs/line") / f"mqtt-outbox-{self.line}.db"


def check_backend(backend: str) -> str:
    """``backend`` if it is one of ``BACKENDS``; otherwise a ``ConfigError`` naming them."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    return backend


def load_inspector(model_dir: str | os.PathLike[str],
                   notice: Callable[[str], None] = log.warning,
                   backend: str = "auto") -> Inspector:
    """The one place that picks the inference engine for a bundle folder.

    ``backend="auto"``: the torch-free ONNX runtime (``defectscope.runtime.RuntimeInspector``)
    when the bundle has an ``onnx/`` export and the runtime is installed, otherwise the torch
    path. ``"torch"``, ``"onnxruntime"`` and ``"openvino"`` ask for one; a runtime backend the
    bundle has no (checked) export for is an error, not a silent fallback.
    """
    model_dir = Path(model_dir)
    if check_backend(backend) == "torch":
        return BundleInspector(model_dir)
    if backend != "auto":
        from defectscope.runtime import RuntimeInspector  # type: ignore[attr-defined]

        return RuntimeInspector(model_dir, backend=backend)
    if (model_dir / ONNX_DIR).is_dir():
        try:
            from defectscope.runtime import RuntimeInspector  # type: ignore[attr-defined]
        except ImportError as error:
            notice(f"using the torch path: {model_dir} has an ONNX export but the ONNX runtime "
                   f"is not available ({error})")
        else:
            return RuntimeInspector(model_dir)
    else:
        notice(f"using the torch path (no ONNX export in {model_dir})")
    return BundleInspector(model_dir)


def file_part_id(frame: Frame) -> str:
    """A part id that is the same every time the same file is read: name + content hash.

    Two different parts never give byte-identical images, so the content hash tells parts apart;
    the name keeps ids readable. A corrupt file is hashed like any other (same id after a
    restart); only a file that vanished keeps the frame's random id.

    >>> file_part_id(read_file_frame("in/p1.png", "files"))           # doctest: +SKIP
    'p1-3f2a9c0d1e4b5a67'
    """
    assert frame.path is not None
    path = Path(frame.path)
    digest = hashlib.sha256(path.name.encode() + b"\0")
    try:
        digest.update(frame.data if frame.data is not None else path.read_bytes())
    except OSError:
        return frame.frame_id  # the file vanished: nothing stable to derive an id from
    return f"{path.stem[:80]}-{digest.hexdigest()[:16]}"


class RestartSafeSource(Source):
    """Wraps a source: file frames get ``file_part_id`` and frames already logged are skipped.

    >>> source = RestartSafeSource(parse_source("glob:parts/*.png"), store)   # doctest: +SKIP
    """

    def __init__(self, inner: Source, store: ResultStore) -> None:
        super().__init__(inner.stop_event)
        self.inner, self.store, self.name, self.skipped = inner, store, inner.name, 0
        self._closed = False

    def next_frame(self, timeout: float | None = None) -> Frame | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.stop_event.is_set():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            frame = self.inner.next_frame(left)
            if frame is None or frame.path is None:
                return frame
            frame = replace(frame, frame_id=file_part_id(frame))
            if self.store.get_by_part(frame.frame_id) is None:
                return frame
            self.skipped += 1
            if deadline is not None and time.monotonic() >= deadline:
                return None
        return None

    def close(self) -> None:
        """Close the wrapped source once, however many owners call this."""
        super().close()
        if not self._closed:
            self._closed = True
            self.inner.close()


@dataclass
class LineSummary:
    """What a run did, for the closing line and for scripts."""

    status: str
    parts: int
    verdicts: dict[str, int]
    fail_safe: dict[str, int]
    skipped: int
    action_errors: dict[str, int]
    seconds: float
    db_url: str
    archive_dir: str | None
    mqtt_pending: int | None = None
    busy_s: float = 0.0

    @property
    def throughput(self) -> float:
        """Parts per second over the busy time (inspecting, not waiting for parts)."""
        return self.parts / self.busy_s if self.busy_s > 0 else 0.0

    def format(self) -> str:
        verdicts = ", ".join(f"{k} {self.verdicts.get(k, 0)}" for k in ("OK", "NG", "UNSURE"))
        lines = [f"line {self.status}: {self.parts} parts in {self.seconds:.1f} s "
                 f"({self.busy_s:.1f} s busy: {self.throughput:.2f} parts/s): {verdicts}"]
        if self.skipped:
            lines.append(f"  skipped {self.skipped} part(s) already in the results log")
        if self.fail_safe:
            lines.append("  fail-safe: " + ", ".join(f"{k} {v}" for k, v in self.fail_safe.items()))
        if self.action_errors:
            lines.append("  action errors: " + ", ".join(
                f"{k} {v}" for k, v in self.action_errors.items()))
        if self.mqtt_pending:
            lines.append(f"  MQTT: {self.mqtt_pending} result(s) still queued (sent next start)")
        lines.append(f"  results: {self.db_url}" + (f"   images: {self.archive_dir}"
                                                      if self.archive_dir else ""))
        return "\n".join(lines)


class LineRunner:
    """Builds the line from ``config`` on ``run()`` and runs it; ``stop()`` is thread-safe.

    ``on_part(event_dict)`` is called for every part after its result is committed (the CLI
    prints it). ``inspector`` replaces the bundle's (tests, or an inspector built elsewhere).
    """

    def __init__(self, config: LineConfig, *, on_part: Callable[[dict[str, Any]], None] | None
                 = None, inspector: Inspector | None = None,
                 notice: Callable[[str], None] = log.warning) -> None:
        self.config, self.on_part, self.notice = config, on_part, notice
        self._inspector = inspector
        self._stop = threading.Event()
        self._stop_requested = False  # by stop() (a signal), not by the end of the source
        self._trigger_lock = threading.Lock()
        self._fatal: StoreError | None = None  # trigger mode: the error that stopped the line
        self.pipeline: LinePipeline | None = None
        self.source: RestartSafeSource | None = None
        self.store: ResultStore | None = None

    def stop(self) -> None:
        """Finish the current part, then shut down (safe from a signal handler)."""
        self._stop_requested = True
        self._stop.set()

    def run(self) -> LineSummary:
        config, started = self.config, time.monotonic()
        publisher = None
        with ExitStack() as stack:
            options: dict[str, Any] = {"stop_event": self._stop}
            if config.source.startswith("folder:"):  # catch up on what arrived while down
                options.update(include_existing=True, settle_s=config.settle_s,
                               once=config.once)
            if config.source.startswith(("folder:", "glob:")):
                options.update(max_pixels=config.max_pixels)
            raw_source = parse_source(config.source, **options)  # a bad --source fails first
            try:
                self.store = store = ResultStore(config.db_url)
            except BaseException:
                raw_source.close()
                raise
            stack.callback(store.close)
            self.notice(f"results: {describe_db(config.db_url)}; images: "
                        f"{config.archive_dir or 'not archived'}")
            self.source = source = RestartSafeSource(raw_source, store)
            stack.callback(source.close)
            inspector = self._inspector or load_inspector(config.model_dir, self.notice,
                                                            config.backend)
            actions: list[Any] = [] if self.on_part is None else [Publish(self.on_part)]
            if config.mqtt_url:
                from defectscope.line.mqtt import MqttPublisher  # paho only when asked for

                publisher = MqttPublisher(config.mqtt_url, line=config.line,
                                          queue_path=config.outbox_path)
                actions.append(Publish(publisher.publish))
            archive = None
            if config.archive_dir is not None:
                archive = Archive(ImageArchive(config.archive_dir),
                                  ok_rate=config.ok_archive_rate, seed=0)
            self.pipeline = pipeline = LinePipeline(
                source, inspector, store, actions=actions, archive=archive,
                alert=Alert(config.alert_webhook), line=config.line,
                cycle_budget_ms=config.cycle_budget_ms)
            try:
                if config.trigger == "opcua":
                    self._run_triggered(pipeline)
                else:
                    pipeline.run(max_parts=config.max_parts)  # closes the pipeline itself
            finally:
                pipeline.close()
                pending = None if publisher is None else publisher.close(timeout=10.0)
            counters = pipeline.counters
            summary = LineSummary(
                status="stopped" if self._stop_requested else "finished",
                parts=counters.parts, verdicts=dict(counters.verdicts),
                fail_safe=dict(counters.fail_safe), skipped=source.skipped,
                action_errors=dict(counters.action_errors),
                seconds=time.monotonic() - started, busy_s=counters.busy_s,
                db_url=config.db_url,
                archive_dir=None if config.archive_dir is None else str(config.archive_dir),
                mqtt_pending=pending)
        return summary

    # -- trigger mode --------------------------------------------------------------------------
    def _run_triggered(self, pipeline: LinePipeline, ack_grace_s: float = 2.0) -> None:
        """Serve the PLC handshake until ``stop()``: one frame per trigger."""
        from defectscope.line.opcua import OpcUaServerThread  # asyncua only when asked for

        assert self.config.opcua_endpoint is not None
        server = OpcUaServerThread(self.config.opcua_endpoint, line=self.config.line,
                                   on_trigger=self._on_trigger,
                                   cycle_timeout=self._cycle_timeout_s())
        with server:
            self._stop.wait()
            time.sleep(ack_grace_s)  # the last cycle's result stays readable for the PLC
        if self._fatal is not None:
            raise self._fatal

    def _cycle_timeout_s(self) -> float:
        """How long the server waits for one cycle before answering NG: the wait for a frame
        plus twice the cycle budget (10 s without one); a hung model must not hang the PLC."""
        budget = self.config.cycle_budget_ms
        return self.config.frame_timeout_s + (2 * budget / 1000 if budget else 10.0)

    def _on_trigger(self, plc_part_id: str | None):
        """One PLC cycle: take the next frame, inspect, commit; the server answers the PLC."""
        assert self.pipeline is not None and self.source is not None and self.store is not None
        with self._trigger_lock:
            if self._stop.is_set():
                raise RuntimeError("the line is stopping")
            frame = self.source.next_frame(timeout=self.config.frame_timeout_s)
            if frame is None:
                raise SourceError(f"no image from {self.config.source} within "
                                  f"{self.config.frame_timeout_s:g} s")
            if plc_part_id and self.store.get_by_part(plc_part_id) is None:
                frame = replace(frame, frame_id=plc_part_id)  # the PLC and the log agree
            try:
                _, part = self.pipeline.process(frame)
            except StoreError as error:  # as in free-run: what cannot be logged stops the line
                self._fatal = error
                self._stop.set()
                raise
            limit = self.config.max_parts
            if limit is not None and self.pipeline.counters.parts >= limit:
                self._stop.set()
            return part
