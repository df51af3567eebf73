"""Handing freed heap memory back to the system (glibc's ``malloc_trim``).

Streaming hundreds of images through a backbone frees and reallocates tens of megabytes per
batch. glibc keeps freed blocks in its heap for reuse (its mmap threshold rises after the first
large free, so later blocks of that size come from the heap), and a process's resident memory
climbs with the number of images while what is in use does not. Measured on magnetic-tile's
PatchCore fit (566 images at 384 x 256): resident memory 958 -> 1744 MB over the fit, 988 MB
after one trim. The long loops of training call ``release_free_memory`` every few images, so
resident memory stays near what is in use. Where the C library is not glibc it does nothing.

>>> release_free_memory()  # True on glibc  # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import functools
from typing import Callable

TRIM_EVERY = 8  # images between trims in the training loops (a trim costs about a millisecond)


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not Linux, or not glibc (musl has no malloc_trim)
        return None


def release_free_memory() -> bool:
    """Return the heap's free pages to the system; True when that was possible here."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def resident_mb() -> float | None:
    """This process's resident memory in MB (Linux's ``/proc``), None where it cannot be read."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def every(count: int, period: int = TRIM_EVERY) -> None:
    """``release_free_memory`` when ``count`` (images done so far) is a multiple of ``period``."""
    if count and count % period == 0:
        release_free_memory()
