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
