"""An OPC UA server that plays the PLC handshake: the PLC triggers, we inspect, the PLC acks.

Why a handshake and not just a published verdict: a PLC must know that the verdict it reads
belongs to the part it triggered, and the inspection must know the PLC has taken it before the
next part. The signals live under ``Objects/DefectScope/<line>/`` in namespace
``urn:defectscope`` with stable string NodeIds ``ns=<idx>;s=DefectScope.<line>.<Name>``
(see docs/integration.md for the table and the timing diagram):

1. idle: ``Ready`` = true. The PLC writes ``PartId`` (optional), then ``Trigger`` = true.
2. we set ``Busy`` = true, ``Ready`` = false, clear ``ResultReady``, ``Verdict``, ``Score``,
   ``Error``, and call ``on_trigger(part_id)``.
3. we write ``Verdict`` (OK/NG/UNSURE), ``Score``, ``PartId``, ``Error``, and only then
   ``ResultReady`` = true, ``Busy`` = false.
4. the PLC reads them and writes ``Ack`` = true; we clear ``ResultReady``, ``Trigger``, ``Ack``
   and set ``Ready`` = true.

Fail-safe: if ``on_trigger`` raises, times out or returns something unusable, the verdict is NG
(never OK) and ``Error`` says why. ``Heartbeat`` counts up once a second so the PLC can tell a
live server from a frozen one.

>>> def inspect(part_id):  # doctest: +SKIP
...     return PartResult(part_id or "p1", time.time(), Verdict.OK, 0.12, 0.5, "m1")
>>> with OpcUaServerThread("opc.tcp://0.0.0.0:4840/ds/", on_trigger=inspect):  # doctest: +SKIP
...     run_the_line()
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable
from urllib.parse import urlsplit

from asyncua import Server, ua

from defectscope.errors import ConfigError
from defectscope.values import Verdict

log = logging.getLogger(__name__)

NAMESPACE = "urn:defectscope"
V = ua.VariantType
# name -> (OPC UA type, initial value, whether the PLC writes it)
SIGNALS: dict[str, tuple[ua.VariantType, Any, bool]] = {
    "Trigger": (V.Boolean, False, True),
    "Ready": (V.Boolean, False, False),
    "Busy": (V.Boolean, False, False),
    "ResultReady": (V.Boolean, False, False),
    "Verdict": (V.String, "", False),
    "Score": (V.Double, math.nan, False),
    "PartId": (V.String, "", True),
    "Ack": (V.Boolean, False, True),
    "Heartbeat": (V.UInt32, 0, False),
    "Error": (V.String, "", False),
}
OnTrigger = Callable[[str | None], Any]


def node_name(line: str, signal: str) -> str:
    """The string identifier of a signal's NodeId: ``DefectScope.<line>.<signal>``."""
    return f"DefectScope.{line}.{signal}"


def parse_opcua_endpoint(endpoint: str) -> tuple[str, int]:
    """Check an ``opc.tcp://host[:port]/path`` endpoint and return (host, port)."""
    fix = "expected opc.tcp://host:port/path, e.g. opc.tcp://0.0.0.0:4840/defectscope/"
    parts = urlsplit(endpoint.strip())
    if parts.scheme != "opc.tcp":
        raise ConfigError(f"OPC UA endpoint {endpoint!r}: scheme must be opc.tcp ({fix})")
    try:
        port = parts.port or 4840
    except ValueError:
        raise ConfigError(f"OPC UA endpoint {endpoint!r}: bad port ({fix})") from None
    if not parts.hostname:
        raise ConfigError(f"OPC UA endpoint {endpoint!r}: no host ({fix})")
    return parts.hostname, port


def _check_line(line: str) -> str:
    if not line or not all(c.isalnum() or c in "-_" for c in line):
        raise ConfigError(f"line name {line!r}: use letters, digits, '-' or '_' (it is in NodeIds)")
    return line


def _outcome(result: Any, part_id: str) -> tuple[str, float, str, str]:
    """(verdict, score, part id, error) from a PartResult-like object or mapping."""
    get = result.get if isinstance(result, Mapping) else lambda k, d=None: getattr(result, k, d)
    verdict = get("verdict")
    verdict = verdict.value if isinstance(verdict, Verdict) else str(verdict)
    if verdict not in {v.value for v in Verdict}:
        return Verdict.NG.value, math.nan, part_id, f"on_trigger returned verdict {verdict!r}"
    score = get("score")
    try:
        score = math.nan if score is None else float(score)
    except (TypeError, ValueError):
        score = math.nan
    return verdict, score, str(get("part_id") or part_id), str(get("reason") or "")


class OpcUaServer:
    """The asyncio server. Use it with ``async with``, or ``OpcUaServerThread`` from sync code.

    ``on_trigger(part_id)`` (sync or async) gets the PLC's ``PartId`` or None and returns a
    ``PartResult``-like object (``verdict``, ``score``, optional ``part_id`` and ``reason``).
    A sync callback runs in a worker thread so the server (and heartbeat) stays responsive.
    ``cycle_timeout`` (seconds) turns a slow inspection into NG (a sync callback cannot be
    interrupted: it finishes in its thread and its result is dropped). ``poll_interval`` is how often
    the PLC's writes are checked: it adds at most that much to the cycle.
    """

    def __init__(
        self,
        endpoint: str = "opc.tcp://0.0.0.0:4840/defectscope/",
        line: str = "line1",
        on_trigger: OnTrigger | None = None,
        cycle_timeout: float | None = None,
        poll_interval: float = 0.01,
    ) -> None:
        self.endpoint = endpoint
        self.host, self.port = parse_opcua_endpoint(endpoint)
        self.line = _check_line(line)
        self.on_trigger = on_trigger
        self.cycle_timeout = cycle_timeout
        self.poll_interval = poll_interval
        self.namespace_index: int | None = None
        self.cycles = 0
        self._server: Server | None = None
        self._nodes: dict[str, Any] = {}
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Build the address space and listen; raises ``ConfigError`` if the port is taken."""
        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("defectscope")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(NAMESPACE)
        # NodeIds and browse names both in our namespace: "2:DefectScope/2:line1/2:Trigger".
        folder = await server.nodes.objects.add_folder(
            f"ns={idx};s=DefectScope", ua.QualifiedName("DefectScope", idx))
        line_node = await folder.add_object(
            f"ns={idx};s=DefectScope.{self.line}", ua.QualifiedName(self.line, idx))
        for name, (vtype, initial, plc_writes) in SIGNALS.items():
            node = await line_node.add_variable(
                f"ns={idx};s={node_name(self.line, name)}", ua.QualifiedName(name, idx),
                ua.Variant(initial, vtype),
            )
            if plc_writes:
                await node.set_writable()
            self._nodes[name] = node
        try:
            await server.start()
        except OSError as err:
            raise ConfigError(
                f"OPC UA endpoint {self.endpoint}: cannot listen on {self.host}:{self.port} ({err})"
            ) from err
        self._server, self.namespace_index = server, idx
        await self._write(Ready=True)
        self._task = asyncio.create_task(self._run(), name=f"opcua-handshake-{self.line}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._server is not None:
            await self._server.stop()
            self._server = None

    async def __aenter__(self) -> "OpcUaServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the handshake ------------------------------------------------------------------------

    async def _write(self, **values: Any) -> None:
        """Write signals in the order given (the order is part of the handshake)."""
        for name, value in values.items():
            await self._nodes[name].write_value(ua.Variant(value, SIGNALS[name][0]))

    async def _read(self, name: str) -> Any:
        return await self._nodes[name].read_value()

    async def _run(self) -> None:
        heartbeat, next_beat = 0, time.monotonic()
        waiting_for_ack = False
        while True:
            if time.monotonic() >= next_beat:
                heartbeat = (heartbeat + 1) % 2**32
                await self._write(Heartbeat=heartbeat)
                next_beat += 1.0
            if waiting_for_ack:
                if await self._read("Ack"):
                    await self._write(ResultReady=False, Trigger=False, Ack=False, Ready=True)
                    waiting_for_ack = False
            elif await self._read("Trigger"):
                await self._cycle()
                waiting_for_ack = True
            await asyncio.sleep(self.poll_interval)

    async def _cycle(self) -> None:
        await self._write(Busy=True, Ready=False, ResultReady=False, Verdict="", Score=math.nan,
                          Error="")
        part_id = str(await self._read("PartId") or "")
        try:
            result = await asyncio.wait_for(self._inspect(part_id or None), self.cycle_timeout)
            verdict, score, part_id, error = _outcome(result, part_id)
        except Exception as err:  # fail-safe: whatever went wrong, the part is NG
            log.exception("OPC UA cycle for part %r failed; verdict NG", part_id)
            kind = "timed out" if isinstance(err, TimeoutError) else f"{type(err).__name__}: {err}"
            verdict, score, error = Verdict.NG.value, math.nan, f"inspection failed: {kind}"
        self.cycles += 1
        await self._write(Verdict=verdict, Score=score, PartId=part_id, Error=error[:1000])
        await self._write(ResultReady=True, Busy=False)

    async def _inspect(self, part_id: str | None) -> Any:
        if self.on_trigger is None:
            raise RuntimeError("no inspection is connected (on_trigger is None)")
        if inspect.iscoroutinefunction(self.on_trigger):
            return await self.on_trigger(part_id)
        result = await asyncio.to_thread(self.on_trigger, part_id)
        return await result if inspect.isawaitable(result) else result


class OpcUaServerThread:
    """Runs an ``OpcUaServer`` in a background thread for the (synchronous) line.

    ``start`` returns once the server listens (``ConfigError`` if it cannot):

    >>> server = OpcUaServerThread(on_trigger=inspect).start()  # doctest: +SKIP
    >>> server.stop()  # doctest: +SKIP
    """

    def __init__(self, endpoint: str = "opc.tcp://0.0.0.0:4840/defectscope/",
                 line: str = "line1", on_trigger: OnTrigger | None = None, **options: Any) -> None:
        self.server = OpcUaServer(endpoint, line, on_trigger, **options)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> "OpcUaServerThread":
        if self._thread is not None:
            raise RuntimeError("OpcUaServerThread already started")
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),),
                                        name="defectscope-opcua", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError(f"OPC UA server did not start within {timeout} s")
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> "OpcUaServerThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            await self.server.start()
        except BaseException as err:
            self._error = err
            self._started.set()
            await self.server.stop()
            return
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await self.server.stop()
