"""kill -9 the running line again and again; afterwards nothing acknowledged is missing.

Makes N distinct images in a temp folder, runs ``defectscope run --source glob:... --json``
on them, kills the process with SIGKILL at a random moment K times, restarting it each time,
then lets a last run finish. Every ``--json`` line the line printed is an acknowledgement (it is
printed only after the result is committed); this script appends each one to an ack log with
fsync as it arrives. Checks afterwards:

- every acknowledged part is in the database, with the same row id and verdict;
- no part id is logged twice, and every image is logged exactly once;
- the SQLite file passes ``PRAGMA integrity_check`` and archived images exist.

    .venv/bin/python benchmarks/line_kill9.py                        # 1,000 images, 20 kills
    .venv/bin/python benchmarks/line_kill9.py --images 200 --kills 5 --model runs/m --seed 1

Without ``--model`` a PaDiM model is trained on the bundled sample first.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2

from service_load import default_images, image_files, train_model  # the script's folder


def make_images(source: Path, count: int, out: Path) -> list[Path]:
    """``count`` PNGs with distinct content: real images, each copy with one pixel nudged."""
    out.mkdir(parents=True)
    originals = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in image_files(source, count)]
    originals = [image for image in originals if image is not None]
    paths = []
    for i in range(count):
        image = originals[i % len(originals)].copy()
        image[0, 0, 0] = (int(image[0, 0, 0]) + i // len(originals)) % 256
        path = out / f"part_{i:05d}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


class Line:
    """One ``defectscope run`` process; its stdout lines are written to the ack log."""

    def __init__(self, argv: list[str], ack_log, acks: list[dict]) -> None:
        self.acks, self.ack_log = acks, ack_log
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            try:
                ack = json.loads(raw)
            except json.JSONDecodeError:
                continue  # a line cut by the kill was never a whole acknowledgement
            self.ack_log.write(raw.decode())
            self.ack_log.flush()
            os.fsync(self.ack_log.fileno())
            self.acks.append(ack)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.reader.join()

    def wait(self) -> int:
        code = self.process.wait()
        self.reader.join()
        return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--model", type=Path, help="model folder (default: train PaDiM)")
    parser.add_argument("--source-images", type=Path, default=None)
    parser.add_argument("--max-wait-s", type=float, default=3.0,
                        help="each kill comes 0..this many seconds after the first new ack")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="ds-kill9-") as temp:
        work = Path(temp)
        model = args.model or train_model(work / "model")
        paths = make_images(args.source_images or default_images(), args.images, work / "in")
        db = work / "results.db"
        argv = [sys.executable, "-m", "defectscope", "run", "--model", str(model), "--source",
                f"glob:{work / 'in'}/*.png", "--db", f"sqlite:///{db}", "--archive",
                str(work / "images"), "--json"]
        acks: list[dict] = []
        acked_before_kill: set[str] = set()
        kills, started = 0, time.monotonic()
        print(f"{len(paths)} images, {args.kills} kills, model {model}", flush=True)
        with open(work / "acks.jsonl", "a") as ack_log:
            while kills < args.kills:
                before = len(acks)
                line = Line(argv, ack_log, acks)
                while len(acks) == before and line.process.poll() is None:
                    time.sleep(0.01)  # wait for this run's first ack (the model has loaded)
                if line.process.poll() is not None:
                    line.wait()
                    print("the run finished before all kills were done; use more --images")
                    break
                time.sleep(rng.uniform(0.0, args.max_wait_s))
                line.kill()
                kills += 1
                acked_before_kill |= {a["part_id"] for a in acks}
                print(f"kill {kills:2d}: {len(acks)} acks so far", flush=True)
            final = Line(argv, ack_log, acks)
            code = final.wait()
        elapsed = time.monotonic() - started

        connection = sqlite3.connect(db)
        rows = connection.execute("SELECT id, part_id, verdict, source, image_path FROM results"
                                  ).fetchall()
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
        connection.close()
        by_part = {part_id: (id_, verdict) for id_, part_id, verdict, _, _ in rows}
        missing = [a for a in acks if a["part_id"] not in by_part]
        changed = [a for a in acks if a["part_id"] in by_part
                   and by_part[a["part_id"]] != (a["id"], a["verdict"])]
        ack_ids = [a["part_id"] for a in acks]
        sources = [row[3] for row in rows]
        archived_missing = [row for row in rows if row[4] and not Path(row[4]).is_file()]

    print(f"kills:                      {kills} (SIGKILL), then a last run (exit {code})")
    print(f"parts acked before a kill:  {len(acked_before_kill)}")
    print(f"acked but not in the DB:    {len(missing)}")
    print(f"acked with other id/verdict: {len(changed)}")
    print(f"duplicate part ids in DB:   {len(rows) - len(by_part)}")
    print(f"parts acked twice:          {len(ack_ids) - len(set(ack_ids))}")
    print(f"rows / images:              {len(rows)} / {len(paths)} "
          f"(images logged twice: {len(sources) - len(set(sources))})")
    print(f"SQLite integrity_check:     {integrity}; archived files missing: "
          f"{len(archived_missing)}")
    print(f"wall time:                  {elapsed:.0f} s")
    ok = (not missing and not changed and len(rows) == len(by_part) == len(paths)
          and len(sources) == len(set(sources)) and integrity == "ok" and not archived_missing
          and code == 0)
    print("RESULT: " + ("consistent" if ok else "PROBLEM"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
