"""Shared, frozen value types: what flows between data, models, decisions and reports.

``Sample`` is one record of a dataset manifest. ``InspectionResult`` is the one result type every
model returns, so everything downstream (metrics, logs, publishers) is model-agnostic.

>>> Verdict.from_score(0.8, threshold=0.5, band=0.1)
<Verdict.NG: 'NG'>
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

GOOD = "good"
SPLITS = ("train", "val", "test")


class Verdict(str, enum.Enum):
    """What the line does with a part: pass it, reject it, or send it to a person."""

    OK = "OK"
    NG = "NG"
    UNSURE = "UNSURE"

    @classmethod
    def from_score(cls, score: float, threshold: float, band: float = 0.0) -> "Verdict":
        """OK below the threshold, NG at or above it, UNSURE inside ``threshold * (1 +/- band)``.

        A non-finite score is never OK: it is UNSURE, so a person looks at the part.
        """
        if not np.isfinite(score):
            return cls.UNSURE
        if band > 0 and threshold * (1 - band) <= score < threshold * (1 + band):
            return cls.UNSURE
        return cls.NG if score >= threshold else cls.OK


class Failure(str, enum.Enum):
    """Why a part could not be judged on its score; set where the failure happens.

    A result that carries a failure is never OK: ``defectscope.line.decision.FailSafePolicy``
    turns each kind into UNSURE or NG, the same way for ``predict``, ``serve`` and ``run``.
    """

    UNREADABLE = "unreadable"        # the image could not be decoded (corrupt, truncated, absent)
    REFUSED = "refused"              # the image broke a limit (pixels, frames) before inspection
    ALIGNMENT = "alignment"          # the part could not be aligned to its reference
    INFERENCE = "inference"          # the model raised
    INVALID_SCORE = "invalid_score"  # the model returned a non-finite score
    TIMEOUT = "timeout"              # the inspection took longer than the cycle-time budget


@dataclass(frozen=True)
class Sample:
    """One image of a dataset: where it is, what it shows, and which split it belongs to.

    ``path`` and ``mask_path`` are relative to the manifest's root (POSIX separators) or absolute.
    ``label`` is ``"good"`` or a defect type. ``group`` (a part, lot or session) never straddles
    two splits. ``sha256`` is the image file's content hash.
    """

    path: str
    label: str
    sha256: str
    mask_path: str | None = None
    mask_sha256: str | None = None
    group: str | None = None
    split: str | None = None

    @property
    def is_good(self) -> bool:
        return self.label == GOOD

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "label": self.label,
            "sha256": self.sha256,
            "mask_path": self.mask_path,
            "mask_sha256": self.mask_sha256,
            "group": self.group,
            "split": self.split,
        }

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> "Sample":
        return cls(
            path=str(row["path"]),
            label=str(row["label"]),
            sha256=str(row["sha256"]),
            mask_path=row.get("mask_path"),
            mask_sha256=row.get("mask_sha256"),
            group=row.get("group"),
            split=row.get("split"),
        )


@dataclass(frozen=True)
class Detection:
    """One box found on a part: pixel corners (x1, y1, x2, y2), a defect type and a confidence."""

    box: tuple[float, float, float, float]
    label: str
    confidence: float


@dataclass(frozen=True, eq=False)
class InspectionResult:
    """What a model says about one image.

    ``score`` is higher for more anomalous parts; ``anomaly_map`` (float32, the input image's
    height and width) says where. ``timings`` holds milliseconds per stage. ``reason`` explains an
    UNSURE or NG that did not come from the score alone (unreadable image, failed alignment);
    ``failure`` says which kind of failure it was (None when the score could be computed).
    """

    score: float
    verdict: Verdict
    anomaly_map: np.ndarray | None = None
    detections: tuple[Detection, ...] = ()
    defect_type: str | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    reason: str | None = None
    failure: Failure | None = None

    @classmethod
    def failed(cls, failure: Failure, reason: str) -> "InspectionResult":
        """A result without a score: UNSURE until the fail-safe policy decides; never OK."""
        return cls(score=float("nan"), verdict=Verdict.UNSURE, reason=reason,
                   failure=Failure(failure))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (the anomaly map is left out: it is an image, not a field)."""
        return {
            "verdict": self.verdict.value,
            "score": float(self.score),
            "defect_type": self.defect_type,
            "detections": [
                {"box": list(d.box), "label": d.label, "confidence": d.confidence}
                for d in self.detections
            ],
            "timings_ms": {k: round(float(v), 3) for k, v in self.timings.items()},
            "reason": self.reason,
            "failure": None if self.failure is None else self.failure.value,
        }


@dataclass(frozen=True)
class PartResult:
    """One inspected part on the line: what is logged, published and shown on the dashboard.

    ``InspectionResult`` is what a model says about an image; ``PartResult`` adds who, when and
    where (part id, source, time, line) and which model and dataset version decided. ``score``
    is None when no score could be computed (unreadable image, inference error): the verdict is
    then never OK and ``reason`` says why; ``failure`` names the kind of failure (``Failure``).
    ``timestamp`` is Unix seconds (UTC).
    """

    part_id: str
    timestamp: float
    verdict: Verdict
    score: float | None
    threshold: float | None
    model_version: str
    dataset_version: str | None = None
    line: str = "line1"
    source: str = ""
    defect_types: tuple[str, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)
    reason: str | None = None
    image_sha256: str | None = None
    failure: Failure | None = None

    def __post_init__(self) -> None:
        if self.score is None and self.verdict is Verdict.OK:
            raise ValueError("a part without a score can never be OK")
        if self.failure is not None:
            object.__setattr__(self, "failure", Failure(self.failure))
            if self.verdict is Verdict.OK:
                raise ValueError(f"a part whose inspection failed ({self.failure.value}) can "
                                 "never be OK")

    def to_dict(self) -> dict[str, Any]:
        return {
            "part_id": self.part_id,
            "timestamp": self.timestamp,
            "verdict": self.verdict.value,
            "score": self.score,
            "threshold": self.threshold,
            "model_version": self.model_version,
            "dataset_version": self.dataset_version,
            "line": self.line,
            "source": self.source,
            "defect_types": list(self.defect_types),
            "timings_ms": {k: float(v) for k, v in self.timings.items()},
            "reason": self.reason,
            "image_sha256": self.image_sha256,
            "failure": None if self.failure is None else self.failure.value,
        }

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> "PartResult":
        return cls(
            part_id=str(row["part_id"]),
            timestamp=float(row["timestamp"]),
            verdict=Verdict(row["verdict"]),
            score=None if row.get("score") is None else float(row["score"]),
            threshold=None if row.get("threshold") is None else float(row["threshold"]),
            model_version=str(row["model_version"]),
            dataset_version=row.get("dataset_version"),
            line=str(row.get("line", "line1")),
            source=str(row.get("source", "")),
            defect_types=tuple(row.get("defect_types", ())),
            timings=dict(row.get("timings_ms", {})),
            reason=row.get("reason"),
            image_sha256=row.get("image_sha256"),
            failure=None if row.get("failure") is None else Failure(row["failure"]),
        )
