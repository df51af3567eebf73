"""Load test of ``defectscope serve``: N concurrent clients POST real images for S seconds.

Starts the service as a subprocess on loopback (a fresh SQLite database and archive in a temp
folder), then every client uploads images in a loop with its own HTTP connection. Prints the
errors (anything but HTTP 200, or a transport error), throughput and latency percentiles, and
checks that every answered upload is in the results log.

    .venv/bin/python benchmarks/service_load.py                     # 10 clients x 60 s (target)
    .venv/bin/python benchmarks/service_load.py --clients 4 --seconds 15 --model runs/m

Without ``--model`` a PaDiM model is trained on the bundled sample first (about 10-30 s).
Images: ``--images DIR`` (searched recursively for .jpg/.png), else ``../shared/data/
magnetic-tile``, else the bundled ``src/defectscope/sample_data/magnetic_tile``.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "src" / "defectscope" / "sample_data" / "magnetic_tile"
TOKEN = "load-test-token"


def default_images() -> Path:
    shared = os.environ.get("DEFECTSCOPE_SHARED_DATA")
    real = (Path(shared) if shared else REPO.parent / "shared" / "data") / "magnetic-tile"
    return real if real.is_dir() else SAMPLE


def image_files(folder: Path, limit: int) -> list[Path]:
    """Up to ``limit`` images spread over the folder (masks and ground truth left out)."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
                   and "ground_truth" not in p.parts and not p.stem.endswith("_mask"))
    if not files:
        sys.exit(f"no images under {folder}")
    step = max(1, len(files) // limit)
    return files[::step][:limit]


def train_model(out: Path) -> Path:
    print(f"training PaDiM on the bundled sample -> {out}", flush=True)
    subprocess.run([sys.executable, "-m", "defectscope", "train", "--data", str(SAMPLE),
                    "--format", "mvtec", "--model", "padim", "--out", str(out), "--quiet"],
                   check=True, stdout=subprocess.DEVNULL)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(model: Path, work: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "DEFECTSCOPE_TOKEN": TOKEN}
    log = open(work / "serve.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "defectscope", "serve", "--model", str(model), "--port",
         str(port), "--db", f"sqlite:///{work / 'results.db'}", "--archive",
         str(work / "images")], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"serve exited: {(work / 'serve.log').read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    process.kill()
    sys.exit("serve did not come up within 120 s")


def client_loop(base: str, images: list[tuple[str, bytes]], offset: int, stop_at: float,
                latencies: list[float], errors: list[str], ids: list[int]) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        i = offset
        while time.monotonic() < stop_at:
            name, data = images[i % len(images)]
            i += 1
            started = time.perf_counter()
            try:
                response = client.post("/inspect", files={"file": (name, data, "image/jpeg")})
            except httpx.HTTPError as error:
                errors.append(f"transport: {type(error).__name__}: {error}")
                continue
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
            else:
                ids.append(response.json()["id"])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--model", type=Path, help="model folder (default: train PaDiM)")
    parser.add_argument("--images", type=Path, default=None, help="folder of images")
    parser.add_argument("--max-images", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ds-load-") as temp:
        work = Path(temp)
        model = args.model or train_model(work / "model")
        folder = args.images or default_images()
        images = [(p.name, p.read_bytes()) for p in image_files(folder, args.max_images)]
        port = free_port()
        service = start_service(model, work, port)
        base = f"http://127.0.0.1:{port}"
        latencies: list[float] = []
        errors: list[str] = []
        ids: list[int] = []
        print(f"{args.clients} clients x {args.seconds:g} s against {base}, {len(images)} "
              f"images from {folder}", flush=True)
        try:
            started = time.monotonic()
            stop_at = started + args.seconds
            threads = [threading.Thread(target=client_loop, args=(
                base, images, k * 7, stop_at, latencies, errors, ids)) for k in range(args.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
            total = httpx.get(f"{base}/results", params={"limit": 1}, timeout=30).json()["total"]
            health = httpx.get(f"{base}/health", timeout=10).status_code
        finally:
            service.terminate()
            service.wait(30)
    print(f"requests:   {len(latencies) + sum(e.startswith('transport') for e in errors)}")
    print(f"errors:     {len(errors)}" + (f"  (first: {errors[0]})" if errors else ""))
    print(f"throughput: {len(ids) / elapsed:.2f} inspections/s over {elapsed:.1f} s")
    if latencies:
        print(f"latency:    p50 {1e3 * statistics.median(latencies):.0f} ms   p99 "
              f"{1e3 * percentile(latencies, 0.99):.0f} ms   max {1e3 * max(latencies):.0f} ms")
    print(f"results log: {total} rows for {len(ids)} answered uploads "
          f"({'consistent' if total == len(ids) == len(set(ids)) else 'MISMATCH'}); "
          f"/health after the run: {health}")
    return 0 if not errors and total == len(ids) and health == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
