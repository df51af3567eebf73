"""Figures from the results log: NG counts per window, mean score per window, throughput,
latency percentiles and the model and dataset versions in use.

Pure functions of ``PartResult`` lists, so the dashboard, the CLI and the tests share them.

>>> windows = ng_windows(results, window_s=3600)          # doctest: +SKIP
>>> p_chart([w.ng for w in windows], [w.n for w in windows])  # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from defectscope.errors import ConfigError
from defectscope.values import PartResult, Verdict


@dataclass(frozen=True)
class Window:
    """One time window (or lot) of parts: its start, how many parts, how many NG, mean score."""

    key: str
    start: float
    n: int
    ng: int
    mean_score: float | None

    def to_dict(self) -> dict:
        return {"key": self.key, "start": self.start, "n": self.n, "ng": self.ng,
                "mean_score": self.mean_score}


def ng_windows(results: Sequence[PartResult], window_s: float | None = 3600.0,
               by_lot: bool = False) -> list[Window]:
    """Group parts into fixed time windows (aligned to multiples of ``window_s``) or, with
    ``by_lot``, by their ``source`` (a lot or batch id); oldest first. Empty windows are left
    out: a p-chart point needs n > 0. UNSURE counts as not NG (it is not a reject yet)."""
    if not by_lot and (window_s is None or window_s <= 0):
        raise ConfigError(f"window_s must be > 0 seconds, not {window_s}")
    step = float(window_s or 1.0)
    groups: dict[str, list[PartResult]] = {}
    for part in sorted(results, key=lambda r: r.timestamp):
        key = part.source if by_lot else str(int(part.timestamp // step * step))
        groups.setdefault(key, []).append(part)
    windows = []
    for key, parts in groups.items():
        scores = [p.score for p in parts if p.score is not None and np.isfinite(p.score)]
        windows.append(Window(key, parts[0].timestamp if by_lot else float(key), len(parts),
                              sum(p.verdict is Verdict.NG for p in parts),
                              float(np.mean(scores)) if scores else None))
    return windows


def latency_ms(part: PartResult) -> float | None:
    """Total milliseconds a part took (sum of its stage timings), or None when not timed."""
    return float(sum(part.timings.values())) if part.timings else None


def production_stats(results: Sequence[PartResult]) -> dict:
    """Counts per verdict, throughput (parts per minute over the covered span), latency
    p50/p95/p99 in ms, and which model and dataset versions decided how many parts."""
    verdicts = Counter(r.verdict.value for r in results)
    times = sorted(r.timestamp for r in results)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    latencies = [v for v in (latency_ms(r) for r in results) if v is not None]
    percentiles = (dict(zip(("p50", "p95", "p99"),
                            np.percentile(latencies, [50, 95, 99]).round(3).tolist()))
                   if latencies else {"p50": None, "p95": None, "p99": None})
    n = len(results)
    return {
        "n": n,
        "verdicts": {v.value: verdicts.get(v.value, 0) for v in Verdict},
        "ng_rate": verdicts.get("NG", 0) / n if n else None,
        "span_s": span,
        "parts_per_minute": (n - 1) / span * 60 if span > 0 else None,
        "latency_ms": percentiles,
        "model_versions": dict(Counter(r.model_version for r in results)),
        "dataset_versions": dict(Counter(str(r.dataset_version) for r in results)),
    }
