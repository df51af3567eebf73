"""Statistical process control: p-chart of the NG rate, individuals and EWMA charts of the mean
score, and the Western Electric run rules.

Why: a threshold tells whether one part is bad; a control chart tells whether the *process*
changed (a worn tool, a new lot of material, a dirty lens) before the NG rate becomes a scrap
bill. Every chart is a pure function of numbers, so it is tested against hand-computed cases.

>>> chart = p_chart([1, 2, 12], [100, 100, 100])
>>> round(chart.center, 4), chart.points[2] > chart.ucl[2]
(0.05, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike

from defectscope.errors import ConfigError

D2_MOVING_RANGE = 1.128  # d2 for moving ranges of 2: sigma = mean moving range / d2


@dataclass(frozen=True)
class RuleHit:
    """A Western Electric rule firing at ``index`` (the last point of the run that broke it)."""

    index: int
    rule: int
    description: str

    def to_dict(self) -> dict:
        return {"index": self.index, "rule": self.rule, "description": self.description}


@dataclass(frozen=True)
class ControlChart:
    """Points with their center line and 3-sigma limits (one limit per point: n may vary)."""

    kind: str
    points: tuple[float, ...]
    center: float
    ucl: tuple[float, ...]
    lcl: tuple[float, ...]
    sigma: tuple[float, ...]
    hits: tuple[RuleHit, ...] = field(default=())

    @property
    def alerts(self) -> tuple[str, ...]:
        return tuple(f"{self.kind}: point {h.index}: rule {h.rule} ({h.description})"
                     for h in self.hits)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "points": list(self.points), "center": self.center,
                "ucl": list(self.ucl), "lcl": list(self.lcl), "sigma": list(self.sigma),
                "hits": [h.to_dict() for h in self.hits], "alerts": list(self.alerts)}


RULES = {
    1: "one point beyond 3 sigma",
    2: "2 of 3 points beyond 2 sigma on one side",
    3: "4 of 5 points beyond 1 sigma on one side",
    4: "8 points in a row on one side of the center line",
}


def western_electric(z: ArrayLike) -> tuple[RuleHit, ...]:
    """Rules 1-4 on standardised points ``z = (x - center) / sigma``; one hit per (point, rule).

    A rule fires at the point that completes the run, so an operator sees when it happened.

    >>> [h.rule for h in western_electric([0, 0, 3.5])]
    [1]
    """
    zs = np.asarray(z, dtype=np.float64)
    hits: list[RuleHit] = []
    for i in range(zs.size):
        if abs(zs[i]) > 3:
            hits.append(RuleHit(i, 1, RULES[1]))
        for rule, (count, window, limit) in {2: (2, 3, 2.0), 3: (4, 5, 1.0), 4: (8, 8, 0.0)}.items():
            if i + 1 < window:
                continue
            run = zs[i + 1 - window: i + 1]
            for sign in (1.0, -1.0):
                beyond = sign * run > limit
                # the point that completes the run must itself be beyond, so a run is reported once
                if beyond[-1] and beyond.sum() >= count:
                    hits.append(RuleHit(i, rule, RULES[rule]))
                    break
    return tuple(hits)


def _standardised(points: np.ndarray, center: float, sigma: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (points - center) / sigma
    return np.where(sigma > 0, z, 0.0)


def p_chart(ng: Sequence[int], n: Sequence[int]) -> ControlChart:
    """p-chart of the NG fraction per window or lot, with limits for each window's own size.

    ``p_bar = sum(ng) / sum(n)``; ``sigma_i = sqrt(p_bar (1 - p_bar) / n_i)``; limits are
    ``p_bar +/- 3 sigma_i`` clipped to [0, 1].
    """
    ng_a, n_a = np.asarray(ng, dtype=np.float64), np.asarray(n, dtype=np.float64)
    if ng_a.size == 0 or ng_a.shape != n_a.shape:
        raise ConfigError("a p-chart needs one NG count per window and one part count per window")
    if (n_a <= 0).any() or (ng_a < 0).any() or (ng_a > n_a).any():
        raise ConfigError("every window needs n > 0 parts and 0 <= NG <= n")
    p = ng_a / n_a
    p_bar = float(ng_a.sum() / n_a.sum())
    sigma = np.sqrt(p_bar * (1 - p_bar) / n_a)
    hits = western_electric(_standardised(p, p_bar, sigma))
    return ControlChart("p", tuple(p.tolist()), p_bar,
                        tuple(np.minimum(1.0, p_bar + 3 * sigma).tolist()),
                        tuple(np.maximum(0.0, p_bar - 3 * sigma).tolist()),
                        tuple(sigma.tolist()), hits)


def individuals_chart(values: Sequence[float], center: float | None = None,
                      sigma: float | None = None) -> ControlChart:
    """Individuals chart: sigma from the mean moving range / 1.128, unless given.

    Pass ``center`` and ``sigma`` from a reference period to judge new points against it.
    """
    x = _values(values, 2 if sigma is None else 1)
    mu = float(x.mean()) if center is None else float(center)
    s = float(np.abs(np.diff(x)).mean() / D2_MOVING_RANGE) if sigma is None else float(sigma)
    sig = np.full(x.size, s)
    hits = western_electric(_standardised(x, mu, sig))
    return ControlChart("individuals", tuple(x.tolist()), mu, tuple((mu + 3 * sig).tolist()),
                        tuple((mu - 3 * sig).tolist()), tuple(sig.tolist()), hits)


def ewma_chart(values: Sequence[float], lam: float = 0.2, L: float = 3.0,
               center: float | None = None, sigma: float | None = None) -> ControlChart:
    """EWMA chart: ``z_i = lam x_i + (1 - lam) z_{i-1}``, ``z_0 = center``, exact limits
    ``center +/- L sigma sqrt(lam / (2 - lam) (1 - (1 - lam)^(2i)))``.

    Catches small sustained shifts of the mean score that an individuals chart misses. Only
    rule 1 (beyond the limits) applies: EWMA points are autocorrelated by construction.
    """
    if not 0 < lam <= 1:
        raise ConfigError(f"EWMA lambda must be in (0, 1], not {lam}")
    x = _values(values, 2 if sigma is None else 1)
    mu = float(x.mean()) if center is None else float(center)
    s = float(np.abs(np.diff(x)).mean() / D2_MOVING_RANGE) if sigma is None else float(sigma)
    z, previous = np.empty(x.size), mu
    for i, value in enumerate(x):
        previous = lam * value + (1 - lam) * previous
        z[i] = previous
    steps = np.arange(1, x.size + 1)
    sig = s * np.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * steps)))
    zs = _standardised(z, mu, sig)
    hits = tuple(RuleHit(int(k), 1, "EWMA beyond its control limit")
                 for k in np.flatnonzero(np.abs(zs) > L))
    return ControlChart("ewma", tuple(z.tolist()), mu, tuple((mu + L * sig).tolist()),
                        tuple((mu - L * sig).tolist()), tuple(sig.tolist()), hits)


def _values(values: Sequence[float], minimum: int) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size < minimum:
        raise ConfigError(f"a control chart needs at least {minimum} points, got {x.size}")
    if not np.isfinite(x).all():
        raise ConfigError("control chart values must be finite numbers (drop unscored parts)")
    return x
