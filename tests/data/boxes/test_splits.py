"""Group-aware, seeded splits of detection datasets."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from defectscope.data.boxes.dataset import Box, DetectionDataset, DetectionSample
from defectscope.data.boxes.splits import split_detection
from defectscope.errors import ConfigError, DataError


def dataset(group_sizes: dict[str | None, int]) -> DetectionDataset:
    samples = []
    for group, size in group_sizes.items():
        for i in range(size):
            samples.append(DetectionSample(path=f"{group}/{i}.png", sha256="0" * 64, width=8,
                                           height=8, boxes=(Box(0, 0, 2, 2, "spur"),),
                                           group=group))
    return DetectionDataset(root=Path("/data"), classes=("spur",), samples=tuple(samples))


DEEPPCB_GROUPS = {"group00041": 200, "group13000": 198, "group20085": 291, "group44000": 49,
                  "group50600": 50, "group77000": 100, "group92000": 111}


def splits_of_groups(result: DetectionDataset) -> dict[str, set[str]]:
    found = defaultdict(set)
    for sample in result.samples:
        found[sample.group].add(sample.split)
    return found


def test_deeppcb_like_80_20_by_group_is_deterministic():
    data = dataset(DEEPPCB_GROUPS)
    result = split_detection(data, fractions=(0.8, 0.2), seed=0, names=("train", "test"))
    assert all(len(s) == 1 for s in splits_of_groups(result).values())
    sizes = {n: len(result.select(n)) for n in ("train", "test")}
    assert sizes == {"train": 799, "test": 200}
    again = split_detection(dataset(dict(reversed(DEEPPCB_GROUPS.items()))), fractions=(0.8, 0.2),
                            seed=0, names=("train", "test"))
    assert {s.path: s.split for s in again.samples} == {s.path: s.split for s in result.samples}
    assert result.source["split"] == {"fractions": [0.8, 0.2], "seed": 0,
                                      "names": ["train", "test"], "by": "group"}


def test_default_three_way_split_is_close_and_samples_without_group_are_their_own():
    data = dataset({None: 1} | {f"g{i}": 5 for i in range(40)})
    data = data.with_samples(
        list(data.samples)
        + [DetectionSample(path=f"loose/{i}.png", sha256="0" * 64, width=8, height=8)
           for i in range(20)])
    result = split_detection(data, seed=3)
    sizes = {n: len(result.select(n)) for n in ("train", "val", "test")}
    total = len(data.samples)
    assert abs(sizes["train"] - 0.7 * total) <= 5 and abs(sizes["test"] - 0.15 * total) <= 5
    assert all(len(s) == 1 for g, s in splits_of_groups(result).items() if g is not None)
    assert split_detection(data, seed=4).samples != result.samples


def test_an_empty_split_is_an_error():
    with pytest.raises(DataError, match="would be empty: 1 group"):
        split_detection(dataset({"only": 10}), fractions=(0.8, 0.2), names=("train", "test"))


@pytest.mark.parametrize("kwargs, message", [
    ({"fractions": (0.5, 0.6)}, "one fraction per split"),
    ({"fractions": (0.5, 0.6), "names": ("train", "test")}, "sum to 1"),
    ({"fractions": (0.5, 0.5), "names": ("train", "holdout")}, "among"),
    ({"seed": -1}, "seed"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        split_detection(dataset({"a": 3, "b": 3, "c": 3}), **kwargs)
