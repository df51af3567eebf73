"""Resident memory while training one anomaly model on one suite dataset, stage by stage.

A sampler thread reads the process's resident memory every 0.1 s and charges it to the stage
that training's log last announced (tuning candidates, the fit, calibration), so the peak is
attributed to the work that causes it. Prints each stage's peak and the process peak
(``ru_maxrss``, what the anomaly suite's ``fit_peak_mb`` reports). Linux only (``/proc``).

    python benchmarks/fit_memory.py magnetic-tile patchcore
    python benchmarks/fit_memory.py bsdata padim --tune off
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import anomaly_suite  # noqa: E402  (the suite's dataset loading, so both read the same data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=anomaly_suite.BUILT_IN)
    parser.add_argument("model", choices=("patchcore", "padim"))
    parser.add_argument("--tune", default="auto", choices=("auto", "off"))
    args = parser.parse_args()

    from defectscope.memory import resident_mb
    from defectscope.training.anomaly import train_anomaly

    started = time.perf_counter()
    stage, peaks, done = ["loading"], {}, threading.Event()

    def sample() -> None:
        while not done.is_set():
            peaks[stage[0]] = max(peaks.get(stage[0], 0.0), resident_mb())
            time.sleep(0.1)

    def log(message: str) -> None:
        stage[0] = f"{time.perf_counter() - started:6.1f} s  {message[:100]}"
        print(f"[{resident_mb():6.0f} MB] {stage[0]}", flush=True)

    print(f"# fit_memory.py {args.dataset} {args.model} --tune {args.tune}")
    print(f"# machine: {platform.platform()}, Python {platform.python_version()}")
    threading.Thread(target=sample, daemon=True).start()
    manifest = anomaly_suite.load_manifest(args.dataset,
                                           anomaly_suite.shared_data() / args.dataset, 0)
    with tempfile.TemporaryDirectory() as tmp:
        train_anomaly(manifest, args.model, Path(tmp) / "model", progress=False,
                      tune=args.tune, log=log)
    done.set()
    print("\npeak resident MB by stage (the stage the log last announced):")
    for name, peak in peaks.items():
        print(f"{peak:7.0f}  {name}")
    print(f"process peak (ru_maxrss): "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
