"""Stop the MQTT broker for 30 s in the middle of a line run; count result messages lost.

Starts a real mosquitto (with persistence, so a subscriber's session survives the broker
restart, as a production broker's does), a subscriber with a persistent QoS 1 session that
counts distinct part ids on ``defectscope/<line>/result``, and ``defectscope run --source
folder:IN --mqtt ...``. A feeder drops images into IN at a steady rate; after ``--before`` s the
broker is stopped (SIGTERM) for ``--outage`` s, then started again; after ``--after`` s more the
line is stopped with SIGTERM (a clean shutdown flushes MQTT). lost = parts the line logged that
the subscriber never received.

    .venv/bin/python benchmarks/mqtt_outage.py                       # 10 s + 30 s outage + 10 s
    .venv/bin/python benchmarks/mqtt_outage.py --outage 5 --rate 4 --model runs/m

Needs the mosquitto binary (apt-get install mosquitto, or DEFECTSCOPE_MOSQUITTO=path).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from service_load import default_images, free_port, image_files, train_model  # script folder


class Broker:
    """mosquitto on 127.0.0.1:port with on-disk persistence in ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        binary = os.environ.get("DEFECTSCOPE_MOSQUITTO") or shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto")
        if not os.access(binary, os.X_OK):
            sys.exit("mosquitto not found: apt-get install mosquitto (or set DEFECTSCOPE_MOSQUITTO)")
        self.binary, self.port = binary, free_port()
        self.config = workdir / "mosquitto.conf"
        self.config.write_text("\n".join([
            f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence true",
            f"persistence_location {workdir}/", "autosave_interval 1",
            *(["user root"] if os.geteuid() == 0 else [])]) + "\n")
        self.log = workdir / "mosquitto.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=log,
                                            stderr=log)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        sys.exit(f"mosquitto did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
            self.process = None


class Subscriber:
    """Counts distinct part ids; a persistent session keeps QoS 1 messages while it is away."""

    def __init__(self, port: int, topic: str) -> None:
        self.part_ids: set[str] = set()
        self.messages = 0
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="outage-counter",
                                  clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            self.messages += 1
            self.part_ids.add(json.loads(message.payload)["part_id"])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=float, default=10.0, help="seconds before the outage")
    parser.add_argument("--outage", type=float, default=30.0, help="seconds the broker is down")
    parser.add_argument("--after", type=float, default=10.0, help="seconds after it is back")
    parser.add_argument("--rate", type=float, default=5.0, help="images per second fed")
    parser.add_argument("--model", type=Path, help="model folder (default: train PaDiM)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ds-mqtt-") as temp:
        work = Path(temp)
        model = args.model or train_model(work / "model")
        broker = Broker(work)
        broker.start()
        subscriber = Subscriber(broker.port, "defectscope/line1/result")
        incoming = work / "in"
        incoming.mkdir()
        line = subprocess.Popen(
            [sys.executable, "-m", "defectscope", "run", "--model", str(model), "--source",
             f"folder:{incoming}", "--mqtt", f"mqtt://127.0.0.1:{broker.port}", "--mqtt-queue",
             str(work / "outbox.db"), "--db", f"sqlite:///{work / 'results.db'}", "--archive",
             str(work / "images"), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        logged: list[str] = []
        reader = threading.Thread(target=lambda: logged.extend(
            json.loads(raw)["part_id"] for raw in line.stdout), daemon=True)  # type: ignore[union-attr]
        reader.start()

        sources = image_files(default_images(), 100_000)

        def feed(index: int) -> None:
            source = sources[index % len(sources)]
            hidden = incoming / f".part_{index:05d}{source.suffix}"  # ignored until renamed
            shutil.copy(source, hidden)
            with open(hidden, "ab") as handle:  # distinct content per part
                handle.write(index.to_bytes(4, "big"))
            hidden.rename(incoming / f"part_{index:05d}{source.suffix}")

        feed(0)  # the clock starts once a first result went all the way to the subscriber
        deadline = time.monotonic() + 180
        while not subscriber.part_ids and time.monotonic() < deadline:
            if line.poll() is not None:
                sys.exit(f"the line exited: {line.stderr.read().decode()}")  # type: ignore[union-attr]
            time.sleep(0.1)
        total_s = args.before + args.outage + args.after
        fed, started, outage_done = 1, time.monotonic(), False
        print(f"feeding {args.rate:g} images/s for {total_s:g} s; broker down from "
              f"{args.before:g} s to {args.before + args.outage:g} s", flush=True)
        while (now := time.monotonic() - started) < total_s:
            if broker.process is not None and not outage_done and now >= args.before:
                broker.stop()
                print(f"t={now:5.1f} s broker stopped ({len(logged)} parts logged)", flush=True)
            if broker.process is None and now >= args.before + args.outage:
                broker.start()
                outage_done = True
                print(f"t={now:5.1f} s broker started ({len(logged)} parts logged)", flush=True)
            if fed < 1 + now * args.rate:
                feed(fed)
                fed += 1
            time.sleep(0.01)
        deadline = time.monotonic() + 60
        while len(logged) < fed and time.monotonic() < deadline:
            time.sleep(0.1)  # let the line catch up on the last files
        line.send_signal(signal.SIGTERM)
        _, err = line.communicate(timeout=60)
        reader.join(10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not set(logged) <= subscriber.part_ids:
            time.sleep(0.1)
        with subscriber.lock:
            received, messages = set(subscriber.part_ids), subscriber.messages
        subscriber.close()
        broker.stop()
        rows = sqlite3.connect(work / "results.db").execute("SELECT COUNT(*) FROM results"
                                                            ).fetchone()[0]
        summary = [ln for ln in err.decode().splitlines() if "MQTT" in ln or "line " in ln]

    lost = set(logged) - received
    print(f"fed {fed} images; the line logged {len(logged)} parts ({rows} rows), exit "
          f"{line.returncode}")
    print(f"subscriber: {len(received)} distinct part ids in {messages} messages "
          f"({messages - len(received)} duplicates: delivery is at least once)")
    print(f"lost = {len(lost)}" + (f"  e.g. {sorted(lost)[:5]}" if lost else ""))
    for text in summary[-3:]:
        print(f"  line: {text}")
    return 0 if not lost and len(logged) == fed else 1


if __name__ == "__main__":
    sys.exit(main())
