"""Drift: has production moved away from what the model was trained and calibrated on?

Scores: the Population Stability Index (PSI, reference quantile bins) and the two-sample
Kolmogorov-Smirnov test. Features: the shift of the mean of per-image feature vectors
(embedding summaries, or cheap image statistics) in units of the reference spread.

Reference choice: bundles do not (yet) save their validation scores, so the reference is
either a reference file (``{"scores": [...], "features": [[...], ...]}``) written from a known
good period, or the first ``reference_size`` production results of the model version in use.
The second assumes the line started healthy; the dashboard says which one it used.

>>> report = drift_report([0.1, 0.2, 0.3] * 50, [0.1, 0.2, 0.3] * 50)
>>> report.status
'ok'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import stats

from defectscope.errors import ConfigError, DataError

STATUSES = ("ok", "warn", "alarm")


@dataclass(frozen=True)
class DriftThresholds:
    """When drift becomes a warning or an alarm. PSI 0.1 / 0.25 is the usual credit-risk rule
    of thumb; a KS p-value alone over-alarms on large samples, so KS also needs a D statistic."""

    psi_warn: float = 0.1
    psi_alarm: float = 0.25
    ks_p_warn: float = 0.01
    ks_d_warn: float = 0.1
    ks_d_alarm: float = 0.2
    feature_warn: float = 1.0  # largest |mean shift| in reference standard deviations
    feature_alarm: float = 2.0
    min_samples: int = 30


@dataclass(frozen=True)
class DriftReport:
    status: str
    n_reference: int
    n_current: int
    psi: float | None
    ks_statistic: float | None
    ks_pvalue: float | None
    feature_shift: float | None
    reasons: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"status": self.status, "n_reference": self.n_reference,
                "n_current": self.n_current, "psi": self.psi, "ks_statistic": self.ks_statistic,
                "ks_pvalue": self.ks_pvalue, "feature_shift": self.feature_shift,
                "reasons": list(self.reasons)}


def _finite(values: Sequence[float], name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise ConfigError(f"{name}: no finite scores")
    return x


def psi(reference: Sequence[float], current: Sequence[float], bins: int = 10,
        eps: float = 1e-4) -> float:
    """PSI = sum (c_i - r_i) ln(c_i / r_i) over bins cut at the reference's quantiles.

    Empty bins get ``eps`` so the log stays finite. 0 means identical histograms.

    >>> round(psi([1, 2, 3, 4], [1, 2, 3, 4], bins=2), 6)
    0.0
    """
    ref, cur = _finite(reference, "reference"), _finite(current, "current")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1) / ref.size
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1) / cur.size
    r, c = np.maximum(r, eps), np.maximum(c, eps)
    return float(np.sum((c - r) * np.log(c / r)))


def ks(reference: Sequence[float], current: Sequence[float]) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov ``(D, p-value)`` (scipy, exact for small samples)."""
    result = stats.ks_2samp(_finite(reference, "reference"), _finite(current, "current"))
    return float(result.statistic), float(result.pvalue)


def feature_shift(reference: np.ndarray, current: np.ndarray) -> float:
    """Largest ``|mean_cur - mean_ref| / std_ref`` over feature dimensions.

    ``reference`` and ``current`` are (n, d) arrays of per-image summaries (pooled embeddings or
    image statistics). Per-dimension scaling keeps it meaningful with few images, where a full
    covariance (Mahalanobis) would be singular.
    """
    ref, cur = np.atleast_2d(np.asarray(reference, float)), np.atleast_2d(np.asarray(current, float))
    if ref.shape[1] != cur.shape[1]:
        raise ConfigError(f"feature sizes differ: reference {ref.shape[1]}, current {cur.shape[1]}")
    if ref.shape[0] < 2 or cur.shape[0] < 1:
        raise ConfigError("feature shift needs at least 2 reference and 1 current vectors")
    spread = np.maximum(ref.std(axis=0, ddof=1), 1e-9 * (1 + np.abs(ref.mean(axis=0))))
    return float(np.max(np.abs(cur.mean(axis=0) - ref.mean(axis=0)) / spread))


def drift_report(reference: Sequence[float], current: Sequence[float],
                 thresholds: DriftThresholds = DriftThresholds(),
                 reference_features: np.ndarray | None = None,
                 current_features: np.ndarray | None = None) -> DriftReport:
    """PSI, KS and (when features are given) the feature shift, with an ok/warn/alarm status."""
    ref, cur = np.asarray(reference, float).ravel(), np.asarray(current, float).ravel()
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    t = thresholds
    if min(ref.size, cur.size) < t.min_samples:
        return DriftReport("ok", int(ref.size), int(cur.size), None, None, None, None,
                           (f"not enough scores yet (reference {ref.size}, current {cur.size}; "
                            f"need {t.min_samples} each)",))
    value = psi(ref, cur)
    d, p = ks(ref, cur)
    level, reasons = 0, []

    def raise_to(new: int, reason: str) -> None:
        nonlocal level
        level = max(level, new)
        reasons.append(reason)

    if value >= t.psi_alarm:
        raise_to(2, f"score PSI {value:.3f} >= {t.psi_alarm}")
    elif value >= t.psi_warn:
        raise_to(1, f"score PSI {value:.3f} >= {t.psi_warn}")
    if p < t.ks_p_warn and d >= t.ks_d_alarm:
        raise_to(2, f"KS D {d:.3f} >= {t.ks_d_alarm} (p={p:.2g})")
    elif p < t.ks_p_warn and d >= t.ks_d_warn:
        raise_to(1, f"KS D {d:.3f} >= {t.ks_d_warn} (p={p:.2g})")
    shift = None
    if reference_features is not None and current_features is not None \
            and len(reference_features) >= 2 and len(current_features) >= 1:
        shift = feature_shift(reference_features, current_features)
        if shift >= t.feature_alarm:
            raise_to(2, f"feature mean shift {shift:.2f} sd >= {t.feature_alarm}")
        elif shift >= t.feature_warn:
            raise_to(1, f"feature mean shift {shift:.2f} sd >= {t.feature_warn}")
    return DriftReport(STATUSES[level], int(ref.size), int(cur.size), value, d, p, shift,
                       tuple(reasons))


def image_features(image: np.ndarray) -> np.ndarray:
    """A cheap per-image summary for drift when no embeddings are logged: grey mean, standard
    deviation, 5th and 95th percentile, and mean absolute horizontal/vertical gradient."""
    grey = np.asarray(image, np.float64)
    grey = grey.mean(axis=2) if grey.ndim == 3 else grey
    gx = np.abs(np.diff(grey, axis=1)).mean() if grey.shape[1] > 1 else 0.0
    gy = np.abs(np.diff(grey, axis=0)).mean() if grey.shape[0] > 1 else 0.0
    p5, p95 = np.percentile(grey, [5, 95])
    return np.array([grey.mean(), grey.std(), p5, p95, gx, gy])


def load_reference(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a reference file ``{"scores": [...], "features": [[...]] (optional)}``."""
    source = Path(path)
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
        scores = np.asarray(document["scores"], dtype=np.float64)
        features = document.get("features")
    except FileNotFoundError as error:
        raise DataError(f"{source}: drift reference file does not exist") from error
    except (ValueError, KeyError, TypeError) as error:
        raise DataError(f'{source}: not a drift reference ({{"scores": [...]}} expected): '
                        f"{error}") from error
    if scores.ndim != 1 or scores.size == 0:
        raise DataError(f"{source}: 'scores' must be a non-empty list of numbers")
    return scores, None if features is None else np.asarray(features, dtype=np.float64)
