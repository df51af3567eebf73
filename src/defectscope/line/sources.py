"""Where images come from: a watched folder, a file list, a video, a camera, behind one interface.

Every source gives ``Frame`` objects in two modes: free-run (``for frame in source``) and trigger
(``source.next_frame()`` when the PLC says a part is in place). A frame that cannot be read is
still a frame, with ``error`` set: the line must judge that part (never OK), not stop.

>>> source = parse_source("folder:incoming")                  # doctest: +SKIP
>>> for frame in source:                                        # doctest: +SKIP
...     print(frame.frame_id, frame.error or frame.image.shape)
"""

from __future__ import annotations

import glob as _glob
import threading
import time
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from defectscope.data.image_io import is_image_file, load_image
from defectscope.errors import ConfigError, DataError, ImageTooLargeError
from defectscope.line.frames import Frame, Source, SourceError, new_frame_id  # noqa: F401 (re-exported)
from defectscope.values import Failure

SCHEMES = ("folder", "glob", "video", "camera", "rtsp", "genicam")


def read_file_frame(path: str | Path, source: str, *, max_pixels: int | None = None) -> Frame:
    """A frame for an image file: decoded strictly, or with ``error`` if it cannot be read
    (``failure`` refused when the image has more than ``max_pixels`` pixels)."""
    path = Path(path)
    frame_id, now = new_frame_id(path.stem), time.time()
    try:
        data = path.read_bytes()
        image = load_image(path, max_pixels=max_pixels)
    except ImageTooLargeError as error:
        return Frame(frame_id, now, source, None, str(path), str(error), failure=Failure.REFUSED)
    except (OSError, DataError) as error:
        return Frame(frame_id, now, source, None, str(path), str(error),
                     failure=Failure.UNREADABLE)
    return Frame(frame_id, now, source, image, str(path), None, data)


class FileListSource(Source):
    """Given image files, or a glob pattern (``parts/*.png``), in sorted order, each once."""

    def __init__(self, paths: Sequence[str | Path] | str, *, max_pixels: int | None = None,
                 stop_event: threading.Event | None = None) -> None:
        super().__init__(stop_event)
        self.max_pixels = max_pixels
        if isinstance(paths, (str, Path)):
            pattern = str(paths)
            paths = sorted(_glob.glob(pattern, recursive=True))
            if not paths:
                raise SourceError(f"{pattern}: no files match this pattern")
        self.name = "files"
        self._pending = [Path(p) for p in paths]

    def next_frame(self, timeout: float | None = None) -> Frame | None:
        if not self._pending or self.stop_event.is_set():
            return None
        return read_file_frame(self._pending.pop(0), self.name, max_pixels=self.max_pixels)


class FolderWatchSource(Source):
    """New image files in a folder, each read once, after it has stopped changing.

    A file is read only when its size and modification time stayed the same for ``settle_s``
    seconds, so a camera or copy still writing it is not read half-written. Files already in the
    folder at start are skipped unless ``include_existing``. An empty file is taken as not yet
    written until it has stayed empty for ``EMPTY_SETTLE_S`` (then it is read, and refused as
    unreadable, rather than waited on for ever); with ``once`` (a batch that nobody is writing)
    it is read after ``settle_s`` like any other. ``next_frame`` blocks until a file is ready,
    ``timeout`` or ``stop()``. With ``once`` the source ends (None) as soon as every file in the
    folder has been read: a batch of files rather than a line.
    """

    EMPTY_SETTLE_S = 10.0

    def __init__(self, directory: str | Path, settle_s: float = 0.5, poll_s: float = 0.2,
                 pattern: str = "*", *, include_existing: bool = False, once: bool = False,
                 max_pixels: int | None = None,
                 stop_event: threading.Event | None = None) -> None:
        super().__init__(stop_event)
        self.once, self.max_pixels = once, max_pixels
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise SourceError(f"{self.directory}: no such folder to watch")
        if settle_s < 0 or poll_s <= 0:
            raise ConfigError(f"settle_s must be >= 0 and poll_s > 0 (got {settle_s}, {poll_s})")
        self.settle_s, self.poll_s, self.pattern = settle_s, poll_s, pattern
        self.name = f"folder:{self.directory}"
        self._seen: set[str] = set() if include_existing else set(self._names())
        self._watch: dict[str, tuple[int, int, float]] = {}  # name -> size, mtime_ns, since

    def _names(self) -> list[str]:
        return sorted(p.name for p in self.directory.glob(self.pattern)
                      if is_image_file(p) and not p.name.startswith("."))

    def _settle_for(self, size: int) -> float:
        if size > 0 or self.once:
            return self.settle_s
        return max(self.settle_s, self.EMPTY_SETTLE_S)

    def _ready(self) -> str | None:
        """The first file whose size and mtime have been stable for settle_s, if any."""
        now = time.monotonic()
        for name in self._names():
            if name in self._seen:
                continue
            try:
                stat = (self.directory / name).stat()
            except FileNotFoundError:
                self._watch.pop(name, None)
                continue
            key = (stat.st_size, stat.st_mtime_ns)
            previous = self._watch.get(name)
            if previous is None or previous[:2] != key:
                self._watch[name] = (*key, now)
            elif now - previous[2] >= self._settle_for(stat.st_size):
                return name
        return None

    def next_frame(self, timeout: float | None = None) -> Frame | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.stop_event.is_set():
            name = self._ready()
            if name is not None:
                self._seen.add(name)
                self._watch.pop(name, None)
                return read_file_frame(self.directory / name, self.name,
                                       max_pixels=self.max_pixels)
            if self.once and all(name in self._seen for name in self._names()):
                return None
            if deadline is not None and time.monotonic() >= deadline:
                return None
            self.stop_event.wait(self.poll_s)
        return None


class _CaptureSource(Source):
    """Frames from an OpenCV ``VideoCapture`` (video file, USB camera, RTSP stream)."""

    def __init__(self, capture: cv2.VideoCapture, name: str, label: str,
                 stop_event: threading.Event | None) -> None:
        super().__init__(stop_event)
        self._capture, self.name, self._label, self._index = capture, name, label, 0

    def _read(self) -> tuple[bool, np.ndarray | None]:
        ok, bgr = self._capture.read()
        self._index += 1
        if not ok or bgr is None:
            return False, None
        if bgr.ndim == 2:
            return True, cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
        return True, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _frame(self, image: np.ndarray | None, error: str | None = None) -> Frame:
        label = f"{self._label}-{self._index - 1:06d}"
        return Frame(new_frame_id(label), time.time(), self.name, image, None, error)

    def close(self) -> None:
        super().close()
        self._capture.release()


class VideoFileSource(_CaptureSource):
    """Every ``every_n``-th frame of a video file, then the end (None)."""

    def __init__(self, path: str | Path, every_n: int = 1, *,
                 stop_event: threading.Event | None = None) -> None:
        path = Path(path)
        if every_n < 1:
            raise ConfigError(f"every_n must be >= 1, not {every_n}")
        if not path.is_file():
            raise SourceError(f"{path}: no such video file")
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise SourceError(f"{path}: OpenCV cannot open this video (unsupported codec or "
                              "not a video file)")
        super().__init__(capture, f"video:{path}", path.stem, stop_event)
        self.every_n = every_n

    def next_frame(self, timeout: float | None = None) -> Frame | None:
        while not self.stop_event.is_set():
            index = self._index
            ok, image = self._read()
            if not ok:
                return None
            if index % self.every_n == 0:
                return self._frame(image)
        return None


class CameraSource(_CaptureSource):
    """A USB camera (index) or a network stream (``rtsp://...`` URL) through OpenCV.

    A failed grab gives a frame with ``error`` (that part is judged UNSURE); after
    ``max_failures`` failures in a row the camera is taken as gone and ``SourceError`` is raised.
    """

    def __init__(self, index_or_url: int | str, *, max_failures: int = 10,
                 stop_event: threading.Event | None = None) -> None:
        capture = cv2.VideoCapture(index_or_url)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"camera {index_or_url!r}: cannot open it (check the cable or "
                              "URL, that no other program holds the camera, and its index)")
        label = f"cam{index_or_url}" if isinstance(index_or_url, int) else "stream"
        super().__init__(capture, f"camera:{index_or_url}", label, stop_event)
        self.max_failures, self._failures = max_failures, 0

    def next_frame(self, timeout: float | None = None) -> Frame | None:
        if self.stop_event.is_set():
            return None
        ok, image = self._read()
        if ok:
            self._failures = 0
            return self._frame(image)
        self._failures += 1
        if self._failures >= self.max_failures:
            raise SourceError(f"{self.name}: {self._failures} failed grabs in a row; the "
                              "camera was disconnected or the stream ended")
        return self._frame(None, f"{self.name}: frame grab failed")


def parse_source(text: str, **options) -> Source:
    """A source from a ``--source`` string; ``options`` go to the source's constructor.

    ``folder:DIR`` (watch), ``glob:PATTERN`` (list), ``video:FILE``, ``camera:N`` (USB index),
    ``rtsp://host/stream`` (network camera), ``genicam:CTI_FILE`` (GenTL producer).
    """
    scheme, sep, rest = text.partition(":")
    if not sep or scheme not in SCHEMES:
        raise ConfigError(f"{text!r}: unknown source; use one of folder:DIR, glob:PATTERN, "
                          "video:FILE, camera:N, rtsp://URL, genicam:CTI_FILE")
    if not rest:
        raise ConfigError(f"{text!r}: nothing after {scheme}:")
    if scheme == "folder":
        return FolderWatchSource(rest, **options)
    if scheme == "glob":
        return FileListSource(rest, **options)
    if scheme == "video":
        return VideoFileSource(rest, **options)
    if scheme == "rtsp":
        return CameraSource(text, **options)
    if scheme == "genicam":
        from defectscope.line.genicam import GenICamSource  # optional extra: load on demand

        return GenICamSource(rest, **options)
    try:
        index = int(rest)
    except ValueError:
        raise ConfigError(f"{text!r}: camera:N needs a camera index such as camera:0") from None
    return CameraSource(index, **options)

