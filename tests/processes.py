"""Finding the worker processes a test wants to kill (Ray titles a busy worker by its task)."""

from __future__ import annotations

from pathlib import Path


def busy_workers(task: str) -> list[int]:
    """Ray worker processes running ``task`` now (Ray titles a busy worker ``ray::TASK``)."""
    title = f"ray::{task}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(title):
                pids.append(int(entry.name))
    return pids


def kill_a_busy_worker(task: str, seconds: float, poll: float = 0.005) -> int | None:
    """SIGKILL the first Ray worker seen running ``task`` within ``seconds``; its pid, or None
    when none was busy in that time."""
    import os
    import signal
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        busy = busy_workers(task)
        if busy:
            os.kill(busy[0], signal.SIGKILL)
            return busy[0]
        time.sleep(poll)
    return None
