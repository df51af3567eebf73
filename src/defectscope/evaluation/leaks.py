"""Does the test split hold re-shots of images the model has seen? (``test --check-leaks``)

Exact copies never reach a test figure (evaluation matches images by content hash), but a re-shot
of the same spot under other lighting has a new hash and slips through. Such a test image is not
a new part: a model that remembers its twin scores it well, and the figure flatters the model.
This check finds them with ``data.near_duplicates`` and says how many there are.

>>> check = check_reshot_leaks(bundle.manifest(), manifest, "test")   # doctest: +SKIP
>>> check.line()                                                     # doctest: +SKIP
'leak check: 285 of 286 test images are re-shots of a spot the model trained or calibrated on'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from defectscope.data.image_io import load_image
from defectscope.data.images.manifest import Manifest
from defectscope.data.near_duplicates import find_near_duplicates
from defectscope.evaluation.run import select_for_evaluation

SEEN_SPLITS = ("train", "val")  # what a model learns from or is calibrated on


@dataclass(frozen=True)
class LeakCheck:
    """How many evaluated images have a re-shot among the images the model has seen."""

    split: str
    n_evaluated: int
    n_seen: int
    n_with_reshot: int
    n_seen_missing: int  # seen images whose files are gone (not compared)
    examples: tuple[tuple[str, str], ...]  # (evaluated image, its re-shot the model saw)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "examples": [list(pair) for pair in self.examples]}

    def line(self) -> str:
        text = (f"leak check: {self.n_with_reshot} of {self.n_evaluated} {self.split} images are "
                f"re-shots of a spot the model trained or calibrated on ({self.n_seen} seen "
                "images compared)")
        if self.n_with_reshot:
            text += ("; figures are flattered: re-split with `defectscope data split "
                     "--near-duplicates` and retrain")
        if self.n_seen_missing:
            text += f"; {self.n_seen_missing} seen image file(s) are missing and were not compared"
        return text


def check_reshot_leaks(bundle_manifest: Manifest | None, manifest: Manifest, split: str = "test",
                       *, min_inliers: int = 20, progress: bool = True,
                       max_examples: int = 10) -> LeakCheck:
    """Compare the evaluated images of ``manifest`` with the train and val images of the bundle's
    own manifest (``bundle_manifest``; without one, nothing was seen and nothing leaks). When
    ``split`` is ``"val"``, only train images count as seen."""
    evaluated = list(select_for_evaluation(bundle_manifest, manifest, split).samples)
    seen_paths, missing = [], 0
    for sample in bundle_manifest.samples if bundle_manifest is not None else ():
        if sample.split not in SEEN_SPLITS or sample.split == split:
            continue
        path = bundle_manifest.path_of(sample)
        if path.is_file():
            seen_paths.append(path)
        else:
            missing += 1
    if not seen_paths:
        return LeakCheck(split, len(evaluated), 0, 0, missing, ())
    evaluated_paths = [manifest.path_of(s) for s in evaluated]
    found = find_near_duplicates(evaluated_paths + seen_paths, loader=load_image,
                                 min_inliers=min_inliers, progress=progress)
    first_seen_of_group: dict[int, int] = {}
    for offset in range(len(seen_paths)):
        index = len(evaluated_paths) + offset
        first_seen_of_group.setdefault(found.group_of[index], offset)
    leaks = [(i, first_seen_of_group[found.group_of[i]]) for i in range(len(evaluated_paths))
             if found.group_of[i] in first_seen_of_group]
    examples = tuple((evaluated[i].path, str(seen_paths[j])) for i, j in leaks[:max_examples])
    return LeakCheck(split, len(evaluated), len(seen_paths), len(leaks), missing, examples)
