"""Seeded, stratified, group-aware train/val/test splits.

Why group-aware: images of one part, lot or session look alike; if they land in both train and
test, the test score flatters the model. So a group (``Sample.group``; a sample without one is its
own group) always lands in one split. Why stratified: a rare defect type must appear in every
split in about the asked proportion, not by luck.

>>> result = split_manifest(manifest, fractions=(0.7, 0.15, 0.15), seed=0)   # doctest: +SKIP
>>> result.manifest.counts()["crack"]                                         # doctest: +SKIP
{'train': 40, 'val': 9, 'test': 8, 'unsplit': 0}
>>> calib = hold_out(mvtec_manifest, "train", "val", fraction=0.1, label="good")  # doctest: +SKIP
>>> folds, warnings = cross_validation_splits(manifest, folds=7)             # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from defectscope.data.images.manifest import Manifest
from defectscope.errors import ConfigError, DataError
from defectscope.values import SPLITS, Sample

GroupKey = tuple[str, str]


@dataclass(frozen=True)
class SplitResult:
    """The split manifest and warnings (classes too small to appear in every split)."""

    manifest: Manifest
    warnings: tuple[str, ...] = ()


def split_manifest(
    manifest: Manifest, fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0
) -> SplitResult:
    """Give every sample a split in ``SPLITS`` (train, val, test), replacing any it had.

    Per label (a group counts under its most common label), groups are sorted, shuffled with a
    generator seeded by ``seed`` and the label, then each goes to the split furthest below its
    target count. So per label the proportions are within one group's size of ``fractions``, and
    the result depends only on the content and ``seed``, not on the order of the samples.

    A label with fewer groups than splits of nonzero fraction cannot be in every split: all of
    it goes to the largest split (train) and a warning says so. The new manifest's
    ``parent_version`` is the input's ``version_id``.
    """
    weights = _check_fractions(fractions)
    _check_seed(seed)
    groups = _groups(manifest.samples)
    parts, warnings = _balanced_parts(groups, weights, seed, SPLITS)
    assignment = {key: SPLITS[part] for key, part in parts.items()}
    samples = tuple(
        dataclasses.replace(s, split=assignment[_group_key(s)]) for s in manifest.samples
    )
    _check_no_group_leak(samples)
    source = {**manifest.source, "split": {"fractions": weights.tolist(), "seed": seed}}
    result = dataclasses.replace(
        manifest, samples=samples, parent_version=manifest.version_id, source=source
    )
    return SplitResult(result, tuple(warnings))


def _balanced_parts(groups: dict[GroupKey, list[Sample]], weights: np.ndarray, seed: int,
                    names: Sequence[str], pile_few: bool = True
                    ) -> tuple[dict[GroupKey, int], list[str]]:
    """Each group's part (an index into ``weights``): per label, the groups in a seeded order,
    each to the part furthest below its share of that label's images. ``names`` name the parts
    in warnings. A label with fewer groups than parts of nonzero weight goes wholly to the
    heaviest part (``pile_few``) or is spread over as many parts as it has groups; a warning
    says which."""
    by_label: dict[str, list[GroupKey]] = defaultdict(list)
    for key, members in groups.items():
        by_label[_dominant_label(members)].append(key)
    needed = int(np.count_nonzero(weights))
    parts: dict[GroupKey, int] = {}
    warnings: list[str] = []
    for label in sorted(by_label):
        keys = sorted(by_label[label])
        size = sum(len(groups[k]) for k in keys)
        if len(keys) < needed and not pile_few:
            warnings.append(f"class {label!r} has only {len(keys)} group(s) ({size} image(s)): "
                            f"{needed - len(keys)} of the {needed} parts hold none of it")
        elif len(keys) < needed:
            fallback = int(np.argmax(weights))
            parts.update({k: fallback for k in keys})
            warnings.append(
                f"class {label!r} has only {len(keys)} group(s) ({size} image(s)), too few to be "
                f"in every split; all of it went to {names[fallback]}. Add images of {label!r} "
                "(or more groups), or evaluate it by cross-validation"
            )
            continue
        counts = np.zeros(len(weights))
        targets = weights * size
        rng = np.random.default_rng(seed + _stable_hash(label))
        for index in rng.permutation(len(keys)):
            chosen = int(np.argmax(targets - counts))  # ties go to the earlier part
            parts[keys[index]] = chosen
            counts[chosen] += len(groups[keys[index]])
        empty = [names[i] for i in range(len(weights)) if weights[i] > 0 and counts[i] == 0]
        if empty and len(keys) >= needed:
            warnings.append(
                f"class {label!r} ({len(keys)} groups) has no images in {', '.join(empty)}; "
                f"add images of {label!r} for a reliable estimate there"
            )
    return parts, warnings


def cross_validation_splits(manifest: Manifest, folds: int = 7, seed: int = 0
                            ) -> tuple[list[Manifest], tuple[str, ...]]:
    """``folds`` train/val/test splits in which every image is a test image exactly once.

    The groups are dealt into ``folds`` parts as ``split_manifest`` deals them into splits
    (per label, seeded, group-aware); split ``i`` tests on part ``i``, validates on part
    ``i + 1`` and trains on the rest (7 folds: about 71/14/14). On a small dataset one split's
    test figures rest on a few parts; over all folds every part is scored once.
    A label with fewer groups than folds is spread one group per fold (some folds test none
    of it). Returns the manifests and the warnings (labels with fewer groups than folds).
    """
    if not isinstance(folds, int) or isinstance(folds, bool) or folds < 3:
        raise ConfigError(f"folds must be an integer >= 3 (test, val and train parts), got "
                          f"{folds!r}")
    _check_seed(seed)
    groups = _groups(manifest.samples)
    names = [f"fold {i}" for i in range(folds)]
    parts, warnings = _balanced_parts(groups, np.full(folds, 1.0 / folds), seed, names,
                                      pile_few=False)
    manifests = []
    for test in range(folds):
        val = (test + 1) % folds

        def split_of(sample: Sample) -> str:
            part = parts[_group_key(sample)]
            return "test" if part == test else "val" if part == val else "train"

        samples = tuple(dataclasses.replace(s, split=split_of(s)) for s in manifest.samples)
        _check_no_group_leak(samples)
        source = {**manifest.source, "split": {"cross_validation": folds, "fold": test,
                                               "seed": seed}}
        manifests.append(dataclasses.replace(manifest, samples=samples,
                                             parent_version=manifest.version_id, source=source))
    return manifests, tuple(warnings)


def hold_out(
    manifest: Manifest,
    from_split: str = "train",
    to_split: str = "val",
    fraction: float = 0.15,
    seed: int = 0,
    label: str | None = None,
) -> Manifest:
    """Move a seeded, group-aware slice (about ``fraction``) of one split to another.

    Typical use: hold back some good training images of an MVTec category to calibrate the
    threshold (``hold_out(m, "train", "val", 0.1, label="good")``). Whole groups move; when
    ``fraction > 0`` and the split has at least two groups, at least one group moves.
    """
    for name, split in (("from_split", from_split), ("to_split", to_split)):
        if split not in SPLITS:
            raise ConfigError(f"{name} {split!r} is not a split; use one of {', '.join(SPLITS)}")
    if from_split == to_split:
        raise ConfigError(f"from_split and to_split are both {from_split!r}; pick two splits")
    if not (isinstance(fraction, (int, float)) and 0 <= fraction <= 1):
        raise ConfigError(f"fraction must be between 0 and 1, got {fraction!r}")
    _check_seed(seed)
    pool = [s for s in manifest.samples if s.split == from_split and label in (None, s.label)]
    if not pool:
        of_label = f" of label {label!r}" if label is not None else ""
        raise DataError(
            f"split {from_split!r} has no samples{of_label} to hold out; split the manifest "
            "first (`defectscope data split`) or pick another split or label"
        )
    sizes = Counter(_group_key(s) for s in pool)
    keys = sorted(sizes)
    target = fraction * len(pool)
    moved: set[GroupKey] = set()
    count = 0
    for index in np.random.default_rng(seed).permutation(len(keys)):
        key = keys[index]
        first_of_many = fraction > 0 and not moved and len(keys) >= 2
        if first_of_many or abs(count + sizes[key] - target) < abs(count - target):
            moved.add(key)
            count += sizes[key]
    samples = tuple(
        dataclasses.replace(s, split=to_split)
        if s.split == from_split and _group_key(s) in moved
        else s
        for s in manifest.samples
    )
    return dataclasses.replace(manifest, samples=samples, parent_version=manifest.version_id)


def _group_key(sample: Sample) -> GroupKey:
    """A sample's group; one without a group is a group of its own (keyed by its path)."""
    return ("group", sample.group) if sample.group is not None else ("path", sample.path)


def _groups(samples: Sequence[Sample]) -> dict[GroupKey, list[Sample]]:
    groups: dict[GroupKey, list[Sample]] = defaultdict(list)
    for sample in samples:
        groups[_group_key(sample)].append(sample)
    return groups


def _dominant_label(members: Sequence[Sample]) -> str:
    """The most common label of a group; ties go to the alphabetically first."""
    tally = Counter(s.label for s in members)
    return min(tally, key=lambda label: (-tally[label], label))


def _stable_hash(text: str) -> int:
    """A hash that is the same in every process (Python's ``hash`` of str is salted)."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    try:
        values = [float(f) for f in fractions]
    except (TypeError, ValueError) as error:
        raise ConfigError(f"fractions must be 3 numbers, got {fractions!r}") from error
    if len(values) != len(SPLITS):
        raise ConfigError(
            f"fractions must be 3 numbers (train, val, test), got {len(values)}: {fractions!r}"
        )
    if any(not math.isfinite(v) or v < 0 for v in values) or not math.isclose(
        sum(values), 1.0, abs_tol=1e-6
    ):
        raise ConfigError(
            f"fractions must be non-negative and sum to 1, got {fractions!r}; e.g. 0.7,0.15,0.15"
        )
    return np.asarray(values)


def _check_seed(seed: int) -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")


def _check_no_group_leak(samples: Sequence[Sample]) -> None:
    splits_of: dict[str, set[str | None]] = defaultdict(set)
    for sample in samples:
        if sample.group is not None:
            splits_of[sample.group].add(sample.split)
    leaked = sorted(g for g, splits in splits_of.items() if len(splits) > 1)
    if leaked:
        raise DataError(f"groups {', '.join(leaked[:20])} straddle splits (this is a bug)")
