"""Production precision and recall estimated from operator-reviewed parts, with Wilson intervals.

Why Wilson: reviewed samples are small (tens of parts) and rates sit near 0 or 1, where the
normal ("Wald") interval goes below 0 or above 1; Wilson stays inside and keeps its coverage.

Definitions (a reviewed part has the model's verdict and the operator's truth):
precision = confirmed-defective NG parts / reviewed NG parts; recall = confirmed-defective
parts the model did not pass (NG or UNSURE, both stop the part) / reviewed confirmed-defective
parts. The queue over-samples UNSURE parts, so these are rates *of the reviewed sample*; read
them with their n and interval.

>>> [round(x, 4) for x in wilson_interval(8, 10)]
[0.4902, 0.9433]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from defectscope.errors import ConfigError


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval for ``k`` successes in ``n`` trials (95 % by default)."""
    if n <= 0 or not 0 <= k <= n:
        raise ConfigError(f"Wilson interval needs 0 <= k <= n and n > 0 (got k={k}, n={n})")
    p = k / n
    denominator = 1 + z * z / n
    middle = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, middle - half), min(1.0, middle + half)


@dataclass(frozen=True)
class RateEstimate:
    k: int
    n: int
    value: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, k: int, n: int) -> "RateEstimate":
        if n == 0:
            return cls(k, n, None, None, None)
        low, high = wilson_interval(k, n)
        return cls(k, n, k / n, low, high)

    def to_dict(self) -> dict:
        return {"k": self.k, "n": self.n, "value": self.value, "low": self.low, "high": self.high}


def precision_recall(pairs: Iterable[tuple[str, bool]]) -> dict[str, RateEstimate]:
    """``pairs`` of (model verdict "OK"/"NG"/"UNSURE", operator says defective) -> estimates.

    >>> precision_recall([("NG", True), ("NG", False), ("OK", True)])["recall"].value
    0.5
    """
    tp = fp = caught = defects = 0
    for verdict, defective in pairs:
        if verdict not in ("OK", "NG", "UNSURE"):
            raise ConfigError(f"verdict must be OK, NG or UNSURE, not {verdict!r}")
        if verdict == "NG":
            tp += defective
            fp += not defective
        if defective:
            defects += 1
            caught += verdict != "OK"
    return {"precision": RateEstimate.of(tp, tp + fp), "recall": RateEstimate.of(caught, defects)}
