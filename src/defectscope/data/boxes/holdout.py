"""A seeded model-selection slice carved off a detection training split.

Why: a detector's best epoch is chosen on held-out images. When the dataset's own validation
split is the one whose figures are reported (NEU-DET's given ``val``), choosing on it would
flatter the figures, so the slice comes out of ``train`` instead. It is stratified by each
image's most frequent box label (good images form their own stratum), so a rare defect type is
in both parts, and group-aware (``DetectionSample.group``), so near-duplicates stay together.

>>> fit_on, select_on = hold_out_boxes(dataset.select("train"), fraction=0.12, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from defectscope.data.boxes.dataset import DetectionSample
from defectscope.errors import ConfigError, DataError

GOOD_STRATUM = "<no boxes>"


def _stratum(members: Sequence[DetectionSample]) -> str:
    labels = Counter(b.label for s in members for b in s.boxes)
    return min(labels, key=lambda k: (-labels[k], k)) if labels else GOOD_STRATUM


def hold_out_boxes(samples: Sequence[DetectionSample], fraction: float, seed: int = 0
                   ) -> tuple[tuple[DetectionSample, ...], tuple[DetectionSample, ...]]:
    """Split ``samples`` into (kept, held out) with about ``fraction`` of each stratum held out
    (at least one group per stratum with two or more groups, at least one group in all). The result depends only on the
    samples' paths and groups and ``seed``, not on their order."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"a hold-out fraction is in (0, 1), not {fraction}")
    groups: dict[str, list[DetectionSample]] = defaultdict(list)
    for sample in samples:
        groups[sample.group if sample.group is not None else f"path:{sample.path}"].append(sample)
    if len(groups) < 2:
        raise DataError(f"cannot hold out images for model selection from {len(groups)} "
                        "group(s); give validation images or more training images")
    strata: dict[str, list[str]] = defaultdict(list)
    for key in sorted(groups):
        strata[_stratum(groups[key])].append(key)
    held: set[str] = set()
    for name in sorted(strata):
        keys = strata[name]
        rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
        order = [keys[i] for i in rng.permutation(len(keys))]
        n = int(round(fraction * len(keys)))
        n = min(len(keys) - 1, max(1, n)) if len(keys) >= 2 else 0
        held.update(order[:n])
    if not held:  # every stratum has a single group: hold out one group of all of them
        keys = sorted(groups)
        held.add(keys[int(np.random.default_rng(seed).integers(len(keys)))])
    kept = tuple(s for s in samples if _key(s) not in held)
    out = tuple(s for s in samples if _key(s) in held)
    return kept, out


def _key(sample: DetectionSample) -> str:
    return sample.group if sample.group is not None else f"path:{sample.path}"
