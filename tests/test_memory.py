"""Freed heap memory goes back to the system during long training loops."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from defectscope import memory


@pytest.mark.skipif(not sys.platform.startswith("linux") or memory._malloc_trim() is None,
                    reason="malloc_trim is glibc's")
def test_release_gives_back_freed_heap_blocks():
    # Many heap blocks (below the mmap threshold), then all but every 64th freed: the heap
    # keeps the pages until it is trimmed.
    blocks = [np.ones(16 * 1024, np.uint8) for _ in range(20_000)]
    kept = blocks[::64]
    del blocks
    before = memory.resident_mb()
    assert memory.release_free_memory()
    after = memory.resident_mb()
    assert after < before - 100, (before, after)
    assert all(int(block.sum()) == 16 * 1024 for block in kept)  # what is in use is untouched


def test_resident_memory_is_read_on_linux():
    if sys.platform.startswith("linux"):
        assert 1 < memory.resident_mb() < 1e6


def test_every_trims_on_the_period_only(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "release_free_memory", lambda: calls.append(1))
    for count in range(0, 25):
        memory.every(count, period=8)
    assert len(calls) == 3  # 8, 16, 24; not 0
