"""What every image source gives and is: the ``Frame``, the ``Source`` base and its error.

Kept apart from the sources themselves (``defectscope.line.sources``) so an optional source in a
module of its own (``defectscope.line.genicam``) builds on these without importing the module
that loads it on demand.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from defectscope.errors import DataError
from defectscope.values import Failure


class SourceError(DataError):
    """A source cannot be opened (missing folder, camera that does not answer, missing extra)."""


@dataclass(frozen=True, eq=False)
class Frame:
    """One acquired image. ``image`` is RGB uint8, or None with ``error`` saying why.

    ``data`` holds the encoded bytes when the source has them (a file, an upload), so the image
    hash is the file's hash; ``path`` is the file it came from, if any. ``failure`` says which
    kind of read failure ``error`` is (unreadable when not given).
    """

    frame_id: str
    timestamp: float
    source: str
    image: np.ndarray | None
    path: str | None = None
    error: str | None = None
    data: bytes | None = None
    failure: Failure | None = None


def new_frame_id(label: str) -> str:
    """A readable, unique id: the label (file stem, frame index) plus 10 random hex digits."""
    return f"{label[:100]}-{uuid.uuid4().hex[:10]}"


class Source:
    """Base class: ``next_frame()`` gives one frame or None when the source is exhausted."""

    name = "source"

    def __init__(self, stop_event: threading.Event | None = None) -> None:
        self.stop_event = stop_event or threading.Event()

    def next_frame(self, timeout: float | None = None) -> Frame | None:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Frame]:
        while not self.stop_event.is_set():
            frame = self.next_frame()
            if frame is None:
                return
            yield frame

    def stop(self) -> None:
        """Ask a waiting ``next_frame`` or a free-run loop to finish."""
        self.stop_event.set()

    def close(self) -> None:
        self.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
