"""One part, one verdict, fail-safe: whatever goes wrong, the part is never OK.

Default verdicts when something fails (``FailSafePolicy``), and why:

- the part was not seen properly (unreadable image, one refused by a size limit, non-finite
  score, over the cycle budget): **UNSURE**, because the part itself may be fine and a person or a re-inspection should decide;
- the part was seen but could not be judged (the model raised, alignment failed): **NG**,
  because a part that breaks the model or cannot be aligned is more often wrong than right.

Each kind is a ``Failure`` set where the failure happens (the reader, the model, this module),
never recognised from the wording of a message. Each can be changed to the other (never to OK). When the model already said NG and the time
budget was exceeded, the stricter verdict wins (OK < UNSURE < NG).

>>> decision = evaluate(frame, inspector, cycle_budget_ms=200)     # doctest: +SKIP
>>> decision.part.verdict, decision.part.reason                    # doctest: +SKIP
(<Verdict.UNSURE: 'UNSURE'>, 'took 250.1 ms, over the cycle budget of 200 ms')
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2

from defectscope.errors import ConfigError
from defectscope.line.sources import Frame
from defectscope.values import Failure, InspectionResult, PartResult, Verdict

if TYPE_CHECKING:
    from defectscope.line.pipeline import Inspector

log = logging.getLogger(__name__)

_SEVERITY = {Verdict.OK: 0, Verdict.UNSURE: 1, Verdict.NG: 2}


@dataclass(frozen=True)
class FailSafePolicy:
    """Which verdict each kind of failure (``Failure``) gives: UNSURE or NG, never OK.

    The one policy that ``predict``, ``serve`` and ``run`` all apply (through ``evaluate``).

    >>> FailSafePolicy().verdict_for(Failure.INFERENCE)
    <Verdict.NG: 'NG'>
    """

    unreadable: Verdict = Verdict.UNSURE
    refused: Verdict = Verdict.UNSURE
    invalid_score: Verdict = Verdict.UNSURE
    timeout: Verdict = Verdict.UNSURE
    inference: Verdict = Verdict.NG
    alignment: Verdict = Verdict.NG

    def __post_init__(self) -> None:
        for failure in Failure:
            value = Verdict(getattr(self, failure.value))
            if value is Verdict.OK:
                raise ConfigError(f"fail-safe verdict for {failure.value} must be NG or "
                                  "UNSURE, never OK")
            object.__setattr__(self, failure.value, value)

    def verdict_for(self, failure: Failure) -> Verdict:
        return getattr(self, Failure(failure).value)


@dataclass(frozen=True, eq=False)
class Decision:
    """A decided part plus what actions need: the model's result and the encoded image."""

    part: PartResult
    inspection: InspectionResult | None
    image_bytes: bytes | None
    image_suffix: str
    failure: Failure | None  # which kind of failure the policy judged; None when all went well
    frame: Frame


_MAGIC = ((b"\x89PNG", ".png"), (b"\xff\xd8", ".jpg"), (b"BM", ".bmp"), (b"II*\x00", ".tif"),
          (b"MM\x00*", ".tif"), (b"RIFF", ".webp"))


def image_suffix(data: bytes) -> str | None:
    """The file suffix for encoded image bytes, from their first bytes; None if not known."""
    return next((suffix for magic, suffix in _MAGIC if data.startswith(magic)), None)


def encoded_image(frame: Frame) -> tuple[bytes | None, str]:
    """The frame's encoded bytes and suffix: the file's (or upload's) bytes when they are in a
    format the archive keeps, else the decoded image as PNG. The image hash is of these bytes.
    """
    data = frame.data
    if data is None and frame.path is not None and frame.error is None:
        try:
            data = Path(frame.path).read_bytes()
        except OSError:
            data = None
    suffix = image_suffix(data) if data else None
    if data and suffix:
        return data, suffix
    if frame.image is not None:
        ok, png = cv2.imencode(".png", cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
        if ok:
            return png.tobytes(), ".png"
    return None, ".png"


def _stricter(a: Verdict, b: Verdict) -> Verdict:
    return a if _SEVERITY[a] >= _SEVERITY[b] else b


def evaluate(frame: Frame, inspector: "Inspector", *, cycle_budget_ms: float | None = None,
             policy: FailSafePolicy = FailSafePolicy(), line: str = "line1") -> Decision:
    """Inspect one frame and decide its verdict, applying the fail-safe rules. Never raises
    for a bad image or a failing model: those become NG/UNSURE parts with a ``reason``.

    ``cycle_budget_ms`` bounds the time spent here (encoding, inference, checks); None: no bound.
    """
    start = time.perf_counter()
    data, suffix = encoded_image(frame)
    inspection: InspectionResult | None = None
    failure: Failure | None = None
    verdict, score, reason = Verdict.UNSURE, None, None
    defect_types: tuple[str, ...] = ()
    timings: dict[str, float] = {}
    if frame.error is not None or frame.image is None:
        failure = frame.failure or Failure.UNREADABLE
        reason = f"image could not be read: {frame.error or 'no image'}"
    else:
        try:
            inspection = inspector.inspect(frame.image)
        except Exception as error:  # any model failure must become a verdict, not a crash
            log.exception("inference failed on part %s", frame.frame_id)
            failure = Failure.INFERENCE
            reason = f"inference failed: {type(error).__name__}: {error}"
    if inspection is not None:
        timings = {k: float(v) for k, v in inspection.timings.items()}
        labels = [inspection.defect_type] + [d.label for d in inspection.detections]
        defect_types = tuple(dict.fromkeys(x for x in labels if x))
        verdict, reason, failure = Verdict(inspection.verdict), inspection.reason, inspection.failure
        if math.isfinite(float(inspection.score)):
            score = float(inspection.score)
        elif failure is None:
            failure = Failure.INVALID_SCORE
            reason = f"model returned a non-finite score ({inspection.score})"
    elapsed_ms = (time.perf_counter() - start) * 1e3
    timings["total"] = elapsed_ms
    if cycle_budget_ms is not None and elapsed_ms > cycle_budget_ms and failure is None:
        failure = Failure.TIMEOUT
        reason = f"took {elapsed_ms:.1f} ms, over the cycle budget of {cycle_budget_ms:g} ms"
    if failure is not None:
        verdict = _stricter(verdict, policy.verdict_for(failure))
    part = PartResult(
        part_id=frame.frame_id,
        timestamp=frame.timestamp,
        verdict=verdict,
        score=score,
        threshold=float(inspector.threshold),
        model_version=inspector.model_version,
        dataset_version=inspector.dataset_version,
        line=line,
        source=frame.path or frame.source,
        defect_types=defect_types,
        timings=timings,
        reason=reason,
        image_sha256=hashlib.sha256(data).hexdigest() if data else None,
        failure=failure,
    )
    return Decision(part, inspection, data, suffix, failure, frame)


def decide(frame: Frame, inspector: "Inspector", *, cycle_budget_ms: float | None = None,
           policy: FailSafePolicy = FailSafePolicy(), line: str = "line1") -> PartResult:
    """The verdict for one frame as a ``PartResult`` (see ``evaluate`` for the rules)."""
    return evaluate(frame, inspector, cycle_budget_ms=cycle_budget_ms, policy=policy,
                    line=line).part
