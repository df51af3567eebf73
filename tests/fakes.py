"""Test doubles shared by the line and service tests: a fake inspector, flat PNG files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from defectscope.values import Failure, InspectionResult, Verdict


class FakeInspector:
    """Scores an image by its mean brightness / 255; a threshold of 0.5 makes bright parts NG."""

    model_version = "fake-1"
    dataset_version = "ds-1"
    threshold = 0.5

    def __init__(self, score: Callable[[np.ndarray], float] | None = None, *,
                 error: Exception | None = None, reason: str | None = None,
                 failure: Failure | None = None, delay_s: float = 0.0) -> None:
        self.score = score or (lambda image: float(image.mean()) / 255.0)
        self.error, self.reason, self.delay_s = error, reason, delay_s
        self.failure = failure
        self.calls = 0

    def inspect(self, image: np.ndarray) -> InspectionResult:
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        score = self.score(image)
        verdict = Verdict.from_score(score, self.threshold)
        anomaly_map = np.full(image.shape[:2], score, dtype=np.float32)
        return InspectionResult(score=score, verdict=verdict, anomaly_map=anomaly_map,
                                timings={"model": 0.1}, reason=self.reason,
                                failure=self.failure)


def write_corrupt_jpeg(path: Path, size: tuple[int, int] = (200, 200)) -> Path:
    """A good JPEG whose entropy-coded data has 2 KB zeroed (or the rest of the scan, if
    shorter): libjpeg only warns and fills grey, so a lenient reader would accept it."""
    rng = np.random.default_rng(0)
    array = (rng.random((*size, 3)) * 60 + 100).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="JPEG", quality=90)
    data = bytearray(path.read_bytes())
    start = data.find(b"\xff\xda") + 200  # inside the scan, after the SOS header
    stop = min(start + 2000, len(data) - 2)  # keep the end-of-image marker
    data[start:stop] = bytes(stop - start)
    path.write_bytes(bytes(data))
    return path


def write_png(path: Path, value: int, size: tuple[int, int] = (8, 10)) -> Path:
    """A flat grey RGB PNG (value 0..255) of ``size`` = (height, width)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def fake_inspector() -> FakeInspector:
    return FakeInspector()


@pytest.fixture
def make_inspector() -> type[FakeInspector]:
    return FakeInspector


@pytest.fixture
def png() -> Callable[..., Path]:
    return write_png
