"""Read images ahead of the model in a background thread, with a bounded queue.

Decoding (Pillow releases the GIL) overlaps with the network's forward pass, while at most
``prefetch`` decoded images wait in memory, however large the dataset.

>>> for path, image in stream_images(paths):  # doctest: +SKIP
...     model.anomaly(image)
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np

from defectscope.data.hashing import sha256_file
from defectscope.data.image_io import load_image
from defectscope.errors import DataError

T = TypeVar("T")


def stream_images(
    items: Iterable[T], loader: Callable[[T], np.ndarray] = load_image, prefetch: int = 4
) -> Iterator[tuple[T, np.ndarray]]:
    """Yield ``(item, loader(item))`` in order; a loader error is raised at that item."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: deque = deque()
        for item in items:
            pending.append((item, pool.submit(loader, item)))
            if len(pending) >= prefetch:
                done_item, future = pending.popleft()
                yield done_item, future.result()
        while pending:
            done_item, future = pending.popleft()
            yield done_item, future.result()


def load_verified(path, sha256: str) -> np.ndarray:
    """``load_image``, after checking the file still has the content its manifest recorded."""
    if sha256_file(path) != sha256:
        raise DataError(f"{path}: changed since the dataset was imported (sha256 differs); "
                        "re-import the dataset to record the new content")
    return load_image(path)


def until(items: Iterable[T], deadline: float | None, minimum: int = 2,
          clock: Callable[[], float] = time.perf_counter) -> Iterator[T]:
    """``items`` until ``clock()`` passes ``deadline`` (``None``: all of them), but at least
    ``minimum`` (a fit needs a few images whatever the limit).

    >>> list(until(range(5), deadline=None))
    [0, 1, 2, 3, 4]
    >>> list(until(range(5), deadline=0.0, clock=lambda: 1.0))
    [0, 1]
    """
    for index, item in enumerate(items):
        if deadline is not None and index >= minimum and clock() > deadline:
            return
        yield item


class Counted(Iterator[T]):
    """An iterator that counts what it has yielded (``count``)."""

    def __init__(self, items: Iterable[T]) -> None:
        self._items = iter(items)
        self.count = 0

    def __iter__(self) -> "Counted[T]":
        return self

    def __next__(self) -> T:
        item = next(self._items)
        self.count += 1
        return item
