"""Train an anomaly model on good images, calibrate its threshold on validation, save a bundle.

The split contract: ``train`` fits on the train split's good images only, calibrates on the
validation split, and never reads a test image.

Self-tuning (``tune="auto"``, the default): synthetic defects are pasted into the held-back
validation goods (``tuning.synthetic``); a small, fixed set of candidate settings
(``tuning.search``) is fitted on a seeded subset of the training goods and the one that ranks
those defects best (with real validation defects, where there are any) is fitted on the whole
train split. When validation has no real defect the same synthetic defects calibrate the
threshold (rule ``synthetic_balanced``), so it is not simply placed above the highest good score;
with real validation defects (or ``--defects DIR``) rule ``auto`` is ``balanced`` over them. The
UNSURE band is sized from the same good and defect scores (``evaluation.thresholds``) unless the
model's ``unsure_band`` is set. With the MVTec layout (train/good and test/), a
seeded, group-aware slice of train/good is held back as the validation split; a dataset without
splits gets a seeded, stratified, group-aware 70/15/15 split, recorded in the bundle's manifest.

>>> result = train_anomaly(manifest, "patchcore", out_dir="models/tile")  # doctest: +SKIP
>>> result.calibration.threshold  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
from tqdm import tqdm

from defectscope.bundle import Reference, save_bundle
from defectscope.data.images.manifest import Manifest
from defectscope.data.images.splits import hold_out, split_manifest
from defectscope.data.image_io import load_mask
from defectscope.data.stream import Counted, load_verified, stream_images, until
from defectscope.errors import ConfigError, DataError
from defectscope.evaluation.thresholds import ThresholdCalibration, calibrate_threshold
from defectscope.memory import every as trim_every
from defectscope.models.registry import create_model
from defectscope.tuning.search import (TuningResult, anomaly_metrics, candidates_for, check_mode,
                                       tune as run_tuning)
from defectscope.tuning.synthetic import synthetic_defects
from defectscope.values import GOOD

if TYPE_CHECKING:
    from defectscope.distributed.training import ShardedFitConfig

N_REFERENCES = 4
TUNE_TRAIN_IMAGES = 100  # candidates are compared on at most this many training goods
DEFAULT_TUNE_BUDGET = 150.0  # seconds for comparing candidates (the final fit comes on top)


def n_synthetic_for(n_goods: int) -> int:
    """Synthetic defects for tuning and calibration: twice the held-back goods, 24 to 80."""
    return min(max(2 * n_goods, 24), 80)


@dataclass(frozen=True)
class TrainResult:
    model: Any
    manifest: Manifest
    calibration: ThresholdCalibration
    out_dir: Path
    fit_seconds: float
    messages: tuple[str, ...]
    tuning: TuningResult | None = None


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
    streamed = tqdm(stream_images(samples, _loader(manifest)), total=len(samples), desc=desc,
                    disable=not show, unit="img")
    return np.asarray(_scores(model, (image for _, image in streamed)), dtype=np.float64)


def _scores(model, images) -> list[float]:
    """Image scores of images as they come (the heap trimmed as it goes; see
    defectscope.memory)."""
    scores = []
    for image in images:
        scores.append(float(model.anomaly(image)[0]))
        trim_every(len(scores))
    return scores


def _load(manifest: Manifest, samples) -> list[np.ndarray]:
    return [image for _, image in stream_images(samples, _loader(manifest))]


def _load_defects(manifest: Manifest, samples) -> list[tuple[np.ndarray, np.ndarray | None]]:
    pairs = []
    for sample, image in zip(samples, _load(manifest, samples)):
        mask_path = manifest.mask_path_of(sample)
        mask = (load_mask(mask_path, image.shape[:2], image_path=manifest.path_of(sample))
                if mask_path else None)
        pairs.append((image, None if mask is None else mask > 0))
    return pairs


def _tune(model_name, options, manifest, train, val_goods, synthetic, real, budget, seed,
          log) -> TuningResult | None:
    """Compare the candidate settings on a seeded subset of the training goods."""
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(train), min(len(train), TUNE_TRAIN_IMAGES), replace=False))
    subset = _load(manifest, [train[i] for i in chosen])
    candidates = candidates_for(model_name, options, subset[0].shape)
    if not candidates or not val_goods or not (synthetic or real):
        return None
    log(f"tuning {model_name}: {len(candidates)} candidates on {len(subset)} training goods, "
        f"judged on {len(val_goods)} held-back goods, {len(synthetic)} synthetic and "
        f"{len(real)} real defects, budget {budget:g} s")

    def evaluate(candidate):
        model = create_model(model_name, **dict(candidate.options))
        model.fit(subset)
        return anomaly_metrics(model, val_goods, synthetic, real)

    started = time.perf_counter()
    best, rows, ran_out = run_tuning(evaluate, candidates, budget, log=log)
    result = TuningResult(best, tuple(rows), budget, ran_out, len(val_goods), len(real),
                          len(synthetic),
                          time.perf_counter() - started)
    log(f"tune: chose {best.name!r}" + (" (budget ran out: best so far)" if ran_out else ""))
    return result


def with_validation_defects(manifest: Manifest, defects: Manifest) -> Manifest:
    """``manifest`` plus ``defects``' samples (defect images only) in its validation split,
    their paths absolute where they lie outside its root. An image already in ``manifest`` (same
    content) is refused: it would be calibrated on and tested on, or trained on."""
    good = [s.path for s in defects.samples if s.is_good]
    if good:
        raise DataError(f"{defects.root}: the defect images must all be defects; "
                        f"{len(good)} are labelled good (e.g. {good[0]})")
    known = {s.sha256: s.path for s in manifest.samples}
    repeated = [(s.path, known[s.sha256]) for s in defects.samples if s.sha256 in known]
    if repeated:
        extra, there = repeated[0]
        raise DataError(f"{len(repeated)} defect image(s) are already in the dataset (e.g. "
                        f"{extra} is {there}); give defects that are not in it")
    added = [dataclasses.replace(
        s, path=str(defects.path_of(s)), split="val",
        mask_path=None if s.mask_path is None else str(defects.mask_path_of(s)))
        for s in defects.samples]
    return manifest.with_samples(manifest.samples + tuple(added))


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
    tune: str = "auto",
    tune_budget: float = DEFAULT_TUNE_BUDGET,
    max_seconds: float | None = None,
    sharded: "ShardedFitConfig | None" = None,
    defects: Manifest | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> TrainResult:
    """Tune (see the module docstring), fit on good train images, calibrate on val, write the
    bundle to ``out_dir``.

    ``max_seconds`` bounds the work: tuning gets at most half of it, and the fit stops reading
    training images when it is spent (fitting on those read so far, which the log and the
    bundle's ``n_train_images`` say; a sharded fit reads all of them). ``sharded``: the final fit
    runs in shards on Ray (``defectscope.distributed.training``; PatchCore and PaDiM), the bundle
    is the same. ``defects``: real defect images from elsewhere (``import_defects``), added to the
    validation split after it is made: they weigh in tuning and calibration, never in the fit."""
    options = dict(options or {})
    model = create_model(model_name, **options)  # bad names fail before any work
    if sharded is not None:
        from defectscope.distributed.training import shardable

        if not shardable(model):
            raise ConfigError(f"{model_name} cannot be fitted in shards on Ray; patchcore and "
                              "padim can (leave out --address/--shards)")
    check_mode(tune)
    if tune_budget <= 0:
        raise DataError(f"tune budget must be > 0 seconds, got {tune_budget}")
    if max_seconds is not None:
        if not max_seconds > 0:
            raise DataError(f"max_seconds must be > 0, got {max_seconds}")
        tune_budget = min(tune_budget, 0.5 * max_seconds)
    deadline = None if max_seconds is None else time.perf_counter() + max_seconds
    manifest, messages = prepare_splits(manifest, val_fraction, seed)
    if defects is not None:
        manifest = with_validation_defects(manifest, defects)
        messages = messages + [f"{len(defects.samples)} defect images from {defects.root} added "
                               "to validation (tuning and calibration only)"]
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
    val_good_samples = [s for s in val if s.is_good]
    real_defects = [s for s in val if not s.is_good]
    started = time.perf_counter()
    val_goods = _load(manifest, val_good_samples)
    # without real defects, synthetic ones weigh in the threshold (rule auto) and, whatever the
    # rule, size the UNSURE band and estimate the recall at the threshold
    threshold_uses_synthetic = not real_defects
    synthetic = (synthetic_defects(val_goods, n_synthetic_for(len(val_goods)), seed)
                 if val_goods and (tune == "auto" or threshold_uses_synthetic) else [])
    tuning = None
    if tune == "auto":
        tuning = _tune(model_name, options, manifest, train, val_goods, synthetic,
                       _load_defects(manifest, real_defects), tune_budget, seed, log)
        if tuning is not None:
            model = create_model(model_name, **dict(tuning.chosen.options))
    # the held-back goods are not held through the fit (calibration reads them again), the
    # synthetic defects only while they are needed: on bsdata's 1130 x 460 px images, 85 goods
    # and 80 synthetic defects are ~260 MB
    del val_goods
    if not threshold_uses_synthetic:
        synthetic = []
    log(f"training {model_name} on {len(train)} good images; calibrating on {len(val)} "
        f"validation images ({len(real_defects)} defective)"
        + (f" and {len(synthetic)} synthetic defects" if threshold_uses_synthetic and synthetic
           else ""))

    shard_summary = None
    if sharded is not None:
        from defectscope.distributed.training import fit_sharded

        shard_summary = fit_sharded(
            model, [(str(manifest.path_of(s)), s.sha256) for s in train], sharded, log=log)
        n_fitted = len(train)
    else:
        bar = tqdm(total=len(train), desc="fit", unit="img", disable=not progress)
        fitted = Counted(until(stream_images(train, _loader(manifest)), deadline))
        model.fit((image for _, image in fitted), progress=bar.update)
        bar.close()
        n_fitted = fitted.count
        if n_fitted < len(train):
            log(f"time limit: fitted on the first {n_fitted} of {len(train)} good training "
                "images (raise --max-minutes to use them all)")

    scores = _score_split(model, manifest, val, "calibrate", progress)
    synthetic_scores = (_scores(model, (image for image, _ in synthetic))
                        if threshold_uses_synthetic else [])
    del synthetic
    fit_seconds = time.perf_counter() - started
    is_defect = np.array([not s.is_good for s in val], dtype=bool)
    calibration = calibrate_threshold(scores, is_defect, rule=threshold_rule,
                                      target=threshold_target, synthetic_scores=synthetic_scores,
                                      auto_with_defects="balanced")
    model.set_threshold(calibration.threshold, calibration.to_dict())
    log(f"threshold {calibration.threshold:.6g} by rule {calibration.rule}: false-reject rate "
        f"{calibration.achieved_false_reject_rate:.3f} on {calibration.n_good} good validation "
        f"images" + (f", recall {calibration.achieved_recall:.3f} on {calibration.n_defect} "
                     "defects" if calibration.achieved_recall is not None else "")
        + (f", {calibration.synthetic_recall:.3f} of {calibration.n_synthetic} synthetic "
           "defects caught" if calibration.synthetic_recall is not None else ""))
    log(calibration.unsure_note if model.config.unsure_band is None
        else f"UNSURE band {model.config.unsure_band:g} x threshold, as configured")

    references = _references(model, manifest, val)
    metrics = {"fit_seconds": round(fit_seconds, 3), "n_train_images": n_fitted,
               "n_val_images": len(val)}
    if hasattr(model, "memory_bank_"):
        metrics["memory_bank_size"] = int(model.memory_bank_.shape[0])
    extra: dict[str, Any] = {"tuning": tuning.to_dict() if tuning is not None
                             else {"mode": tune},
                             "calibration_scores": calibration_scores(scores, is_defect,
                                                                      synthetic_scores)}
    if shard_summary is not None:
        extra["sharded_fit"] = {"shards": shard_summary.shards,
                                "shard_sizes": list(shard_summary.shard_sizes),
                                "oversample": sharded.oversample,
                                "seconds": round(shard_summary.seconds, 3)}
    out = save_bundle(model, out_dir, manifest=manifest, metrics=metrics, references=references,
                      extra=extra, overwrite=overwrite)
    return TrainResult(model, manifest, calibration, out, fit_seconds, tuple(messages), tuning)


def calibration_scores(scores, is_defect, synthetic_scores) -> dict[str, list[float]]:
    """The validation scores a threshold was calibrated on (good, real defect, synthetic
    defect), kept in the bundle so another rule can be weighed later without a refit."""
    scores, is_defect = np.asarray(scores, dtype=float), np.asarray(is_defect, dtype=bool)
    return {"good": scores[~is_defect].tolist(), "defect": scores[is_defect].tolist(),
            "synthetic": np.asarray(synthetic_scores, dtype=float).ravel().tolist()}


def _references(model, manifest: Manifest, val) -> list[Reference]:
    """A few validation images and their scores, stored so a reloaded model can be checked."""
    chosen = sorted(val, key=lambda s: s.path)[:N_REFERENCES]
    references = []
    for sample in chosen:
        image = load_verified(manifest.path_of(sample), sample.sha256)
        references.append(Reference(image, model.anomaly(image)[0], sample.path))
    return references
