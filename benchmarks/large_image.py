"""A 6000 x 6000 px part through ``predict``, ``serve`` and ``run --once``: seconds and memory.

The target (issue 15): each answers within 10 s, and the work per part is bounded (tiles are
capped, the input is resized before the network). Prints, per path, the wall time of the one
inspection (``serve``: the upload's round trip, the service already started; ``predict`` and
``run``: the whole command, start-up included) and the process's peak resident memory (VmHWM),
beside the same for an ordinary 512 x 512 px part.

    .venv/bin/python benchmarks/large_image.py [--model MODEL_DIR]

Without ``--model`` a PaDiM model is trained on the bundled sample first (about 30 s).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from service_load import TOKEN, free_port, start_service, train_model  # noqa: E402

PEAK_PROBE = ("import resource, runpy, sys; sys.argv = ['defectscope'] + sys.argv[1:];\n"
              "try:\n    runpy.run_module('defectscope', run_name='__main__')\n"
              "finally:\n    print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
              " file=sys.stderr)")


def write_part(path: Path, side: int) -> Path:
    """A grey part with a little texture and one dark blotch, as PNG."""
    rng = np.random.default_rng(side)
    small = (rng.random((side // 50 + 1, side // 50 + 1)) * 40 + 100).astype(np.uint8)
    image = Image.fromarray(small).resize((side, side), Image.BILINEAR).convert("RGB")
    pixels = np.asarray(image).copy()
    pixels[side // 3:side // 3 + side // 20, side // 2:side // 2 + side // 20] = 30
    Image.fromarray(pixels).save(path)
    return path


def timed_command(args: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak memory in MB and stdout of ``defectscope ARGS``."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK_PROBE, *args], capture_output=True,
                          text=True, timeout=600)
    seconds = time.perf_counter() - start
    peak = [line for line in done.stderr.splitlines() if line.startswith("PEAK_KB")]
    if not peak:
        sys.exit(f"defectscope {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds, int(peak[-1].split()[1]) / 1024, done.stdout


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model folder (default: train PaDiM)")
    parser.add_argument("--side", type=int, default=6000, help="large part's side (default 6000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        model = args.model or train_model(work / "model")
        rows = []
        for side in (512, args.side):
            batch = work / f"batch{side}"
            batch.mkdir()
            part = write_part(batch / f"part{side}.png", side)
            seconds, peak, out = timed_command(["predict", "--model", str(model), str(part),
                                                "--json"])
            verdict = json.loads(out.splitlines()[-1])["verdict"]
            rows.append(("predict", side, seconds, peak, verdict))
            seconds, peak, out = timed_command(
                ["run", "--model", str(model), "--source", f"folder:{batch}", "--once", "--json",
                 "--db", f"sqlite:///{work / f'run{side}.db'}", "--archive",
                 str(work / f"run-images{side}")])
            verdict = json.loads(out.splitlines()[-1])["verdict"]
            rows.append(("run --once", side, seconds, peak, verdict))
        port = free_port()
        service = start_service(model, work, port)
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers,
                              timeout=120) as client:
                for side in (512, args.side):
                    data = (work / f"batch{side}" / f"part{side}.png").read_bytes()
                    start = time.perf_counter()
                    response = client.post("/inspect",
                                           files={"file": (f"p{side}.png", data, "image/png")})
                    seconds = time.perf_counter() - start
                    verdict = (response.json().get("verdict") if response.status_code == 200
                               else f"HTTP {response.status_code}")
                    rows.append(("serve (upload)", side, seconds, peak_mb(service.pid), verdict))
        finally:
            service.terminate()
            service.wait(timeout=30)
    print(f"model {model}; {Path('/proc/cpuinfo').read_text().count('processor')} CPUs")
    print(f"{'path':<16} {'part px':>11} {'seconds':>8} {'peak MB':>8}  verdict")
    for path, side, seconds, peak, verdict in rows:
        print(f"{path:<16} {f'{side}x{side}':>11} {seconds:>8.2f} {peak:>8.0f}  {verdict}")
    print("(predict and run: the whole command with start-up; serve: one upload's round trip, "
          "peak memory of the service so far)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
