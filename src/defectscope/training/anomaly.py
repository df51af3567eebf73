"""Train an anomaly model on good images, calibrate its threshold on validation, save a bundle.

The split contract: ``train`` fits on the train split's good images only, calibrates on the
validation split, and never reads a test image. With the MVTec layout (train/good and test/), a
seeded, group-aware slice of train/good is held back as the validation split; a dataset without
splits gets a seeded, stratified, group-aware 70/15/15 split, recorded in the bundle's manifest.

>>> result = train_anomaly(manifest, "patchcore", out_dir="models/tile")  # doctest: +SKIP
>>> result.calibration.threshold  # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from tqdm import tqdm

from defectscope.bundle import Reference, save_bundle
from defectscope.data.manifest import Manifest
from defectscope.data.splits import hold_out, split_manifest
from defectscope.data.stream import load_verified, stream_images
from defectscope.errors import DataError
from defectscope.evaluation.thresholds import ThresholdCalibration, calibrate_threshold
from defectscope.models.registry import create_model
from defectscope.types import GOOD

N_REFERENCES = 4


@dataclass(frozen=True)
class TrainResult:
    model: Any
    manifest: Manifest
    calibration: ThresholdCalibration
    out_dir: Path
    fit_seconds: float
    messages: tuple[str, ...]


def prepare_splits(manifest: Manifest, val_fraction: float = 0.15, seed: int = 0
                   ) -> tuple[Manifest, list[str]]:
    """Make sure the manifest has train and val splits, without ever touching its test split."""
    messages: list[str] = []
    if any(sample.split is None for sample in manifest.samples):
        result = split_manifest(manifest, seed=seed)
        manifest = result.manifest
        messages += list(result.warnings)
        messages.append(f"split the dataset 70/15/15 with seed {seed}")
    if not manifest.select(split="val"):
        if len(manifest.select(split="train", good=True)) < 2:
            raise DataError("need at least 2 good training images to hold some back for "
                            "calibrating the threshold")
        manifest = hold_out(manifest, "train", "val", fraction=val_fraction, seed=seed, label=GOOD)
        held = len(manifest.select(split="val"))
        messages.append(f"held back {held} good training images (seed {seed}) to calibrate the "
                        "threshold")
    return manifest, messages


def _loader(manifest: Manifest):
    return lambda sample: load_verified(manifest.path_of(sample), sample.sha256)


def _score_split(model, manifest: Manifest, samples, desc: str, show: bool) -> np.ndarray:
    scores = []
    for _, image in tqdm(stream_images(samples, _loader(manifest)), total=len(samples),
                         desc=desc, disable=not show, unit="img"):
        scores.append(model.anomaly(image)[0])
    return np.asarray(scores, dtype=np.float64)


def train_anomaly(
    manifest: Manifest,
    model_name: str,
    out_dir: str | Path,
    *,
    options: Mapping[str, Any] | None = None,
    threshold_rule: str = "auto",
    threshold_target: float | None = None,
    val_fraction: float = 0.15,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = lambda message: None,
) -> TrainResult:
    """Fit on good train images, calibrate on val, write the bundle to ``out_dir``."""
    model = create_model(model_name, **dict(options or {}))  # bad names fail before any work
    manifest, messages = prepare_splits(manifest, val_fraction, seed)
    for message in messages:
        log(message)
    train = manifest.select(split="train", good=True)
    if not train:
        raise DataError("the train split has no good images; an anomaly model learns from good "
                        "images only")
    ignored = len(manifest.select(split="train", good=False))
    if ignored:
        log(f"{ignored} defective training images are not used: {model_name} learns from good "
            "images only")
    val = manifest.select(split="val")
    log(f"training {model_name} on {len(train)} good images; calibrating on {len(val)} "
        f"validation images ({sum(not s.is_good for s in val)} defective)")

    started = time.perf_counter()
    bar = tqdm(total=len(train), desc="fit", unit="img", disable=not progress)
    model.fit((image for _, image in stream_images(train, _loader(manifest))),
              progress=bar.update)
    bar.close()
    fit_seconds = time.perf_counter() - started

    scores = _score_split(model, manifest, val, "calibrate", progress)
    is_defect = np.array([not s.is_good for s in val], dtype=bool)
    calibration = calibrate_threshold(scores, is_defect, rule=threshold_rule,
                                      target=threshold_target)
    model.set_threshold(calibration.threshold, calibration.to_dict())
    log(f"threshold {calibration.threshold:.6g} by rule {calibration.rule}: false-reject rate "
        f"{calibration.achieved_false_reject_rate:.3f} on {calibration.n_good} good validation "
        f"images" + (f", recall {calibration.achieved_recall:.3f} on {calibration.n_defect} "
                     "defects" if calibration.achieved_recall is not None else ""))

    references = _references(model, manifest, val)
    metrics = {"fit_seconds": round(fit_seconds, 3), "n_train_images": len(train),
               "n_val_images": len(val)}
    if hasattr(model, "memory_bank_"):
        metrics["memory_bank_size"] = int(model.memory_bank_.shape[0])
    out = save_bundle(model, out_dir, manifest=manifest, metrics=metrics, references=references,
                      overwrite=overwrite)
    return TrainResult(model, manifest, calibration, out, fit_seconds, tuple(messages))


def _references(model, manifest: Manifest, val) -> list[Reference]:
    """A few validation images and their scores, stored so a reloaded model can be checked."""
    chosen = sorted(val, key=lambda s: s.path)[:N_REFERENCES]
    references = []
    for sample in chosen:
        image = load_verified(manifest.path_of(sample), sample.sha256)
        references.append(Reference(image, model.anomaly(image)[0], sample.path))
    return references
