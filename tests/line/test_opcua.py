"""The OPC UA handshake, with a real asyncua Client playing the PLC."""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time

import pytest

pytest.importorskip("asyncua", reason="asyncua is not installed")
from asyncua import Client, ua  # noqa: E402

from defectscope.errors import ConfigError  # noqa: E402
from defectscope.line.opcua import (  # noqa: E402
    NAMESPACE,
    OpcUaServer,
    OpcUaServerThread,
    parse_opcua_endpoint,
)
from defectscope.values import PartResult, Verdict  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Plc:
    """The PLC side: reads and writes the signals by their documented string NodeIds."""

    def __init__(self, client: Client, line: str = "line1") -> None:
        self.client, self.line = client, line

    async def connect(self) -> None:
        self.ns = await self.client.get_namespace_index(NAMESPACE)

    def node(self, name: str):
        return self.client.get_node(f"ns={self.ns};s=DefectScope.{self.line}.{name}")

    async def read(self, name: str):
        return await self.node(name).read_value()

    async def write(self, name: str, value, vtype: ua.VariantType) -> None:
        await self.node(name).write_value(ua.DataValue(ua.Variant(value, vtype)))

    async def until(self, name: str, value, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while (current := await self.read(name)) != value:
            assert time.monotonic() < deadline, f"{name} stayed {current!r}, expected {value!r}"
            await asyncio.sleep(0.01)

    async def cycle(self, part_id: str) -> dict:
        """One whole handshake as a PLC runs it; returns what it read at ResultReady."""
        await self.until("Ready", True)
        await self.write("PartId", part_id, ua.VariantType.String)
        await self.write("Trigger", True, ua.VariantType.Boolean)
        await self.until("ResultReady", True)
        seen = {name: await self.read(name)
                for name in ("Verdict", "Score", "PartId", "Error", "Busy", "Ready")}
        await self.write("Ack", True, ua.VariantType.Boolean)
        await self.until("Ready", True)
        for name in ("ResultReady", "Trigger", "Ack", "Busy"):
            assert await self.read(name) is False, name
        return seen


def run_plc(url: str, script, timeout: float = 20.0):
    async def main():
        async with Client(url=url, timeout=5) as client:
            plc = Plc(client)
            await plc.connect()
            return await script(plc)

    return asyncio.run(asyncio.wait_for(main(), timeout))


def test_parse_opcua_endpoint() -> None:
    assert parse_opcua_endpoint("opc.tcp://0.0.0.0:4841/defectscope/") == ("0.0.0.0", 4841)
    assert parse_opcua_endpoint("opc.tcp://plc-gw/x") == ("plc-gw", 4840)
    for bad in ["http://h:1/", "opc.tcp://:4840/", "opc.tcp://h:notaport/", "localhost:4840"]:
        with pytest.raises(ConfigError, match="OPC UA endpoint"):
            parse_opcua_endpoint(bad)
    with pytest.raises(ConfigError, match="line name"):
        OpcUaServer("opc.tcp://127.0.0.1:4840/", line="line 1")


def test_two_cycles_through_the_thread_wrapper_one_failing() -> None:
    calls: list[str | None] = []
    release = threading.Event()

    def on_trigger(part_id: str | None) -> PartResult:
        calls.append(part_id)
        assert release.wait(5)  # holds the cycle so the PLC can see Busy
        if len(calls) == 2:
            raise RuntimeError("camera timeout")
        return PartResult(part_id=part_id or "auto", timestamp=time.time(), verdict=Verdict.OK,
                          score=0.25, threshold=0.5, model_version="m1")

    url = f"opc.tcp://127.0.0.1:{free_port()}/defectscope/"

    async def script(plc: Plc):
        assert await plc.read("Heartbeat") >= 0
        release.clear()
        await plc.until("Ready", True)
        await plc.write("PartId", "A-1", ua.VariantType.String)
        await plc.write("Trigger", True, ua.VariantType.Boolean)
        await plc.until("Busy", True)
        assert await plc.read("Ready") is False and await plc.read("ResultReady") is False
        release.set()
        await plc.until("ResultReady", True)
        first = {n: await plc.read(n) for n in ("Verdict", "Score", "PartId", "Error", "Busy")}
        await plc.write("Ack", True, ua.VariantType.Boolean)
        await plc.until("Ready", True)
        assert await plc.read("ResultReady") is False and await plc.read("Trigger") is False
        second = await plc.cycle("B-2")
        return first, second

    with OpcUaServerThread(url, line="line1", on_trigger=on_trigger) as server:
        first, second = run_plc(url, script)
        assert server.server.cycles == 2
    assert calls == ["A-1", "B-2"]
    assert first == {"Verdict": "OK", "Score": 0.25, "PartId": "A-1", "Error": "", "Busy": False}
    assert second["Verdict"] == "NG" and math.isnan(second["Score"])
    assert "camera timeout" in second["Error"] and second["PartId"] == "B-2"


def test_async_callback_timeout_and_no_part_id() -> None:
    """The asyncio API directly: an async callback, a missing PartId, a cycle over its budget."""

    async def on_trigger(part_id: str | None):
        if part_id == "slow":
            await asyncio.sleep(5)
        return {"verdict": "UNSURE", "score": 0.49, "part_id": part_id or "generated-7"}

    url = f"opc.tcp://127.0.0.1:{free_port()}/defectscope/"

    async def main():
        async with OpcUaServer(url, on_trigger=on_trigger, cycle_timeout=0.3):
            async with Client(url=url, timeout=5) as client:
                plc = Plc(client)
                await plc.connect()
                ns = plc.ns  # the documented browse path leads to the documented NodeId
                found = await client.nodes.objects.get_child(
                    [f"{ns}:DefectScope", f"{ns}:line1", f"{ns}:Verdict"])
                assert found.nodeid.to_string() == f"ns={ns};s=DefectScope.line1.Verdict"
                ok = await plc.cycle("")
                slow = await plc.cycle("slow")
                beat = await plc.read("Heartbeat")
                return ok, slow, beat

    ok, slow, beat = asyncio.run(asyncio.wait_for(main(), 20))
    assert (ok["Verdict"], ok["Score"], ok["PartId"]) == ("UNSURE", 0.49, "generated-7")
    assert slow["Verdict"] == "NG" and "timed out" in slow["Error"]
    assert beat >= 1


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        url = f"opc.tcp://127.0.0.1:{taken.getsockname()[1]}/defectscope/"
        with pytest.raises(ConfigError, match="cannot listen"):
            OpcUaServerThread(url).start(timeout=20)
