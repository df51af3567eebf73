"""LineRunner end to end with a fake inspector: restart safety, folder catch-up, PLC trigger
mode with a real asyncua client, MQTT with a real mosquitto (skipped where absent)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from defectscope.errors import BundleError, ConfigError
from defectscope.line import runner as runner_module
from defectscope.line.runner import (
    LineConfig,
    LineRunner,
    RestartSafeSource,
    file_part_id,
    load_inspector,
)
from defectscope.line.sources import FileListSource, read_file_frame
from defectscope.store import ResultStore
from tests.services import service_missing

pytestmark = pytest.mark.timeout(60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def parts(tmp_path, png):
    """Four readable parts (two bright = NG) and one corrupt file, in a folder."""
    for i, value in enumerate([10, 240, 20, 250]):
        png(tmp_path / "in" / f"{i}.png", value)
    (tmp_path / "in" / "4.png").write_bytes(b"\x89PNG not really")
    return tmp_path / "in"


def config(tmp_path: Path, source: str, **options) -> LineConfig:
    return LineConfig(model_dir=tmp_path / "unused-model", source=source,
                      db_url=f"sqlite:///{tmp_path / 'results.db'}",
                      archive_dir=tmp_path / "archive", **options)


def run(cfg: LineConfig, inspector, events: list | None = None):
    sink = events.append if events is not None else None
    return LineRunner(cfg, inspector=inspector, on_part=sink).run()


@pytest.mark.parametrize("options, message", [
    ({"trigger": "opcua"}, "needs --opcua"),
    ({"opcua_endpoint": "opc.tcp://127.0.0.1:4840/", "trigger": "free"}, "only trigger mode"),
    ({"trigger": "sometimes"}, "trigger 'sometimes'"),
    ({"line": "line 1"}, "line name"),
    ({"max_parts": 0}, "max-parts must be > 0"),
    ({"cycle_budget_ms": -5.0}, "cycle-budget-ms"),
    ({"ok_archive_rate": 2.0}, "ok archive rate"),
])
def test_config_refuses_bad_values(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        config(tmp_path, "glob:*.png", **options)


def test_opcua_endpoint_implies_trigger_mode(tmp_path):
    cfg = config(tmp_path, "glob:*.png", opcua_endpoint="opc.tcp://127.0.0.1:4840/")
    assert cfg.trigger == "opcua" and config(tmp_path, "glob:*.png").trigger == "free"
    assert cfg.outbox_path == Path("runs/line/mqtt-outbox-line1.db")


def test_file_part_ids_depend_on_name_and_content_only(tmp_path, png):
    a = file_part_id(read_file_frame(png(tmp_path / "a.png", 10), "x"))
    assert a == file_part_id(read_file_frame(tmp_path / "a.png", "y")) and a.startswith("a-")
    assert a != file_part_id(read_file_frame(png(tmp_path / "b" / "a.png", 11), "x"))
    assert a != file_part_id(read_file_frame(png(tmp_path / "c.png", 10), "x"))
    broken = tmp_path / "d.png"
    broken.write_bytes(b"not an image")
    assert file_part_id(read_file_frame(broken, "x")) == file_part_id(read_file_frame(broken, "x"))


def test_a_second_run_skips_what_the_first_logged(tmp_path, parts, fake_inspector):
    events: list[dict] = []
    first = run(config(tmp_path, f"glob:{parts}/*.png"), fake_inspector, events)
    assert first.parts == 5 and first.status == "finished"
    assert first.verdicts == {"OK": 2, "NG": 2, "UNSURE": 1}
    assert first.fail_safe == {"unreadable": 1}
    assert [e["part_id"] for e in events] == [
        file_part_id(read_file_frame(p, "x")) for p in sorted(parts.glob("*.png"))]
    again = run(config(tmp_path, f"glob:{parts}/*.png"), fake_inspector)
    assert again.parts == 0 and again.skipped == 5
    assert "skipped 5 part(s)" in again.format()
    store = ResultStore(f"sqlite:///{tmp_path / 'results.db'}")
    assert store.count() == 5 and store.count(verdict="NG") == 2
    store.close()


def test_restart_safe_source_skips_logged_parts(tmp_path, parts, fake_inspector):
    run(config(tmp_path, f"glob:{parts}/1.png"), fake_inspector)  # logs 1.png in results.db
    store = ResultStore(f"sqlite:///{tmp_path / 'results.db'}")
    source = RestartSafeSource(FileListSource(sorted(parts.glob("*.png"))), store)
    names = [Path(frame.path).name for frame in source]
    assert names == ["0.png", "2.png", "3.png", "4.png"] and source.skipped == 1
    source.close()
    source.close()  # closing twice is harmless
    store.close()


def test_a_watched_folder_catches_up_on_files_that_arrived_while_down(tmp_path, parts,
                                                                      fake_inspector):
    cfg = config(tmp_path, f"folder:{parts}", max_parts=5, settle_s=0.0)
    summary = run(cfg, fake_inspector)
    assert summary.parts == 5 and summary.status == "finished"
    shutil.copy(parts / "0.png", parts / "new.png")  # arrives while the line is down
    events: list[dict] = []
    summary = run(config(tmp_path, f"folder:{parts}", max_parts=1, settle_s=0.0),
                  fake_inspector, events)
    assert [e["source"] for e in events] == [str(parts / "new.png")] and summary.skipped == 5


def test_stop_from_another_thread_ends_a_watching_line(tmp_path, parts, fake_inspector):
    runner = LineRunner(config(tmp_path, f"folder:{parts}", settle_s=0.0),
                        inspector=fake_inspector)
    threading.Timer(1.5, runner.stop).start()
    summary = runner.run()
    assert summary.status == "stopped" and summary.parts == 5


def test_load_inspector_says_which_path_it_takes(tmp_path, monkeypatch):
    monkeypatch.setattr(runner_module, "BundleInspector", lambda model_dir: ("torch", model_dir))
    notices: list[str] = []
    assert load_inspector(tmp_path, notices.append) == ("torch", tmp_path)
    assert notices == [f"using the torch path (no ONNX export in {tmp_path})"]
    (tmp_path / "onnx").mkdir()
    with pytest.raises(BundleError, match="no ONNX export"):  # a broken export is not ignored
        load_inspector(tmp_path, notices.append)
    monkeypatch.setitem(sys.modules, "defectscope.runtime", None)  # runtime not installed
    assert load_inspector(tmp_path, notices.append)[0] == "torch"
    assert "has an ONNX export but the ONNX runtime is not available" in notices[-1]


def test_load_inspector_takes_the_backend_asked_for(tmp_path, monkeypatch):
    monkeypatch.setattr(runner_module, "BundleInspector", lambda model_dir: ("torch", model_dir))
    (tmp_path / "onnx").mkdir()  # an export is there, but torch is asked for
    assert load_inspector(tmp_path, backend="torch") == ("torch", tmp_path)
    with pytest.raises(BundleError, match="no ONNX export"):  # asked for: no torch fallback
        load_inspector(tmp_path / "elsewhere", backend="openvino")
    with pytest.raises(ConfigError, match="unknown backend 'onnx'"):
        load_inspector(tmp_path, backend="onnx")


def test_line_runner_loads_the_configured_backend(tmp_path, parts, monkeypatch):
    asked: list = []

    def fake_load(model_dir, notice, backend="auto"):
        asked.append((model_dir, backend))
        raise ConfigError("stop here")

    monkeypatch.setattr(runner_module, "load_inspector", fake_load)
    cfg = config(tmp_path, f"folder:{parts}", settle_s=0.0, backend="openvino")
    with pytest.raises(ConfigError, match="stop here"):
        LineRunner(cfg).run()
    assert asked == [(cfg.model_dir, "openvino")]


def test_a_plc_triggers_each_part_through_the_opcua_handshake(tmp_path, parts, fake_inspector):
    asyncua = pytest.importorskip("asyncua")
    url = f"opc.tcp://127.0.0.1:{free_port()}/defectscope/"
    cfg = config(tmp_path, f"glob:{parts}/[0-2].png", opcua_endpoint=url, max_parts=3,
                 frame_timeout_s=1.0)
    runner = LineRunner(cfg, inspector=fake_inspector)
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(summary=runner.run()))
    thread.start()

    async def plc() -> list[dict]:
        async with asyncua.Client(url=url, timeout=5) as client:
            ns = await client.get_namespace_index("urn:defectscope")
            node = lambda name: client.get_node(f"ns={ns};s=DefectScope.line1.{name}")  # noqa: E731
            V = asyncua.ua.VariantType

            async def until(name, value):
                deadline = time.monotonic() + 10
                while await node(name).read_value() != value:
                    assert time.monotonic() < deadline, f"{name} never became {value}"
                    await asyncio.sleep(0.01)

            seen = []
            for part_id in ("PLC-1", "", ""):
                await until("Ready", True)
                await node("PartId").write_value(asyncua.ua.DataValue(asyncua.ua.Variant(part_id, V.String)))
                await node("Trigger").write_value(asyncua.ua.DataValue(asyncua.ua.Variant(True, V.Boolean)))
                await until("ResultReady", True)
                seen.append({n: await node(n).read_value() for n in ("Verdict", "PartId", "Error")})
                await node("Ack").write_value(asyncua.ua.DataValue(asyncua.ua.Variant(True, V.Boolean)))
            return seen

    deadline = time.monotonic() + 20
    while True:  # the server starts inside run()
        try:
            seen = asyncio.run(plc())
            break
        except (OSError, asyncio.TimeoutError):
            assert time.monotonic() < deadline, "the OPC UA server did not come up"
            time.sleep(0.2)
    thread.join(20)
    assert outcome["summary"].parts == 3 and outcome["summary"].status == "finished"
    assert [s["Verdict"] for s in seen] == ["OK", "NG", "OK"]
    assert seen[0]["PartId"] == "PLC-1"  # the PLC's id is the logged id
    assert seen[1]["PartId"] == file_part_id(read_file_frame(parts / "1.png", "x"))
    store = ResultStore(cfg.db_url)
    assert store.get_by_part("PLC-1") is not None and store.count() == 3
    store.close()


def test_results_reach_a_real_mqtt_broker_and_the_status_says_stopped(tmp_path, parts,
                                                                      fake_inspector):
    mqtt = pytest.importorskip("paho.mqtt.client")
    binary = os.environ.get("DEFECTSCOPE_MOSQUITTO") or shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None)
    if binary is None:
        service_missing("mosquitto not found (apt-get install mosquitto)")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    + ("user root\n" if os.geteuid() == 0 else ""))
    broker = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    messages: list = []
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("defectscope/#", qos=1)
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = lambda c, u, m: messages.append(m)
    try:
        for _ in range(100):
            try:
                client.connect("127.0.0.1", port)
                break
            except OSError:
                time.sleep(0.05)
        client.loop_start()
        assert subscribed.wait(5)
        cfg = config(tmp_path, f"glob:{parts}/*.png", mqtt_url=f"mqtt://127.0.0.1:{port}",
                     mqtt_queue=tmp_path / "outbox.db")
        summary = run(cfg, fake_inspector)
        assert summary.mqtt_pending == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            results = [json.loads(m.payload) for m in messages if m.topic.endswith("/result")]
            status = [json.loads(m.payload)["state"] for m in messages
                      if m.topic.endswith("/status")]
            if len(results) == 5 and status[-1:] == ["stopped"]:
                break
            time.sleep(0.05)
        assert len({r["part_id"] for r in results}) == 5 and status[-1] == "stopped"
        assert all({"id", "verdict", "score", "model_version"} <= r.keys() for r in results)
    finally:
        client.loop_stop()
        client.disconnect()
        broker.terminate()
        broker.wait(10)
