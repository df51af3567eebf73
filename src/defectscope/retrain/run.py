"""``retrain``: train a candidate on a new dataset version, gate it against the current model,
log the decision, and promote the candidate only when the gate passes.

The candidate is trained with the current bundle's model name, config and threshold rule, so
the only thing that changes is the data. Both models are scored on the new version's test split,
which must contain the current model's whole test split (the fixed split of the version they
share) plus the reviewed parts exported into test; the gate is ``retrain.gate.gate``.

>>> outcome = retrain("datasets/ab12/manifest.json", "models/current", "candidates/c1")  # doctest: +SKIP
>>> outcome.decision.promote, outcome.release                                          # doctest: +SKIP
(True, PosixPath('models/releases/3f2a9c0d51e8'))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from defectscope.bundle import load_bundle
from defectscope.data.images.manifest import Manifest
from defectscope.data.stream import load_verified
from defectscope.errors import DataError
from defectscope.retrain.audit import append_audit
from defectscope.retrain.gate import GateConfig, GateDecision, figures, gate
from defectscope.retrain.promote import promote
from defectscope.values import Sample

AUDIT_LOG = "audit.jsonl"


@dataclass(frozen=True)
class RetrainConfig:
    """``audit_log`` defaults to ``audit.jsonl`` beside the current model folder;
    ``claimed_types`` are defect types the new version must contain (the reviewed ones always
    are claimed); ``promote=False`` decides and logs but never swaps the model."""

    gate: GateConfig = GateConfig()
    promote: bool = True
    audit_log: Path | None = None
    claimed_types: tuple[str, ...] = ()
    seed: int = 0


@dataclass(frozen=True)
class RetrainOutcome:
    decision: GateDecision
    candidate_dir: Path
    release: Path | None
    audit: dict


def check_claimed_types(manifest: Manifest, claimed: tuple[str, ...] = ()) -> None:
    """Every defect type the version claims (reviewed types and ``claimed``) has samples."""
    review = manifest.source.get("review", {}) if isinstance(manifest.source, dict) else {}
    wanted = set(claimed) | set(review.get("defect_types", []))
    missing = sorted(t for t in wanted if not manifest.select(label=t))
    if missing:
        raise DataError(f"version {manifest.version_id} claims defect types it has no samples of: "
                        f"{', '.join(missing)} (it has {', '.join(manifest.defect_types) or 'none'})")


def gate_samples(manifest: Manifest, current: Manifest | None) -> tuple[Sample, ...]:
    """The new version's test split, after checking it holds the current model's test split."""
    if current is None:
        raise DataError("the current model has no manifest.json, so the test split the two "
                        "models share is unknown; retrain needs a bundle written by train")
    test = manifest.select(split="test")
    held = {s.sha256 for s in test}
    lost = [s.path for s in current.select(split="test") if s.sha256 not in held]
    if lost:
        raise DataError(f"version {manifest.version_id} does not contain the current model's "
                        f"test split ({len(lost)} images missing or moved, e.g. {lost[0]}); "
                        "build it with `defectscope review export` from the current version")
    trained = {s.sha256 for s in current.samples if s.split in ("train", "val")}
    return tuple(s for s in test if s.sha256 not in trained)


def _scores(model, manifest: Manifest, samples) -> np.ndarray:
    return np.array([model.anomaly(load_verified(manifest.path_of(s), s.sha256))[0]
                     for s in samples], dtype=np.float64)


def retrain(manifest_path: str | os.PathLike[str], current_dir: str | os.PathLike[str],
            out_dir: str | os.PathLike[str], config: RetrainConfig = RetrainConfig(), *,
            trainer: Callable | None = None, log: Callable[[str], None] = lambda m: None
            ) -> RetrainOutcome:
    """Train, gate, audit, and (when the gate passes and ``config.promote``) promote."""
    from defectscope.training.anomaly import train_anomaly  # torch: only when retraining

    manifest = Manifest.load(manifest_path)
    current_dir, out_dir = Path(current_dir), Path(out_dir)
    current = load_bundle(current_dir)
    check_claimed_types(manifest, config.claimed_types)
    current_manifest = current.manifest()
    samples = gate_samples(manifest, current_manifest)
    old = {s.sha256 for s in current_manifest.samples}
    is_defect = [not s.is_good for s in samples]
    labels = [s.label for s in samples]
    calibration = current.info.get("calibration") or {}
    log(f"training a {current.info['model']['name']} candidate on version "
        f"{manifest.version_id} (parent {manifest.parent_version})")
    (trainer or train_anomaly)(
        manifest, current.info["model"]["name"], out_dir, options=current.info["model"]["config"],
        threshold_rule=calibration.get("rule", "auto"), threshold_target=calibration.get("target"),
        seed=config.seed, progress=False, log=log)
    candidate = load_bundle(out_dir)
    log(f"scoring both models on {len(samples)} gate images ({sum(is_defect)} defective)")
    now = figures(_scores(current.model, manifest, samples), is_defect,
                  current.model.threshold, labels)
    new = figures(_scores(candidate.model, manifest, samples), is_defect,
                  candidate.model.threshold, labels)
    decision = gate(now, new, config.gate)
    release = None
    if decision.promote and config.promote:
        release = promote(out_dir, current_dir)
    verdict = ("promoted" if release else "passed (not promoted: dry run)") \
        if decision.promote else "rejected"
    record = append_audit(config.audit_log or current_dir.parent / AUDIT_LOG, {
        "decision": verdict, **decision.to_dict(),
        "dataset_version": manifest.version_id, "parent_version": manifest.parent_version,
        "current_model": current.model_version, "candidate_model": candidate.model_version,
        "current_dir": str(current_dir), "candidate_dir": str(out_dir),
        "release": None if release is None else str(release), "n_gate_images": len(samples),
        "n_new_in_gate": sum(s.sha256 not in old for s in samples)})
    return RetrainOutcome(decision, out_dir, release, record)
