"""Score a dataset split with a loaded bundle and turn the results into a report.

The bundle's own manifest decides which images are test images: an image the model trained or
calibrated on (matched by content hash, wherever it now lives) is never scored as a test image.

>>> report, records = evaluate_bundle(bundle, manifest, split="test")  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from tqdm import tqdm

from defectscope.data.image_io import load_mask
from defectscope.data.images.manifest import Manifest
from defectscope.data.stream import load_verified, stream_images
from defectscope.errors import DataError
from defectscope.evaluation.report import ImageRecord, build_report
from defectscope.values import Sample


@dataclass(frozen=True)
class Selection:
    samples: tuple[Sample, ...]
    left_out: int  # images the bundle used for training or calibration
    unsplit: bool = False  # the dataset had no splits: every image the bundle has not seen


UNSPLIT_NOTE = ("the dataset has no splits: every image the model did not train or calibrate "
                "on was scored")


def select_for_evaluation(bundle_manifest: Manifest | None, manifest: Manifest, split: str
                          ) -> Selection:
    """Samples of ``manifest`` in ``split``, where the bundle's record of splits has the last word.

    A dataset without any split of its own and none recorded by the bundle (a new batch imported
    from a folder) is scored whole, less the images the bundle trained or calibrated on
    (``unsplit``), when ``split`` is ``test``.
    """
    known = {s.sha256: s.split for s in bundle_manifest.samples} if bundle_manifest else {}
    recorded_test = any(known.get(s.sha256, s.split) == split for s in manifest.samples)
    if (split == "test" and not recorded_test
            and all(sample.split is None for sample in manifest.samples)):
        seen = {sha for sha, recorded in known.items() if recorded in ("train", "val")}
        chosen = tuple(s for s in manifest.samples if s.sha256 not in seen)
        if not chosen:
            raise DataError(f"{manifest.root}: every image has been used to train or calibrate "
                            "this model; nothing unseen is left to test on")
        return Selection(chosen, len(manifest.samples) - len(chosen), unsplit=True)
    chosen, left_out = [], 0
    for sample in manifest.samples:
        recorded = known.get(sample.sha256, sample.split)
        if recorded == split:
            chosen.append(sample)
        elif sample.split == split:
            left_out += 1
    if not chosen:
        raise DataError(f"no images in the {split!r} split of {manifest.root}; the bundle's "
                        "manifest decides the split of images it has seen")
    return Selection(tuple(chosen), left_out)


def score_samples(model, manifest: Manifest, samples: Sequence[Sample], progress: bool = True
                  ) -> tuple[list[ImageRecord], list[float]]:
    """One ``ImageRecord`` per sample (anomaly map and mask, where one exists) and the model's
    milliseconds per image, from decoded image to verdict."""
    records, milliseconds = [], []
    paths = [manifest.path_of(s) for s in samples]
    stream = stream_images(range(len(samples)),
                           loader=lambda i: load_verified(paths[i], samples[i].sha256))
    for index, image in tqdm(stream, total=len(samples), desc="test", unit="img",
                             disable=not progress):
        sample = samples[index]
        result = model.predict(image)
        milliseconds.append(sum(result.timings.values()))
        mask_path = manifest.mask_path_of(sample)
        mask = load_mask(mask_path, image.shape[:2], image_path=paths[index]) if mask_path else None
        records.append(ImageRecord(path=str(paths[index]), label=sample.label,
                                   score=result.score, verdict=result.verdict.value,
                                   anomaly_map=result.anomaly_map, mask=mask))
    return records, milliseconds


def evaluate_bundle(bundle, manifest: Manifest, split: str = "test", progress: bool = True
                    ) -> tuple[dict, list[ImageRecord]]:
    """The report for one split, with the bundle's identity and threshold record in it."""
    selection = select_for_evaluation(bundle.manifest(), manifest, split)
    records, milliseconds = score_samples(bundle.model, manifest, selection.samples, progress)
    extra = {
        "model": bundle.info["model"]["name"],
        "model_version": bundle.model_version,
        "model_path": str(bundle.path),
        "trained_on_dataset_version": bundle.dataset_version,
        "evaluated_dataset_version": manifest.version_id,
        "split": "all unseen (no splits)" if selection.unsplit else split,
        "n_left_out_seen_in_training": selection.left_out,
        "notes": [UNSPLIT_NOTE] if selection.unsplit else [],
        "calibration": bundle.info.get("calibration", {}),
        "unsure_band": bundle.info.get("unsure_band"),
        "tuning": bundle.info.get("tuning", {}),
        "ms_per_image_median": float(np.median(milliseconds)),
        "ms_per_image_p95": float(np.percentile(milliseconds, 95)),
    }
    report = build_report(records, bundle.model.threshold, extra=extra)
    return report, records
