"""Find images of the same physical spot (re-shot, other lighting, small shift) and group them.

Why: a dataset often holds several pictures of one part: the same tile under six lighting
set-ups, a part photographed twice on the line. Split such images at random and the test split
holds near-copies of training images, so every test figure flatters the model. Magnetic Tile is
a real case: its 1,344 images are about 270 physical spots, mostly six exposures each.

How, in two stages so it scales:

1. Candidates: each image becomes a small texture thumbnail (grey, 96 x 96, band-passed so
   shading and pixel noise drop out and a shift of a pixel or two barely matters, its row and
   column means removed so the grinding or brushing lines every part shares do not count); each
   image's ``candidates`` most similar thumbnails are its candidate twins.
2. Proof: a candidate pair is a match when ORB keypoints matched between the two images agree on
   one geometric move (a RANSAC similarity transform) for at least ``min_inliers`` matches.
   Unrelated images give a handful of chance inliers (<= 10 on Magnetic Tile); re-shots of one
   spot give dozens to hundreds.

Matches are joined transitively (union-find) into groups; a pair already joined is not re-checked.
Cost: about 50 ms per image on one core, and about 50 kB of memory per image while it runs.

>>> result = find_near_duplicates(paths)                   # doctest: +SKIP
>>> result.n_grouped, len(result.groups())                 # doctest: +SKIP
(1302, 229)
>>> manifest, report = group_near_duplicates(manifest)     # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from tqdm import tqdm

from defectscope.data.image_io import load_image
from defectscope.data.images.manifest import Manifest
from defectscope.errors import ConfigError
from defectscope.values import Sample

THUMBNAIL = 96
BAND = (1.0, 4.0)  # thumbnail detail kept: between these Gaussian scales (pixels of 96)
MAX_KEYPOINT_SIDE = 1024  # keypoints are found on a copy at most this long (speed)
N_KEYPOINTS = 500
RANSAC_PIXELS = 4.0
_BLOCK = 1024  # rows of the similarity matrix computed at once (bounded memory)


@dataclass(frozen=True)
class NearDuplicateResult:
    """For each input image, the index of its group's first member (itself when alone)."""

    group_of: tuple[int, ...]
    n_pairs_checked: int
    n_matches: int

    def groups(self) -> list[list[int]]:
        """The groups of two or more images, each sorted, in order of their first member."""
        members: dict[int, list[int]] = defaultdict(list)
        for index, root in enumerate(self.group_of):
            members[root].append(index)
        return sorted((m for m in members.values() if len(m) > 1), key=lambda m: m[0])

    @property
    def n_grouped(self) -> int:
        return sum(len(g) for g in self.groups())


class _DisjointSets:
    """Union-find over 0..n-1; a set's root is its smallest member."""

    def __init__(self, n: int) -> None:
        self._parent = list(range(n))

    def root(self, i: int) -> int:
        while self._parent[i] != i:
            self._parent[i] = self._parent[self._parent[i]]
            i = self._parent[i]
        return i

    def join(self, i: int, j: int) -> None:
        ri, rj = self.root(i), self.root(j)
        if ri != rj:
            self._parent[max(ri, rj)] = min(ri, rj)

    def roots(self) -> list[int]:
        return [self.root(i) for i in range(len(self._parent))]


@dataclass(frozen=True)
class _Image:
    thumbnail: np.ndarray
    points: np.ndarray
    descriptors: np.ndarray | None


def _grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[..., 0]
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def texture_thumbnail(grey: np.ndarray) -> np.ndarray:
    """Unit-length texture signature of a grey image: shading and straight lines removed."""
    small = cv2.resize(grey.astype(np.float32), (THUMBNAIL, THUMBNAIL),
                       interpolation=cv2.INTER_AREA)
    detail = cv2.GaussianBlur(small, (0, 0), BAND[0]) - cv2.GaussianBlur(small, (0, 0), BAND[1])
    detail = detail - detail.mean(axis=0, keepdims=True) - detail.mean(axis=1, keepdims=True)
    vector = detail.ravel()
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _describe(image: np.ndarray, orb, clahe) -> _Image:
    grey = _grey(image)
    if grey.dtype != np.uint8:
        grey = cv2.normalize(grey, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    scale = MAX_KEYPOINT_SIDE / max(grey.shape)
    small = grey if scale >= 1 else cv2.resize(grey, None, fx=scale, fy=scale,
                                               interpolation=cv2.INTER_AREA)
    keypoints, descriptors = orb.detectAndCompute(clahe.apply(small), None)
    points = np.float32([k.pt for k in keypoints]).reshape(-1, 2)
    return _Image(texture_thumbnail(grey), points, descriptors)


def _candidate_pairs(thumbnails: np.ndarray, candidates: int) -> list[tuple[float, int, int]]:
    """(similarity, i, j) with i < j for each image's ``candidates`` nearest, most similar first."""
    n = len(thumbnails)
    k = min(candidates, n - 1)
    pairs: dict[tuple[int, int], float] = {}
    for start in range(0, n, _BLOCK):
        block = thumbnails[start:start + _BLOCK] @ thumbnails.T
        rows = np.arange(block.shape[0])
        block[rows, start + rows] = -np.inf  # not oneself
        nearest = np.argpartition(-block, k - 1, axis=1)[:, :k]
        for row, columns in enumerate(nearest):
            i = start + row
            for j in columns:
                key = (min(i, int(j)), max(i, int(j)))
                pairs[key] = float(block[row, j])
    return sorted(((s, i, j) for (i, j), s in pairs.items()), key=lambda p: (-p[0], p[1], p[2]))


def count_inliers(a: _Image, b: _Image, matcher) -> int:
    """Keypoint matches between two images that agree on one similarity transform."""
    if a.descriptors is None or b.descriptors is None:
        return 0
    if len(a.descriptors) < 3 or len(b.descriptors) < 3:
        return 0
    matches = matcher.match(a.descriptors, b.descriptors)
    if len(matches) < 3:
        return 0
    source = a.points[[m.queryIdx for m in matches]]
    target = b.points[[m.trainIdx for m in matches]]
    _, inliers = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC,
                                             ransacReprojThreshold=RANSAC_PIXELS)
    return 0 if inliers is None else int(inliers.sum())


def find_near_duplicates(
    images: Sequence[str | os.PathLike[str]] | Sequence[np.ndarray],
    *,
    loader: Callable[[object], np.ndarray] | None = None,
    candidates: int = 20,
    min_inliers: int = 20,
    progress: bool = True,
) -> NearDuplicateResult:
    """Group ``images`` (arrays, or anything ``loader`` turns into an RGB or grey array)."""
    if candidates < 1:
        raise ConfigError(f"candidates must be >= 1, not {candidates}")
    if min_inliers < 4:
        raise ConfigError(f"min_inliers must be >= 4 (chance alone gives a few), not {min_inliers}")
    load = loader or (lambda item: item)
    cv2.setRNGSeed(0)  # RANSAC samples: same input, same groups
    orb = cv2.ORB_create(nfeatures=N_KEYPOINTS)
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    described = [_describe(load(item), orb, clahe) for item in
                 tqdm(images, desc="describing images", unit="img", disable=not progress)]
    sets = _DisjointSets(len(described))
    checked = matched = 0
    if len(described) > 1:
        thumbnails = np.stack([d.thumbnail for d in described]).astype(np.float32)
        matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
        pairs = _candidate_pairs(thumbnails, candidates)
        for _, i, j in tqdm(pairs, desc="checking look-alikes", unit="pair", disable=not progress):
            if sets.root(i) == sets.root(j):
                continue
            checked += 1
            if count_inliers(described[i], described[j], matcher) >= min_inliers:
                matched += 1
                sets.join(i, j)
    group_of = sets.roots()
    first: dict[int, int] = {}
    for index, r in enumerate(group_of):
        first.setdefault(r, index)
    return NearDuplicateResult(tuple(first[r] for r in group_of), checked, matched)


@dataclass(frozen=True)
class GroupingReport:
    """What ``group_near_duplicates`` changed, in numbers a person can check."""

    n_images: int
    n_grouped: int
    n_groups: int
    largest: int
    mixed_labels: tuple[tuple[str, ...], ...]  # label sets of groups holding several labels
    n_pairs_checked: int

    def lines(self) -> list[str]:
        text = [f"near-duplicates: {self.n_grouped} of {self.n_images} images are re-shots of "
                f"another image; they form {self.n_groups} groups (largest {self.largest}), "
                "each kept in one split"]
        if self.mixed_labels:
            shown = "; ".join("+".join(m) for m in self.mixed_labels[:10])
            text.append(f"warning: {len(self.mixed_labels)} group(s) mix labels ({shown}): one "
                        "spot labelled differently in different images; check those labels")
        return text


def group_near_duplicates(
    manifest: Manifest, *, candidates: int = 20, min_inliers: int = 20, progress: bool = True
) -> tuple[Manifest, GroupingReport]:
    """The manifest with near-duplicate images sharing a ``group`` (existing groups are kept
    and merged where a re-shot spot joins two of them), and a report of what was found."""
    samples = list(manifest.samples)
    result = find_near_duplicates(
        [manifest.path_of(s) for s in samples], loader=load_image, candidates=candidates,
        min_inliers=min_inliers, progress=progress)
    components = _merge_with_existing_groups(samples, result.group_of)
    members: dict[int, list[int]] = defaultdict(list)
    for index, component in enumerate(components):
        members[component].append(index)
    new_samples = list(samples)
    mixed = []
    for component, indices in members.items():
        if len(indices) < 2:
            continue
        names = sorted({samples[i].group for i in indices if samples[i].group is not None})
        name = names[0] if len(names) == 1 else f"near-duplicates:{samples[indices[0]].path}"
        for i in indices:
            new_samples[i] = dataclasses.replace(samples[i], group=name)
        labels = tuple(sorted({samples[i].label for i in indices}))
        if len(labels) > 1:
            mixed.append(labels)
    dup_groups = result.groups()
    report = GroupingReport(
        n_images=len(samples), n_grouped=result.n_grouped, n_groups=len(dup_groups),
        largest=max((len(g) for g in dup_groups), default=1), mixed_labels=tuple(mixed),
        n_pairs_checked=result.n_pairs_checked)
    return manifest.with_samples(new_samples), report


def _merge_with_existing_groups(samples: Sequence[Sample], group_of: Sequence[int]) -> list[int]:
    """Component of each sample when both near-duplicate links and existing groups join samples."""
    sets = _DisjointSets(len(samples))
    first_of_group: dict[str, int] = {}
    for index, sample in enumerate(samples):
        sets.join(index, group_of[index])
        if sample.group is not None:
            sets.join(index, first_of_group.setdefault(sample.group, index))
    return sets.roots()


def cross_split_groups(manifest: Manifest, result: NearDuplicateResult) -> list[list[Sample]]:
    """The near-duplicate sets of ``manifest`` (in ``result``) whose images sit in 2+ splits."""
    samples = manifest.samples
    return [[samples[i] for i in group] for group in result.groups()
            if len({samples[i].split for i in group}) > 1]
