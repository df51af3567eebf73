"""Class imbalance: class weights, oversampling, and defaults chosen from the class counts.

Defects are often under 1% of parts. With a large imbalance a plain loss learns "always good";
these helpers rebalance what the network sees (oversampling) or what each error costs (weights).

>>> choose_imbalance_defaults({"good": 900, "crack": 10})
ImbalanceDefaults(sampler='oversample', loss='focal', ratio=90.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class ImbalanceDefaults:
    sampler: str  # "shuffle" or "oversample"
    loss: str  # "ce", "weighted_ce" or "focal"
    ratio: float  # largest class count / smallest


def choose_imbalance_defaults(counts: Mapping[str, int]) -> ImbalanceDefaults:
    """Balanced (ratio <= 3): shuffle + CE; up to 20: oversample + weighted CE; beyond: focal."""
    values = [c for c in counts.values() if c > 0]
    ratio = float(max(values) / min(values)) if values else 1.0
    if ratio <= 3:
        return ImbalanceDefaults("shuffle", "ce", ratio)
    return ImbalanceDefaults("oversample", "weighted_ce" if ratio <= 20 else "focal", ratio)


def class_weights(targets: Sequence[int], n_classes: int) -> np.ndarray:
    """Inverse-frequency weights, normalised to mean 1 over the classes present."""
    counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=n_classes).astype(float)
    weights = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    present = counts > 0
    return weights / weights[present].mean()


def epoch_order(targets: Sequence[int], sampler: str, rng: np.random.Generator) -> np.ndarray:
    """Indices for one epoch: a shuffle, or a class-balanced draw with replacement (same length)."""
    targets = np.asarray(targets, dtype=np.int64)
    n = len(targets)
    if sampler == "shuffle":
        return rng.permutation(n)
    if sampler != "oversample":
        raise ValueError(f"unknown sampler {sampler!r}; use shuffle or oversample")
    counts = np.bincount(targets)
    probability = 1.0 / counts[targets]
    return rng.choice(n, size=n, replace=True, p=probability / probability.sum())
