"""The torch-free inference engine: the exported network (onnxruntime, or OpenVINO on its IR;
``defectscope.runtime.backends``) + the shared numpy scoring.

An edge box installs numpy, OpenCV, onnxruntime, faiss and safetensors, copies a bundle folder
with its ``onnx/`` export (``defectscope export``), and inspects parts without torch. The engine
never trusts the export blindly: ``load`` checks every bundle file's hash and the ONNX file's,
then re-scores the bundle's reference images and refuses to start if any score moved by more than
the export's tolerance (by default 1e-3 of the threshold).

``RuntimeModel.load`` returns the runtime of the bundle's model family (``runtime_class``):
``AnomalyRuntime`` (patchcore, padim: ONNX backbone, numpy patch scoring) in
``defectscope.runtime.anomaly``; ``ClassifierRuntime`` and ``SegmenterRuntime`` (the whole ONNX
network, numpy decision) in ``defectscope.runtime.supervised``; ``ReferenceRuntime`` (the window
network in ONNX, comparison and boxes in numpy/OpenCV) in ``defectscope.runtime.reference``. This
module holds what they share: loading and checking, the session (``backend="onnxruntime"`` or
``"openvino"``: the same ``run`` call either way), the reference re-scoring.

>>> model = RuntimeModel.load("models/tiles")   # doctest: +SKIP
>>> model.predict(image).verdict                # doctest: +SKIP
<Verdict.OK: 'OK'>
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from defectscope.bundle import (
    META_KEY,
    TENSORS,
    Reference,
    decode_meta,
    read_bundle_info,
    read_reference_images,
    score_reference,
)
from defectscope.data.hashing import sha256_file
from defectscope.runtime.backends import (  # noqa: F401 (make_session, PROVIDERS: used here before)
    IR_FILE,
    IR_WEIGHTS,
    PROVIDERS,
    check_backend,
    make_backend,
    make_session,
)
from defectscope.errors import BundleError
from defectscope.preprocess import PreprocessConfig, Preprocessor
from defectscope.types import InspectionResult

ONNX_DIR = "onnx"
ONNX_FILE = "model.onnx"
EXPORT_JSON = "export.json"
INPUT_NAME = "image"
OUTPUT_NAME = "embeddings"  # the anomaly models' ONNX output (the backbone's patch embeddings)
LOGITS_NAME = "logits"  # the supervised models' ONNX output (the whole network's)
BOXES_NAME = "boxes"  # the reference model's second ONNX output (box fractions per window)
# The detector's ONNX outputs: FCOS's raw head outputs and the pyramid levels' grid sizes.
FCOS_OUTPUTS = ("cls_logits", "bbox_regression", "bbox_ctrness", "level_sizes")
DEFAULT_TOLERANCE = 1e-3  # |runtime score - recorded score| <= tolerance * threshold
ANOMALY_MODELS = ("patchcore", "padim")
SUPERVISED_MODELS = ("classifier", "segmenter")
BOX_MODELS = ("reference", "detector")
SUPPORTED_MODELS = ANOMALY_MODELS + SUPERVISED_MODELS + BOX_MODELS
BACKEND_LABELS = {"onnxruntime": "ONNX runtime", "openvino": "OpenVINO runtime"}
NETWORK_PREFIXES = ("backbone.", "net.")  # bundle arrays that live in the ONNX file instead


class ParityError(BundleError):
    """The exported runtime scores the bundle's reference images differently from the model."""


@dataclass(frozen=True)
class ReferenceCheck:
    """One reference image re-scored: what the bundle recorded, what the runtime gives."""

    source: str
    expected: float
    score: float
    limit: float

    @property
    def difference(self) -> float:
        return abs(self.score - self.expected)

    @property
    def ok(self) -> bool:
        return bool(self.difference <= self.limit)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "expected": self.expected, "score": self.score,
                "difference": self.difference, "ok": self.ok}


def learned_arrays(model_dir: Path) -> dict[str, np.ndarray]:
    """The arrays of ``tensors.safetensors`` but the network's (those live in the ONNX file)."""
    from safetensors import safe_open

    with safe_open(str(model_dir / TENSORS), framework="numpy") as file:
        return {key: file.get_tensor(key) for key in file.keys()
                if not key.startswith(NETWORK_PREFIXES)}


def unsupported(name: Any) -> str:
    """The message for a model the runtime cannot serve."""
    return (f"the ONNX runtime supports {', '.join(SUPPORTED_MODELS)}, not {name!r}; use the "
            "torch path for this model")


def runtime_class(name: Any) -> "type[RuntimeModel]":
    """The ``RuntimeModel`` subclass serving the model ``name``; any other is a ``BundleError``."""
    # Imported here: those modules subclass RuntimeModel, defined below.
    from defectscope.runtime.anomaly import AnomalyRuntime
    from defectscope.runtime.detector import DetectorRuntime
    from defectscope.runtime.reference import ReferenceRuntime
    from defectscope.runtime.supervised import ClassifierRuntime, SegmenterRuntime

    classes: dict[str, type[RuntimeModel]] = {
        "patchcore": AnomalyRuntime, "padim": AnomalyRuntime,
        "classifier": ClassifierRuntime, "segmenter": SegmenterRuntime,
        "reference": ReferenceRuntime, "detector": DetectorRuntime}
    if not isinstance(name, str) or name not in classes:
        raise BundleError(unsupported(name))
    return classes[name]


def read_references(model_dir: Path, info: dict[str, Any]) -> list[Reference]:
    """The bundle's reference images (RGB, with their templates where stored) and recorded
    scores, each named by its source or file; none is an error."""
    rows = info.get("references") or []
    if not rows:
        raise BundleError(f"{model_dir}: the bundle has no reference images, so an export cannot "
                          "prove it scores like the trained model; retrain it with defectscope "
                          "train")
    return [dataclasses.replace(reference, source=reference.source or row["file"])
            for reference, row in zip(read_reference_images(model_dir, info), rows)]


def read_class_names(model_dir: Path, arrays: dict[str, np.ndarray], model: str
                     ) -> tuple[str, ...]:
    """The class names a classifier or box model's tensors record (``meta.json``); a bundle
    without them is a ``BundleError`` naming ``model``."""
    if META_KEY not in arrays:
        raise BundleError(f"{model_dir}: {TENSORS} lacks {META_KEY} (the class names)")
    classes = decode_meta(arrays[META_KEY]).get("classes")
    if not classes:
        raise BundleError(f"{model_dir}: the {model}'s {META_KEY} names no classes")
    return tuple(classes)


class RuntimeModel:
    """A bundle scored by onnxruntime + numpy. Build with ``load`` (checks hashes and parity),
    which returns the subclass for the bundle's model (see ``runtime_class``).

    Subclasses set ``output_name`` (the ONNX output they read), read their arrays in
    ``from_arrays`` and implement ``anomaly`` and ``predict`` as the torch model does.
    """

    output_name: ClassVar[str] = OUTPUT_NAME
    backend: str = "onnxruntime"  # what runs the network (``from_onnx`` sets it)

    def __init__(self, model_dir: Path, info: dict[str, Any], session,
                 preprocessor: Preprocessor, tolerance: float = DEFAULT_TOLERANCE) -> None:
        self.model_dir = model_dir
        self.info = info
        self.name: str = info["model"]["name"]
        self.config: dict[str, Any] = dict(info["model"]["config"])
        self.session = session
        self.preprocessor = preprocessor
        self.threshold = float(info["threshold"])
        self.unsure_band = float(info.get("unsure_band", 0.0))
        self.tolerance = tolerance
        self.model_version: str = info["files"][TENSORS][:12]
        self.dataset_version: str | None = (info.get("dataset") or {}).get("version_id")

    @classmethod
    def from_arrays(cls, model_dir: Path, info: dict[str, Any], arrays: dict[str, np.ndarray],
                    session, preprocessor: Preprocessor, tolerance: float) -> "RuntimeModel":
        """Build from the bundle's arrays other than the network's and the preprocessing's."""
        return cls(model_dir, info, session, preprocessor, tolerance)

    @classmethod
    def from_onnx(cls, model_dir: str | os.PathLike[str], onnx_path: str | os.PathLike[str],
                  tolerance: float = DEFAULT_TOLERANCE, provider: str = "cpu",
                  preprocess: dict[str, Any] | None = None,
                  backend: str = "onnxruntime") -> "RuntimeModel":
        """Bundle + an exported network, unchecked against ``export.json`` (what ``export``
        builds on): ``onnx_path`` is the ONNX file, or for ``backend="openvino"`` the IR's
        ``.xml`` (an ONNX file works there too).

        ``preprocess`` is the preprocessing the torch model used (``export.json`` records it, so
        defaults that changed since an old bundle was written cannot creep in); by default
        ``bundle.json``'s.
        """
        check_backend(backend)
        model_dir = Path(model_dir)
        info = read_bundle_info(model_dir)
        try:
            kind = runtime_class(info.get("model", {}).get("name"))
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
        session = make_backend(Path(onnx_path), backend, provider)
        model = kind.from_arrays(model_dir, info, rest, session, preprocessor, tolerance)
        model.backend = backend
        return model

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str], onnx_dir: str | os.PathLike[str] | None = None,
             provider: str = "cpu", backend: str = "onnxruntime") -> "RuntimeModel":
        """Check the bundle, the export and the reference scores; refuse to start on any mismatch.

        ``backend`` (``BACKENDS``) runs the network: ``onnxruntime`` on ``model.onnx``, or
        ``openvino`` on the IR that ``export --format openvino`` wrote beside it (its files'
        hashes and the reference scores are checked the same way).
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
                              provider, export.get("preprocess"), backend)
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

    def check_references(self) -> list[ReferenceCheck]:
        """Re-score every reference image; the limit is ``tolerance * threshold``."""
        limit = self.tolerance * max(abs(self.threshold), 1e-12)
        return [ReferenceCheck(reference.source, reference.score,
                               score_reference(self, reference), limit)
                for reference in read_references(self.model_dir, self.info)]

    def check_export(self, export: dict[str, Any]) -> list[str]:
        """Further checks at load against ``export.json`` (what torch gave beside the score):
        a line per problem. None here; the box models compare their detections."""
        return []

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The ONNX network on a preprocessed batch (N x 3 x h x w float32): its output."""
        return self.session.run([self.output_name], {INPUT_NAME: batch})[0]

    def anomaly(self, image: np.ndarray) -> tuple[float, np.ndarray | None, dict[str, float]]:
        """Score one RGB uint8 image: (image score, map at the image's size or None, timings)."""
        raise NotImplementedError

    def predict(self, image: np.ndarray) -> InspectionResult:
        """Score, verdict (the bundle's threshold and unsure band) and what else the model says."""
        raise NotImplementedError


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


def describe(checks: Sequence[ReferenceCheck]) -> str:
    return "; ".join(f"{c.source}: expected {c.expected:.6g}, got {c.score:.6g} "
                     f"(limit {c.limit:.3g})" for c in checks)


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
