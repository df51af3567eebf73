"""Property-style and edge-case tests for defectscope.data.images.splits."""

import random
from collections import defaultdict

import pytest

from defectscope.data.images.manifest import Manifest
from defectscope.data.images.splits import cross_validation_splits, hold_out, split_manifest
from defectscope.errors import ConfigError, DataError
from defectscope.values import SPLITS, Sample


def random_manifest(seed: int, root="/data") -> Manifest:
    """Random labels, random group sizes (1-4), some samples without a group."""
    rng = random.Random(seed)
    samples = []
    for label, n_groups in (
        ("good", rng.randint(20, 40)),
        ("crack", rng.randint(5, 15)),
        ("dent", rng.randint(3, 8)),
    ):
        for g in range(n_groups):
            group = None if rng.random() < 0.3 else f"{label}-{g}"
            for k in range(rng.randint(1, 4) if group else 1):
                samples.append(
                    Sample(f"{label}/{g}_{k}.png", label, f"{len(samples):064x}", group=group)
                )
    return Manifest(root=root, samples=tuple(samples))


def group_key(sample):
    return sample.group if sample.group is not None else "path:" + sample.path


@pytest.mark.parametrize("seed", range(8))
def test_properties_on_random_manifests(seed):
    manifest = random_manifest(seed)
    fractions = (0.7, 0.15, 0.15)
    result = split_manifest(manifest, fractions, seed=seed)
    split = result.manifest
    assert split.parent_version == manifest.version_id
    assert all(s.split in SPLITS for s in split.samples)
    # no group straddles two splits
    splits_of = defaultdict(set)
    for sample in split.samples:
        splits_of[group_key(sample)].add(sample.split)
    assert all(len(v) == 1 for v in splits_of.values())
    # stratified: per label, each split is within one (largest) group of its target
    biggest = max(sum(1 for s in manifest.samples if group_key(s) == k) for k in splits_of)
    for per_split in split.counts().values():
        total = sum(per_split.values())
        for name, fraction in zip(SPLITS, fractions, strict=True):
            assert abs(per_split[name] - fraction * total) <= biggest
    # deterministic, independent of input order
    shuffled = manifest.with_samples(
        random.Random(99).sample(manifest.samples, len(manifest.samples))
    )
    again = split_manifest(shuffled, fractions, seed=seed).manifest
    assert again.version_id == split.version_id


def test_seed_changes_the_split():
    manifest = random_manifest(0)
    ids = {split_manifest(manifest, seed=s).manifest.version_id for s in range(4)}
    assert len(ids) > 1


def test_existing_splits_are_replaced_and_input_not_mutated():
    manifest = random_manifest(1)
    presplit = manifest.with_samples(
        s.__class__(**{**s.to_dict(), "split": "test"}) for s in manifest.samples
    )
    result = split_manifest(presplit).manifest
    assert result.counts()["good"]["train"] > 0
    assert all(s.split == "test" for s in presplit.samples)


def test_singleton_groups_hit_fractions_closely():
    samples = [Sample(f"{i}.png", "good", f"{i:064x}") for i in range(100)]
    counts = split_manifest(Manifest("/d", tuple(samples)), (0.6, 0.2, 0.2)).manifest.counts()[
        "good"
    ]
    assert (counts["train"], counts["val"], counts["test"]) == (60, 20, 20)


def test_tiny_class_goes_to_train_with_warning():
    samples = [Sample(f"g{i}.png", "good", f"{i:064x}") for i in range(30)]
    samples += [Sample(f"f{i}.png", "fray", f"{i + 99:064x}", group="lot") for i in range(5)]
    result = split_manifest(Manifest("/d", tuple(samples)))
    assert result.manifest.counts()["fray"]["train"] == 5
    assert (
        len(result.warnings) == 1
        and "'fray'" in result.warnings[0]
        and "Add images" in result.warnings[0]
    )


def test_zero_fraction_split_stays_empty_and_needs_fewer_groups():
    samples = [Sample(f"{i}.png", "crack", f"{i:064x}") for i in range(2)]
    result = split_manifest(Manifest("/d", tuple(samples)), (0.5, 0.5, 0.0))
    assert result.manifest.counts()["crack"] == {"train": 1, "val": 1, "test": 0, "unsplit": 0}
    assert result.warnings == ()


def test_three_groups_warn_when_a_split_stays_empty():
    samples = [Sample(f"{i}.png", "crack", f"{i:064x}") for i in range(3)]
    result = split_manifest(Manifest("/d", tuple(samples)), (0.7, 0.15, 0.15))
    assert any("no images in test" in w for w in result.warnings)


def test_mixed_label_group_follows_dominant_label():
    samples = [Sample(f"a{i}.png", "crack", f"{i:064x}", group="p1") for i in range(3)]
    samples.append(Sample("b.png", "good", "f" * 64, group="p1"))
    result = split_manifest(Manifest("/d", tuple(samples)))
    assert len({s.split for s in result.manifest.samples}) == 1


def test_empty_manifest_splits_to_empty():
    assert split_manifest(Manifest("/d", ())).manifest.samples == ()


@pytest.mark.parametrize(
    "fractions",
    [(0.5, 0.5), (0.7, 0.2, 0.2), (1.2, -0.1, -0.1), (0.5, float("nan"), 0.5), ("a", "b", "c")],
)
def test_bad_fractions(fractions):
    with pytest.raises(ConfigError, match="fractions"):
        split_manifest(random_manifest(0), fractions)


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_bad_seed(seed):
    with pytest.raises(ConfigError, match="seed"):
        split_manifest(random_manifest(0), seed=seed)


# --- hold_out -------------------------------------------------------------------------------


def mvtec_like(n_train=20) -> Manifest:
    samples = [
        Sample(f"train/good/{i}.png", "good", f"{i:064x}", split="train") for i in range(n_train)
    ]
    samples += [
        Sample(f"test/crack/{i}.png", "crack", f"{i + 500:064x}", split="test") for i in range(5)
    ]
    return Manifest("/d", tuple(samples))


def test_hold_out_moves_about_fraction():
    manifest = mvtec_like()
    moved = hold_out(manifest, "train", "val", fraction=0.2, seed=3, label="good")
    assert moved.counts()["good"] == {"train": 16, "val": 4, "test": 0, "unsplit": 0}
    assert moved.counts()["crack"]["test"] == 5
    assert moved.parent_version == manifest.version_id
    assert hold_out(manifest, fraction=0.2, seed=3, label="good") == moved  # deterministic


def test_hold_out_moves_at_least_one_and_zero_moves_none():
    manifest = mvtec_like(n_train=3)
    assert hold_out(manifest, fraction=0.01).counts()["good"]["val"] == 1
    assert hold_out(manifest, fraction=0.0).counts()["good"]["val"] == 0


def test_hold_out_keeps_groups_whole():
    samples = [
        Sample(f"{i}.png", "good", f"{i:064x}", group=f"g{i // 4}", split="train")
        for i in range(40)
    ]
    moved = hold_out(Manifest("/d", tuple(samples)), fraction=0.25, seed=1)
    for group in {s.group for s in moved.samples}:
        assert len({s.split for s in moved.samples if s.group == group}) == 1
    assert moved.counts()["good"]["val"] in (8, 12)


def test_hold_out_errors():
    manifest = mvtec_like()
    with pytest.raises(DataError, match="'val' has no samples"):
        hold_out(manifest, "val", "test")
    with pytest.raises(DataError, match="label 'dent'"):
        hold_out(manifest, label="dent")
    with pytest.raises(ConfigError):
        hold_out(manifest, "train", "train")
    with pytest.raises(ConfigError):
        hold_out(manifest, "train", "holdout")
    with pytest.raises(ConfigError):
        hold_out(manifest, fraction=1.5)
    unsplit = Manifest("/d", (Sample("a.png", "good", "0" * 64),))
    with pytest.raises(DataError, match="split the manifest first"):
        hold_out(unsplit)


@pytest.mark.parametrize("seed", range(4))
def test_cross_validation_tests_every_image_once_and_never_splits_a_group(seed):
    manifest = random_manifest(seed)
    folds, warnings = cross_validation_splits(manifest, folds=3 + seed, seed=seed)
    assert len(folds) == 3 + seed
    times_tested = defaultdict(int)
    for i, fold in enumerate(folds):
        assert fold.parent_version == manifest.version_id
        assert [s.path for s in fold.samples] == [s.path for s in manifest.samples]
        splits_of = defaultdict(set)
        for sample in fold.samples:
            splits_of[group_key(sample)].add(sample.split)
            times_tested[sample.path] += sample.split == "test"
        assert all(len(v) == 1 for v in splits_of.values())
        # the next fold tests what this one validated on
        following = folds[(i + 1) % len(folds)]
        assert ({s.path for s in fold.samples if s.split == "val"}
                == {s.path for s in following.samples if s.split == "test"})
    assert set(times_tested.values()) == {1} and len(times_tested) == len(manifest.samples)
    # stratified: per label, each fold's test part within one (largest) group of its share
    biggest = max(sum(1 for s in manifest.samples if group_key(s) == k) for k in
                  {group_key(s) for s in manifest.samples})
    for label in {s.label for s in manifest.samples}:
        total = sum(s.label == label for s in manifest.samples)
        n_groups = len({group_key(s) for s in manifest.samples if s.label == label})
        for fold in folds:
            tested = sum(s.label == label and s.split == "test" for s in fold.samples)
            if n_groups >= len(folds):
                assert abs(tested - total / len(folds)) <= biggest
    assert folds[0].samples == cross_validation_splits(manifest, 3 + seed, seed)[0][0].samples


def test_cross_validation_warns_for_a_label_with_fewer_groups_than_folds():
    samples = [Sample(f"good/{i}.png", "good", f"{i:064x}") for i in range(30)]
    samples += [Sample(f"dent/{i}.png", "dent", f"{100 + i:064x}", group="d")
                for i in range(3)]
    folds, warnings = cross_validation_splits(Manifest(root="/d", samples=tuple(samples)), 5)
    assert any("'dent' has only 1 group" in w and "4 of the 5 parts" in w for w in warnings)
    assert sum(s.label == "dent" and s.split == "test" for f in folds for s in f.samples) == 3


@pytest.mark.parametrize("folds", [2, 0, 2.5, True])
def test_cross_validation_needs_three_or_more_folds(folds):
    with pytest.raises(ConfigError, match="folds"):
        cross_validation_splits(random_manifest(0), folds)
