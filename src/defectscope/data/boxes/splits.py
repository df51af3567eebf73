"""Seeded, group-aware splits of a ``DetectionDataset``.

Why group-aware: DeepPCB's images are crops of a few board scans; crops of one scan share
layout, lighting and artificial-defect style, so a scan in both train and test flatters the
model. A group (``DetectionSample.group``; a sample without one is a group of its own) always
lands in one split. No class stratification: an image holds boxes of several classes.

>>> dataset = split_detection(deeppcb, fractions=(0.8, 0.2), names=("train", "test"))  # doctest: +SKIP
>>> {s: len(dataset.select(s)) for s in ("train", "test")}                             # doctest: +SKIP
{'train': 799, 'test': 200}
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from defectscope.data.boxes.dataset import DetectionDataset, DetectionSample
from defectscope.errors import ConfigError, DataError
from defectscope.values import SPLITS

__all__ = ["split_detection"]

ATTEMPTS = 64  # seeded shuffles tried; the assignment closest to the fractions is kept


def _group_key(sample: DetectionSample) -> tuple[str, str]:
    return ("group", sample.group) if sample.group is not None else ("path", sample.path)


def split_detection(dataset: DetectionDataset, fractions: Sequence[float] = (0.7, 0.15, 0.15),
                    seed: int = 0, names: Sequence[str] = ("train", "val", "test")
                    ) -> DetectionDataset:
    """Give every sample one of ``names`` (replacing any split it had), whole groups at a time.

    Groups are sorted, shuffled by a generator seeded with ``seed``, then each goes to the split
    furthest below its target image count (ties: the earlier name). Of ``ATTEMPTS`` such seeded
    shuffles the one closest to the targets with no empty split wins (the first on ties), so a
    few groups of uneven size still fill every split. The result depends only on the content
    and ``seed``, not on sample order, and each split is within about one group's size of its
    fraction. Raises ``DataError`` when a split with a nonzero fraction must end empty (fewer
    groups than splits): pick fewer splits or a dataset with more groups.
    """
    weights = _check(fractions, names, seed)
    groups: dict[tuple[str, str], list[DetectionSample]] = defaultdict(list)
    for sample in dataset.samples:
        groups[_group_key(sample)].append(sample)
    keys = sorted(groups)
    sizes = np.array([len(groups[key]) for key in keys])
    targets = weights * len(dataset.samples)
    rng = np.random.default_rng(seed)
    best_error, chosen, counts = np.inf, {}, np.zeros(len(names))
    for _ in range(ATTEMPTS):
        assignment, attempt_counts = _assign(rng.permutation(len(keys)), sizes, targets)
        empty = any(w > 0 and c == 0 for w, c in zip(weights, attempt_counts))
        error = np.abs(attempt_counts - targets).sum() + (np.inf if empty else 0.0)
        if error < best_error or not chosen:
            best_error, counts = error, attempt_counts
            chosen = {keys[i]: names[split] for i, split in assignment.items()}
    empty = [n for n, w, c in zip(names, weights, counts) if w > 0 and c == 0]
    if empty:
        raise DataError(
            f"{dataset.root}: split(s) {', '.join(empty)} would be empty: {len(keys)} group(s) "
            f"for {len(names)} splits; use fewer splits (e.g. fractions 0.8,0.2 and names "
            "train,test) or add images from more groups")
    samples = tuple(dataclasses.replace(s, split=chosen[_group_key(s)]) for s in dataset.samples)
    source = {**dataset.source, "split": {"fractions": weights.tolist(), "seed": int(seed),
                                          "names": list(names), "by": "group"}}
    return dataclasses.replace(dataset, samples=samples, source=source)


def _assign(order: np.ndarray, sizes: np.ndarray, targets: np.ndarray
            ) -> tuple[dict[int, int], np.ndarray]:
    """Each group in ``order`` to the split furthest below its target (ties: the earlier)."""
    counts = np.zeros(len(targets))
    assignment: dict[int, int] = {}
    for index in order:
        best = int(np.argmax(targets - counts))
        assignment[int(index)] = best
        counts[best] += sizes[index]
    return assignment, counts


def _check(fractions: Sequence[float], names: Sequence[str], seed: int) -> np.ndarray:
    try:
        values = np.asarray([float(f) for f in fractions])
    except (TypeError, ValueError) as error:
        raise ConfigError(f"fractions must be numbers, got {fractions!r}") from error
    if len(values) != len(names) or not names:
        raise ConfigError(f"give one fraction per split name: {len(values)} fractions for "
                          f"names {list(names)}")
    unknown = [n for n in names if n not in SPLITS]
    if unknown or len(set(names)) != len(names):
        raise ConfigError(f"split names must be distinct and among {SPLITS}, got {list(names)}")
    if any(not math.isfinite(v) or v < 0 for v in values) or not math.isclose(
            values.sum(), 1.0, abs_tol=1e-6):
        raise ConfigError(f"fractions must be non-negative and sum to 1, got {list(fractions)}; "
                          "e.g. 0.8,0.2")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return values
