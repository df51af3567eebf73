"""A trained model on disk: a folder anyone can inspect, that cannot silently change.

Layout of a bundle folder::

    bundle.json            model name and config, preprocessing, threshold and its calibration
                           record (anomaly models: with the validation scores it was calibrated
                           on, ``calibration_scores``), dataset version, backbone weight hash,
                           library version, metrics, reference scores, and the sha256 of every
                           other file
    tensors.safetensors    every learned tensor (backbone trunk included): no pickle anywhere
    manifest.json          the dataset manifest the model was trained from, with its splits
    references/*.png       a few images and the scores the trained model gave them, so an
                           exported or reloaded model can prove it still scores the same (for
                           the reference model each with the template it was compared with,
                           NN_template.png)

``save_bundle`` writes into a temporary folder and renames it into place, so a failed save never
leaves a partial bundle. ``load_bundle`` refuses files whose hashes changed and bundles written by
a newer format.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from defectscope import __version__
from defectscope.data.hashing import sha256_file
from defectscope.errors import BundleError, DefectscopeError
from defectscope.fileio import staged_folder

FORMAT = "defectscope-bundle"
FORMAT_VERSION = 1
BUNDLE_JSON = "bundle.json"
TENSORS = "tensors.safetensors"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Reference:
    """An image stored in the bundle with the score the trained model gave it (RGB uint8).

    ``template`` is the defect-free template the image was scored against, for a model that
    compares each part with one (reference); None for every other model.
    """

    image: np.ndarray
    score: float
    source: str = ""
    template: np.ndarray | None = None


@dataclass
class Bundle:
    """A loaded bundle: the ready model plus everything ``bundle.json`` records."""

    path: Path
    model: Any
    info: dict[str, Any]
    references: list[Reference] = field(default_factory=list)

    @property
    def dataset_version(self) -> str | None:
        return self.info.get("dataset", {}).get("version_id")

    @property
    def model_version(self) -> str:
        """A short id of this exact bundle: the hash of its tensors."""
        return self.info["files"][TENSORS][:12]

    def manifest(self):
        """The dataset the model was trained from: a ``Manifest``, or a ``DetectionDataset`` for
        the box-finding models (the file says which)."""
        from defectscope.data.boxes.dataset import DetectionDataset
        from defectscope.data.images.manifest import Manifest

        path = self.path / MANIFEST
        if not path.is_file():
            return None
        if self.info.get("task") == "detection":
            return DetectionDataset.load(path)
        return Manifest.load(path)


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise BundleError(f"{path}: could not encode reference image")
    path.write_bytes(encoded.tobytes())


def save_bundle(
    model,
    model_dir: str | os.PathLike[str],
    *,
    manifest=None,
    metrics: Mapping[str, Any] | None = None,
    references: Sequence[Reference] = (),
    extra: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` (fitted, with a threshold) as a bundle folder; returns its path."""
    from safetensors.numpy import save_file

    model_dir = Path(model_dir)
    if model.threshold is None:
        raise BundleError("the model has no threshold; calibrate it before saving")
    if model_dir.exists() and (not model_dir.is_dir() or any(model_dir.iterdir())):
        if not overwrite:
            raise BundleError(f"{model_dir}: already exists and is not empty; choose another "
                              "--out or remove it")
    with staged_folder(model_dir) as staging:
        save_file({k: np.ascontiguousarray(v) for k, v in model.arrays().items()},
                  str(staging / TENSORS))
        files = [TENSORS]
        if manifest is not None:
            manifest.save(staging / MANIFEST)
            files.append(MANIFEST)
        reference_rows = []
        if references:
            (staging / "references").mkdir()
        for i, reference in enumerate(references):
            name = f"references/{i:02d}.png"
            _write_png(staging / name, reference.image)
            files.append(name)
            row = {"file": name, "score": reference.score, "source": reference.source}
            if reference.template is not None:
                row["template"] = f"references/{i:02d}_template.png"
                _write_png(staging / row["template"], reference.template)
                files.append(row["template"])
            reference_rows.append(row)
        source = model.weights_source_
        info = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "library_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "model": {"name": model.name, "config": model.config.to_dict()},
            "preprocess": model.preprocess_config.to_dict(),
            "weights": {"backbone": source.backbone, "origin": source.origin, "sha256": source.sha256},
            "threshold": model.threshold,
            "unsure_band": model.unsure_band,
            "calibration": dict(model.calibration_ or {}),
            "n_train_images": int(model.n_train_images_),
            "dataset": ({"version_id": manifest.version_id, "name": manifest.name}
                        if manifest is not None else {}),
            "metrics": dict(metrics or {}),
            "references": reference_rows,
            **dict(extra or {}),
            "files": {name: sha256_file(staging / name) for name in files},
        }
        (staging / BUNDLE_JSON).write_text(json.dumps(info, indent=2, default=_json_default))
    return model_dir


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_bundle_info(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``bundle.json`` checked for format and version, and every listed file for its hash."""
    model_dir = Path(model_dir)
    path = model_dir / BUNDLE_JSON
    if not model_dir.is_dir():
        raise BundleError(f"{model_dir}: no such model folder (train one with defectscope train)")
    if not path.is_file():
        raise BundleError(f"{model_dir}: not a defectscope model folder ({BUNDLE_JSON} missing)")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise BundleError(f"{path}: not a defectscope bundle")
    version = info.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BundleError(
            f"{model_dir}: bundle format {version} was written by defectscope "
            f"{info.get('library_version', '?')}, newer than this one ({__version__}, format "
            f"{FORMAT_VERSION}); upgrade defectscope to load it"
        )
    files = info.get("files")
    if not isinstance(files, dict) or TENSORS not in files:
        raise BundleError(f"{path}: lists no tensor file; the bundle is incomplete")
    for name, expected in files.items():
        file = model_dir / name
        if not file.is_file():
            raise BundleError(f"{file}: missing from the bundle; copy the whole model folder")
        if sha256_file(file) != expected:
            raise BundleError(f"{file}: content changed since the bundle was written (sha256 "
                              "mismatch); the model folder was modified or corrupted")
    return info


def load_bundle(model_dir: str | os.PathLike[str]) -> Bundle:
    """Load a bundle into a ready model (threshold set), after checking every file's hash."""
    from safetensors.numpy import load_file

    from defectscope.models.backbones import WeightsSource
    from defectscope.models.registry import create_model, model_class

    model_dir = Path(model_dir)
    info = read_bundle_info(model_dir)
    try:
        config = dict(info["model"]["config"])
        config_class = getattr(model_class(info["model"]["name"]), "config_class", None)
        config_fields = getattr(config_class, "__dataclass_fields__", {})
        # Bundles written before per-image normalisation existed were trained without it.
        if "normalise" in config_fields:
            config.setdefault("normalise", "none")
        # ...and before preprocessing steps existed, without automatic tiling of large images.
        if "steps" in config_fields:
            config.setdefault("steps", [{"name": "tile", "mode": "off"}])
        # ...and before PatchCore's second scale existed, with one scale.
        if "context_downscale" in config_fields:
            config.setdefault("context_downscale", 1)
        # ...and before the reference comparison's test-time averaging, without it.
        for option in ("test_flips", "test_scales"):
            if option in config_fields:
                config.setdefault(option, False)
        model = create_model(info["model"]["name"], **config)
        arrays = load_file(str(model_dir / TENSORS))
        weights = WeightsSource(**info["weights"])
        model.restore(arrays, weights, int(info["n_train_images"]))
        model.set_threshold(float(info["threshold"]), info.get("calibration"))
    except DefectscopeError as error:
        raise BundleError(f"{model_dir}: cannot rebuild the model: {error}") from error
    except (KeyError, TypeError, ValueError) as error:
        raise BundleError(f"{model_dir}: bundle.json is incomplete or invalid ({error!r})") from error
    return Bundle(path=model_dir, model=model, info=info,
                  references=read_reference_images(model_dir, info))


def _read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise BundleError(f"{path}: unreadable reference image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_reference_images(model_dir: str | os.PathLike[str],
                          info: Mapping[str, Any]) -> list[Reference]:
    """The reference images ``bundle.json`` lists (RGB, with their templates where stored).

    numpy and OpenCV only: the torch-free runtime re-scores them with this too.
    """
    model_dir = Path(model_dir)
    references = []
    for row in info.get("references") or []:
        template = row.get("template")
        references.append(Reference(_read_png(model_dir / row["file"]), float(row["score"]),
                                    row.get("source") or "",
                                    None if template is None else _read_png(model_dir / template)))
    return references


def score_reference(model, reference: Reference) -> float:
    """``model``'s score of a reference image, against its template when it has one (the torch
    model or the runtime: both take ``anomaly(image[, template])``)."""
    if reference.template is None:
        return float(model.anomaly(reference.image)[0])
    return float(model.anomaly(reference.image, reference.template)[0])


def check_references(bundle: Bundle, tolerance: float = 1e-4) -> list[str]:
    """Re-score the bundle's reference images; return a line per image whose score moved.

    ``tolerance`` is relative to the threshold, so it means the same for every model.
    """
    problems = []
    limit = tolerance * max(abs(bundle.model.threshold or 1.0), 1e-12)
    for reference in bundle.references:
        score = score_reference(bundle.model, reference)
        if not abs(score - reference.score) <= limit:
            problems.append(f"{reference.source or 'reference'}: expected {reference.score:.6g}, "
                            f"got {score:.6g}")
    return problems
