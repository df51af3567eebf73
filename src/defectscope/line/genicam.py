"""GenICam industrial cameras through the optional ``harvesters`` package.

Why a module of its own: ``harvesters`` and a vendor's GenTL producer are an optional extra
(``pip install 'defectscope[genicam]'``); nothing here is imported until a ``genicam:`` source
is asked for, so the rest of the line never depends on it.

>>> source = parse_source("genicam:/opt/vendor/lib/producer.cti")   # doctest: +SKIP
>>> frame = source.next_frame(timeout=1.0)                           # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from defectscope.line.frames import Frame, Source, SourceError, new_frame_id


class GenICamSource(Source):
    """An industrial GenICam camera through the optional ``harvesters`` package.

    ``cti_file`` is the camera vendor's GenTL producer (a ``.cti`` file); ``index`` picks the
    device. Mono and RGB 8-bit pixel formats are supported; other formats give error frames.
    """

    def __init__(self, cti_file: str | Path, index: int = 0, *, timeout_s: float = 3.0,
                 stop_event: threading.Event | None = None) -> None:
        super().__init__(stop_event)
        try:
            from harvesters.core import Harvester
        except ImportError:
            raise SourceError("GenICam cameras need the optional harvesters package: "
                              "pip install harvesters") from None
        if not Path(cti_file).is_file():
            raise SourceError(f"{cti_file}: no such GenTL producer (.cti) file")
        self._harvester = Harvester()
        self._harvester.add_file(str(cti_file))
        self._harvester.update()
        if index >= len(self._harvester.device_info_list):
            self._harvester.reset()
            raise SourceError(f"genicam: no camera at index {index} "
                              f"({len(self._harvester.device_info_list)} found)")
        self._acquirer = self._harvester.create(index)
        self._acquirer.start()
        self.name, self.timeout_s, self._index = f"genicam:{index}", timeout_s, 0

    def next_frame(self, timeout: float | None = None) -> Frame | None:
        if self.stop_event.is_set():
            return None
        label, self._index = f"genicam-{self._index:06d}", self._index + 1
        try:
            with self._acquirer.fetch(timeout=timeout or self.timeout_s) as buffer:
                part = buffer.payload.components[0]
                channels = int(part.num_components_per_pixel)
                pixels = np.array(part.data, dtype=np.uint8, copy=True)
                pixels = pixels.reshape(part.height, part.width, channels)
        except Exception as error:  # harvesters raises its own timeout and GenTL errors
            return Frame(new_frame_id(label), time.time(), self.name, None, None,
                         f"{self.name}: grab failed ({type(error).__name__}: {error})")
        if channels == 1:
            image = np.repeat(pixels, 3, axis=2)
        elif channels == 3:
            image = pixels
        else:
            return Frame(new_frame_id(label), time.time(), self.name, None, None,
                         f"{self.name}: unsupported pixel format ({channels} channels)")
        return Frame(new_frame_id(label), time.time(), self.name, image)

    def close(self) -> None:
        super().close()
        self._acquirer.stop()
        self._acquirer.destroy()
        self._harvester.reset()
