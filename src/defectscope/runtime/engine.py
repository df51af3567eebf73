"""The torch-free inference engine: the exported network (onnxruntime, or OpenVINO on its IR;
``defectscope.runtime.backends``) + the shared numpy scoring.

An edge box installs numpy, OpenCV, onnxruntime, faiss and safetensors, copies a bundle folder
with its ``onnx/`` export (``defectscope export``), and inspects parts without torch. The engine
never trusts the export blindly: ``load`` checks every bundle file's hash and the ONNX file's,
then re-scores the bundle's reference images and refuses to start if any score moved by more than
the export's tolerance (by default 1e-3 of the threshold).

``RuntimeModel`` is one class for every model family: the backend's session as a ``Forward``
and the family's scoring head (``defectscope.scoring.families``), built from the bundle's arrays:
the very head class the torch model scores with (``defectscope.scoring.predictor``). The parity
checks are ``defectscope.runtime.parity``'s.

>>> model = RuntimeModel.load("models/tiles")   # doctest: +SKIP
>>> model.predict(image).verdict                # doctest: +SKIP
<Verdict.OK: 'OK'>
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from defectscope.bundle import TENSORS, read_bundle_info, score_reference
from defectscope.data.hashing import sha256_file
from defectscope.errors import BundleError, DefectscopeError
from defectscope.preprocess import PreprocessConfig, Preprocessor
from defectscope.runtime.backends import IR_FILE, IR_WEIGHTS, check_backend, make_backend
from defectscope.runtime.parity import (  # noqa: F401 (ParityError, ReferenceCheck: re-exported)
    ParityError,
    ReferenceCheck,
    check_export_detections,
    describe,
    read_references,
)
from defectscope.scoring.box_heads import BoxHead, DetectorHead
from defectscope.scoring.families import BOX_MODELS, HEADS, head_class
from defectscope.scoring.heads import INPUT_NAME, ClassifierHead, Forward, Head, Timings
from defectscope.scoring.predictor import Predictor
from defectscope.values import Detection, InspectionResult

ONNX_DIR = "onnx"
ONNX_FILE = "model.onnx"
EXPORT_JSON = "export.json"
DEFAULT_TOLERANCE = 1e-3  # |runtime score - recorded score| <= tolerance * threshold
SUPPORTED_MODELS = tuple(HEADS)
BACKEND_LABELS = {"onnxruntime": "ONNX runtime", "openvino": "OpenVINO runtime"}
NETWORK_PREFIXES = ("backbone.", "net.")  # bundle arrays that live in the ONNX file instead


def learned_arrays(model_dir: Path) -> dict[str, np.ndarray]:
    """The arrays of ``tensors.safetensors`` but the network's (those live in the ONNX file)."""
    from safetensors import safe_open

    with safe_open(str(model_dir / TENSORS), framework="numpy") as file:
        return {key: file.get_tensor(key) for key in file.keys()
                if not key.startswith(NETWORK_PREFIXES)}


def backend_forward(session, outputs: Sequence[str]) -> Forward:
    """A backend's session (onnxruntime's, or ``OpenVINOSession``: the same ``run`` call) as the
    ``Forward`` a head takes: a batch -> the named outputs, in the head's order."""
    names = list(outputs)
    return lambda batch: session.run(names, {INPUT_NAME: batch})


class RuntimeModel:
    """A bundle scored by an exported network + the family's numpy head. Build with ``load``
    (checks hashes and parity) or ``from_onnx`` (unchecked, what ``export`` builds on)."""

    def __init__(self, model_dir: Path, info: dict[str, Any], session, preprocessor: Preprocessor,
                 head: Head, tolerance: float = DEFAULT_TOLERANCE,
                 backend: str = "onnxruntime") -> None:
        self.model_dir = model_dir
        self.info = info
        self.name: str = info["model"]["name"]
        self.config: dict[str, Any] = dict(info["model"]["config"])
        self._session = session
        self.backend = backend  # what runs the network
        self.preprocessor = preprocessor
        self.head = head
        self.forward = backend_forward(session, head.outputs)
        self.threshold = float(info["threshold"])
        self.unsure_band = float(info.get("unsure_band", 0.0))
        self.tolerance = tolerance
        self.model_version: str = info["files"][TENSORS][:12]
        self.dataset_version: str | None = (info.get("dataset") or {}).get("version_id")

    @property
    def predictor(self) -> Predictor:
        """The head over this backend's forward, deciding at the current threshold and band."""
        return Predictor(self.name, self.head, self.forward, self.threshold, self.unsure_band)

    @property
    def session(self):
        """The backend's session (read-only: the forward and the predictor are built on it; load
        another model, e.g. with other ``threads``, to change it)."""
        return self._session

    @classmethod
    def from_onnx(cls, model_dir: str | os.PathLike[str], onnx_path: str | os.PathLike[str],
                  tolerance: float = DEFAULT_TOLERANCE, provider: str = "cpu",
                  preprocess: dict[str, Any] | None = None,
                  backend: str = "onnxruntime", threads: int | None = None) -> "RuntimeModel":
        """Bundle + an exported network, unchecked against ``export.json`` (what ``export``
        builds on): ``onnx_path`` is the ONNX file, or for ``backend="openvino"`` the IR's
        ``.xml`` (an ONNX file works there too).

        ``preprocess`` is the preprocessing the torch model used (``export.json`` records it, so
        defaults that changed since an old bundle was written cannot creep in); by default
        ``bundle.json``'s. ``threads``: the backend's threads (None: its default).
        """
        check_backend(backend)
        model_dir = Path(model_dir)
        info = read_bundle_info(model_dir)
        name = info.get("model", {}).get("name")
        try:
            kind = head_class(name)
        except BundleError as error:
            raise BundleError(f"{model_dir}: {error}") from None
        arrays = learned_arrays(model_dir)
        try:
            config = PreprocessConfig.from_dict(preprocess or info["preprocess"])
        except (KeyError, TypeError, ValueError) as error:
            raise BundleError(f"{model_dir}: invalid preprocessing record ({error!r})") from error
        preprocessor = Preprocessor(config).restore(
            {k[len("preprocess."):]: v for k, v in arrays.items() if k.startswith("preprocess.")})
        rest = {k: v for k, v in arrays.items() if not k.startswith("preprocess.")}
        try:
            head = kind.from_bundle(name, info["model"]["config"], rest, preprocessor)
        except BundleError as error:
            raise BundleError(f"{model_dir}: {error}") from None
        session = make_backend(Path(onnx_path), backend, provider, threads)
        return cls(model_dir, info, session, preprocessor, head, tolerance, backend)

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str], onnx_dir: str | os.PathLike[str] | None = None,
             provider: str = "cpu", backend: str = "onnxruntime",
             threads: int | None = None) -> "RuntimeModel":
        """Check the bundle, the export and the reference scores; refuse to start on any mismatch.

        ``backend`` (``BACKENDS``) runs the network: ``onnxruntime`` on ``model.onnx``, or
        ``openvino`` on the IR that ``export --format openvino`` wrote beside it (its files'
        hashes and the reference scores are checked the same way). ``threads``: the backend's
        threads (None: its default of one per core).
        """
        check_backend(backend)
        model_dir = Path(model_dir)
        onnx_dir = Path(onnx_dir) if onnx_dir is not None else model_dir / ONNX_DIR
        onnx_path, export_path = onnx_dir / ONNX_FILE, onnx_dir / EXPORT_JSON
        if not onnx_path.is_file() or not export_path.is_file():
            raise BundleError(f"{onnx_dir}: no ONNX export ({ONNX_FILE} and {EXPORT_JSON}); "
                              f"create it with: defectscope export --model {model_dir}")
        try:
            export = json.loads(export_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise BundleError(f"{export_path}: not valid JSON ({error})") from error
        if sha256_file(onnx_path) != export.get("onnx_sha256"):
            raise BundleError(f"{onnx_path}: content changed since export (sha256 mismatch); "
                              "export the model again")
        network = onnx_path if backend == "onnxruntime" else checked_ir(model_dir, onnx_dir,
                                                                        export)
        model = cls.from_onnx(model_dir, network, float(export.get("tolerance", DEFAULT_TOLERANCE)),
                              provider, export.get("preprocess"), backend, threads)
        if export.get("bundle_tensors_sha256") != model.info["files"][TENSORS]:
            raise BundleError(f"{onnx_dir}: exported from another version of the model; "
                              "export it again")
        label = BACKEND_LABELS[backend]
        failed = [c for c in model.check_references() if not c.ok]
        if failed:
            raise ParityError(f"{model_dir}: the {label} scores reference images differently "
                              "from the trained model: " + describe(failed))
        problems = model.check_export(export)
        if problems:
            raise ParityError(f"{model_dir}: the {label} disagrees with what the trained "
                              "model gave the reference images at export: " + "; ".join(problems))
        return model

    # -- inspection: the one predictor --------------------------------------------------------
    def anomaly(self, image: np.ndarray, template: np.ndarray | None = None
                ) -> tuple[float, np.ndarray | None, Timings]:
        """(image score, map at the image's size or None, timings ms) of one RGB uint8 image."""
        return self.predictor.anomaly(image, template)

    def predict(self, image: np.ndarray, template: np.ndarray | None = None) -> InspectionResult:
        """Score, verdict (the bundle's threshold and unsure band) and what else the model says."""
        return self.predictor.predict(image, template)

    def detect(self, image: np.ndarray, template: np.ndarray | None = None) -> list[Detection]:
        """A box model's boxes at or above ``min_confidence``, best first."""
        if not isinstance(self.head, BoxHead):
            raise DefectscopeError(f"{self.name} finds no boxes; detect is for "
                                   f"{', '.join(BOX_MODELS)}")
        return self.head.detect(self.forward, image, template)

    def detect_many(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """``detect`` for several images, one padded batch for the detector."""
        if isinstance(self.head, DetectorHead):
            return self.head.detect_many(self.forward, images)
        return [self.detect(image) for image in images]

    def probabilities(self, image: np.ndarray) -> dict[str, float]:
        """A classifier's class probabilities of one RGB uint8 image, by class name."""
        if not isinstance(self.head, ClassifierHead):
            raise DefectscopeError(f"{self.name} gives no class probabilities; only the "
                                   "classifier does")
        return self.head.probabilities(self.forward, image)

    # -- parity ---------------------------------------------------------------------------------
    def check_references(self) -> list[ReferenceCheck]:
        """Re-score every reference image; the limit is ``tolerance * threshold``."""
        limit = self.tolerance * max(abs(self.threshold), 1e-12)
        return [ReferenceCheck(reference.source, reference.score,
                               score_reference(self, reference), limit)
                for reference in read_references(self.model_dir, self.info)]

    def check_export(self, export: dict[str, Any]) -> list[str]:
        """Further checks at load against ``export.json``: a line per problem. The box models
        compare their detections of the reference images with torch's."""
        if isinstance(self.head, BoxHead):
            return check_export_detections(self, export)
        return []


def checked_ir(model_dir: Path, onnx_dir: Path, export: dict[str, Any]) -> Path:
    """The OpenVINO IR (``.xml``) that ``export.json`` certifies, its two files' hashes checked;
    a folder exported without it, a missing or a changed file is a ``BundleError``."""
    record = export.get("openvino")
    if not isinstance(record, dict):
        raise BundleError(f"{onnx_dir}: the export has no OpenVINO IR; create it with: "
                          f"defectscope export --model {model_dir} --format openvino")
    for name, key in ((IR_FILE, "xml_sha256"), (IR_WEIGHTS, "bin_sha256")):
        path = onnx_dir / name
        if not path.is_file():
            raise BundleError(f"{path}: missing from the OpenVINO export; export the model "
                              "again with --format openvino")
        if sha256_file(path) != record.get(key):
            raise BundleError(f"{path}: content changed since export (sha256 mismatch); "
                              "export the model again")
    return onnx_dir / IR_FILE


class RuntimeInspector:
    """The line's ``Inspector`` over the torch-free runtime (what ``run`` and ``serve`` pick when
    the bundle has an ``onnx/`` export).

    >>> RuntimeInspector("models/tiles").inspect(image).verdict   # doctest: +SKIP
    """

    def __init__(self, model_dir: str | os.PathLike[str], provider: str = "cpu",
                 backend: str = "onnxruntime") -> None:
        self.model = RuntimeModel.load(model_dir, provider=provider, backend=backend)
        self.model_dir = Path(model_dir)
        self.model_version: str = self.model.model_version
        self.dataset_version: str | None = self.model.dataset_version
        self.threshold: float = self.model.threshold

    def inspect(self, image: np.ndarray) -> InspectionResult:
        return self.model.predict(image)
