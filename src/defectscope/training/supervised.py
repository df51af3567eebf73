"""Train a supervised model (classifier or segmenter) from a manifest and save a bundle.

The split contract: a dataset without splits (folder, YOLO) gets the seeded, stratified,
group-aware 70/15/15 split, recorded in the bundle's manifest. The model learns from the train
split, early-stops and calibrates its threshold on the validation split, and never reads a test
image; ``defectscope test`` later scores exactly the bundle's test split.

>>> result = train_supervised(manifest, "classifier", "models/neu")  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from tqdm import tqdm

from defectscope.bundle import save_bundle
from defectscope.data.image_io import load_mask
from defectscope.data.images.image_set import ImageSet
from defectscope.data.images.manifest import Manifest
from defectscope.data.images.splits import split_manifest
from defectscope.data.stream import load_verified
from defectscope.errors import DataError
from defectscope.evaluation.thresholds import calibrate_threshold
from defectscope.models.registry import create_model, model_class
from defectscope.models.supervised_base import SupervisedModel
from defectscope.training.anomaly import _references


@dataclass(frozen=True)
class SupervisedTrainResult:
    model: Any
    manifest: Manifest
    out_dir: Path
    fit_seconds: float
    messages: tuple[str, ...]


def is_supervised(model_name: str) -> bool:
    return issubclass(model_class(model_name), SupervisedModel)


def supervised_splits(manifest: Manifest, seed: int = 0) -> tuple[Manifest, list[str]]:
    """Give the manifest train/val/test splits with defects in train (split 70/15/15 if not)."""
    messages: list[str] = []
    unsplit = any(s.split is None for s in manifest.samples)
    no_defects_in_train = not manifest.select(split="train", good=False)
    if unsplit or no_defects_in_train or not manifest.select(split="val"):
        result = split_manifest(manifest, seed=seed)
        why = ("the dataset has no splits" if unsplit else
               "its train split has no defective images" if no_defects_in_train else
               "it has no validation split")
        messages += list(result.warnings)
        messages.append(f"split the dataset 70/15/15 (stratified, seed {seed}) because {why}")
        manifest = result.manifest
    counts = manifest.counts()
    for label, per_split in counts.items():
        if per_split["train"] == 0:
            raise DataError(f"class {label!r} has no training images after the split "
                            f"({per_split}); add images of {label!r} or remove the class")
        empty = [s for s in ("val", "test") if per_split[s] == 0]
        if empty:
            messages.append(f"warning: class {label!r} has no images in {', '.join(empty)}; its "
                            "figures there are missing: add images of it")
    return manifest, messages


def _load(manifest: Manifest, samples, masks: bool, desc: str, progress: bool):
    images, targets = [], []
    for sample in tqdm(samples, desc=desc, unit="img", disable=not progress):
        image = load_verified(manifest.path_of(sample), sample.sha256)
        images.append(image)
        if masks:
            path = manifest.mask_path_of(sample)
            targets.append(None if path is None else
                           load_mask(path, image.shape[:2], image_path=manifest.path_of(sample)))
        else:
            targets.append(sample.label)
    return images, targets


def _usable(samples, masks: bool, log) -> tuple:
    """For the segmenter: defect images without a mask cannot teach it where; leave them out."""
    if not masks:
        return tuple(samples)
    missing = [s for s in samples if not s.is_good and s.mask_path is None]
    if missing:
        log(f"warning: {len(missing)} defective images have no mask and are not used by the "
            f"segmenter (e.g. {missing[0].path}); add masks or train the classifier")
    return tuple(s for s in samples if s.is_good or s.mask_path is not None)


def train_supervised(
    manifest: Manifest,
    model_name: str,
    out_dir: str | Path,
    *,
    options: Mapping[str, Any] | None = None,
    threshold_rule: str = "auto",
    threshold_target: float | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = lambda message: None,
) -> SupervisedTrainResult:
    """Fit on the train split, early-stop and calibrate on val, write the bundle to ``out_dir``."""
    model = create_model(model_name, **dict(options or {}))
    masks = model_name == "segmenter"
    manifest, messages = supervised_splits(manifest, seed)
    for message in messages:
        log(message)
    train = _usable(manifest.select(split="train"), masks, log)
    val = _usable(manifest.select(split="val"), masks, log)
    log(f"training {model_name} on {len(train)} images ({dict(Counter(s.label for s in train))}),"
        f" validating on {len(val)}; the test split is not read")
    images, targets = _load(manifest, train, masks, "load train", progress)
    val_images, val_targets = _load(manifest, val, masks, "load val", progress)
    started = time.perf_counter()
    key = "masks" if masks else "labels"
    model.fit(ImageSet(images, **{key: targets}), ImageSet(val_images, **{key: val_targets}),
              progress=progress, log=log)
    fit_seconds = time.perf_counter() - started
    del images, targets

    scores = np.array([model.anomaly(image)[0] for image in val_images])
    is_defect = np.array([not s.is_good for s in val], dtype=bool)
    if is_defect.any() and (~is_defect).any():
        calibration = calibrate_threshold(scores, is_defect, rule=threshold_rule,
                                          target=threshold_target)
        model.set_threshold(calibration.threshold, calibration.to_dict())
        log(f"threshold {calibration.threshold:.6g} by rule {calibration.rule} on {len(val)} "
            "validation images")
    else:
        model.set_threshold(0.5, {"rule": "fixed", "threshold": 0.5,
                                  "note": "validation split lacks good or defective images"})
        log("threshold 0.5 (the validation split lacks good or defective images to calibrate)")
    metrics = {"fit_seconds": round(fit_seconds, 3), "n_train_images": len(train),
               "n_val_images": len(val), "best_val_metric": model.training_["best_metric"],
               "best_epoch": model.training_["best_epoch"],
               "epochs_run": model.training_["epochs_run"], "history": model.training_["history"]}
    extra = {"classes": list(getattr(model, "classes_", ()))}
    out = save_bundle(model, out_dir, manifest=manifest, metrics=metrics,
                      references=_references(model, manifest, val), extra=extra,
                      overwrite=overwrite)
    return SupervisedTrainResult(model, manifest, out, fit_seconds, tuple(messages))
