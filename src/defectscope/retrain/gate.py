"""The regression gate: a retrained candidate replaces the current model only if it is not worse.

Why a gate: retraining on reviewed production parts is how the model keeps up with the line,
but a candidate can be worse (a mislabelled batch, a good part painted as a defect). Both models
are judged at their own operating point (their own threshold) on the same images: the fixed
test split of the dataset version they share plus the new reviewed parts the candidate did not
train on. Escapes are the expensive error, so by default recall may not fall at all; the
false-reject rate may rise by at most ``false_reject_margin``.

>>> current = GateFigures(recall=0.9, false_reject_rate=0.02, n_defect=50, n_good=200)
>>> gate(current, GateFigures(0.8, 0.01, 50, 200)).promote
False
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from defectscope.errors import ConfigError

EPS = 1e-12  # equal rates computed from different counts must not fail on rounding


@dataclass(frozen=True)
class GateConfig:
    """How much worse a candidate may be: recall may fall by ``recall_margin`` (0: not at all),
    the false-reject rate may rise by ``false_reject_margin``."""

    false_reject_margin: float = 0.01
    recall_margin: float = 0.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), not {value}")


@dataclass(frozen=True)
class GateFigures:
    """One model on the gate's images, at its operating point (score >= threshold is NG)."""

    recall: float
    false_reject_rate: float
    n_defect: int
    n_good: int
    threshold: float | None = None
    per_type_recall: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: tuple[str, ...]
    current: GateFigures
    candidate: GateFigures
    config: GateConfig

    def to_dict(self) -> dict:
        return {"promote": self.promote, "reasons": list(self.reasons),
                "current": self.current.to_dict(), "candidate": self.candidate.to_dict(),
                "config": asdict(self.config)}


def figures(scores, is_defect, threshold: float, labels=None) -> GateFigures:
    """Recall and false-reject rate at ``threshold``; refuses a set without good or defective
    images, where one of the two rates is undefined and the gate could not protect it."""
    s, y = np.asarray(scores, float), np.asarray(is_defect, bool)
    if s.shape != y.shape or s.size == 0 or np.isnan(s).any():
        raise ConfigError("gate figures need one finite score per image")
    if not y.any() or y.all():
        raise ConfigError(f"the gate needs good and defective images (got {int(y.sum())} "
                          f"defective of {y.size}); add reviewed parts or a test split with both")
    caught = s >= threshold
    per_type = None
    if labels is not None:
        labels = np.asarray(labels, dtype=object)
        per_type = {str(t): float(caught[labels == t].mean()) for t in sorted(set(labels[y]))}
    return GateFigures(float(caught[y].mean()), float(caught[~y].mean()), int(y.sum()),
                       int((~y).sum()), float(threshold), per_type)


def gate(current: GateFigures, candidate: GateFigures, config: GateConfig = GateConfig()
         ) -> GateDecision:
    """Promote only when both rules hold; ``reasons`` says, with numbers, why or why not."""
    if (current.n_defect, current.n_good) != (candidate.n_defect, candidate.n_good):
        raise ConfigError("current and candidate must be judged on the same images")
    reasons, ok = [], True
    recall_floor = current.recall - config.recall_margin
    if candidate.recall + EPS < recall_floor:
        ok = False
        reasons.append(f"recall falls: {candidate.recall:.4f} < {current.recall:.4f} - "
                       f"{config.recall_margin}")
    else:
        reasons.append(f"recall {candidate.recall:.4f} >= {recall_floor:.4f}")
    frr_ceiling = current.false_reject_rate + config.false_reject_margin
    if candidate.false_reject_rate > frr_ceiling + EPS:
        ok = False
        reasons.append(f"false-reject rate rises: {candidate.false_reject_rate:.4f} > "
                       f"{current.false_reject_rate:.4f} + {config.false_reject_margin}")
    else:
        reasons.append(f"false-reject rate {candidate.false_reject_rate:.4f} <= "
                       f"{frr_ceiling:.4f}")
    return GateDecision(ok, tuple(reasons), current, candidate, config)
