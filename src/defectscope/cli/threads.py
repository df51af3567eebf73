"""Thread settings chosen at the command line, the one edge where process-wide settings belong.

PyTorch's OpenMP workers spin while they wait for work by default. On a machine that runs
anything else (a second training, the line's own service) spinning threads steal each other's
cores and training slows about tenfold (measured on 2 cores: 5.9 s per batch beside two other
jobs). ``OMP_WAIT_POLICY=PASSIVE`` makes waiting threads sleep; the thread count defaults to the
cores this process may use (``os.sched_getaffinity``), not the machine's. Values the user set in
the environment are kept; ``--threads N`` overrides the count. The variables must be set before
torch is imported, which is why ``main`` applies them before it dispatches to a handler.
"""

from __future__ import annotations

import os
from typing import Mapping

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def usable_cpus() -> int:
    """Cores this process may run on (a container's or taskset's limit, not the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def thread_environment(environ: Mapping[str, str], threads: int | None,
                       cpus: int) -> dict[str, str]:
    """The variables to set: the passive wait policy and thread counts, keeping what the user set
    in ``environ`` unless ``threads`` (``--threads``) says otherwise.

    >>> thread_environment({}, None, cpus=2)["OMP_NUM_THREADS"]
    '2'
    >>> thread_environment({"OMP_NUM_THREADS": "1"}, None, cpus=8)
    {'OMP_WAIT_POLICY': 'PASSIVE'}
    >>> thread_environment({"OMP_NUM_THREADS": "1"}, 4, cpus=8)["OMP_NUM_THREADS"]
    '4'
    """
    out: dict[str, str] = {}
    if "OMP_WAIT_POLICY" not in environ:
        out["OMP_WAIT_POLICY"] = "PASSIVE"
    count = str(threads if threads is not None else cpus)
    for name in THREAD_VARIABLES:
        if threads is not None or name not in environ:
            out[name] = count
    return out


def apply_thread_settings(threads: int | None) -> dict[str, str]:
    """Set the variables in this process's environment (and torch's count, when torch was already
    imported, e.g. by a caller of ``main`` in the same process); returns what was set."""
    import sys

    settings = thread_environment(os.environ, threads, usable_cpus())
    os.environ.update(settings)
    torch = sys.modules.get("torch")
    if torch is not None and threads is not None:
        torch.set_num_threads(threads)
    return settings
