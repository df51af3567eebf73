"""The runtime's backends: what runs the exported network (torch-free).

A backend is anything with onnxruntime's ``session.run(output_names, {input_name: array})``
call, so the one ``RuntimeModel`` (``defectscope.runtime.engine``) feeds the family's numpy
scoring head the same way whichever runs the network:

- ``onnxruntime``: an ``onnxruntime.InferenceSession`` on ``model.onnx`` (the default);
- ``openvino``: an OpenVINO compiled model (``openvino.Core().compile_model``) on the IR that
  ``defectscope export --format openvino`` converts from the same ONNX file (``model.xml`` and
  ``model.bin`` beside it), in FP32: OpenVINO's CPU default of bf16 (on CPUs that have it) and
  ``save_model``'s default FP16 weights both move scores, which the parity check then refuses.

``make_session(path, provider)`` keeps the older ``provider="openvino"``: onnxruntime with
OpenVINO's execution provider (the ``onnxruntime-openvino`` package), a different thing.

>>> session = make_backend("models/tiles/onnx/model.xml", "openvino")   # doctest: +SKIP
>>> session.run(["embeddings"], {"image": batch})[0].shape               # doctest: +SKIP
(1, 384, 28, 28)
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from defectscope.errors import ConfigError

BACKENDS = ("onnxruntime", "openvino")
PROVIDERS = ("cpu", "openvino")  # onnxruntime's execution providers (see make_session)
IR_FILE = "model.xml"  # the OpenVINO IR beside model.onnx; its weights are model.bin
IR_WEIGHTS = "model.bin"


def check_backend(backend: str) -> str:
    """``backend`` if it is one of ``BACKENDS``; otherwise a ``ConfigError`` naming them."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    return backend


def make_session(onnx_path: Path, provider: str = "cpu", threads: int | None = None):
    """An onnxruntime session: all graph optimisations, ``threads`` intra-op threads (None:
    onnxruntime's default of one per core; it ignores ``OMP_NUM_THREADS``, so a node running
    one worker per core must say so).

    ``provider="openvino"`` uses OpenVINO's execution provider (``onnxruntime-openvino``) in FP32;
    its CPU default of bf16 moves scores, which the parity check would then refuse.
    """
    import onnxruntime as ort

    if provider not in PROVIDERS:
        raise ConfigError(f"provider must be one of {PROVIDERS}, not {provider!r}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # onnxruntime's worker threads spin after each run by default; on a small CPU they then
    # compete with faiss's search threads that follow, which doubled PatchCore's scoring time.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    providers: list[Any] = ["CPUExecutionProvider"]
    if provider == "openvino":
        if "OpenVINOExecutionProvider" not in ort.get_available_providers():
            raise ConfigError("OpenVINO is not installed: pip install onnxruntime-openvino")
        providers.insert(0, ("OpenVINOExecutionProvider", {"precision": "FP32"}))
    return ort.InferenceSession(str(onnx_path), options, providers=providers)


def _openvino():
    try:
        import openvino
    except ImportError as error:
        raise ConfigError("the OpenVINO backend needs the openvino package: pip install "
                          f"'defectscope[openvino]' ({error})") from None
    return openvino


def openvino_version() -> str:
    return str(_openvino().__version__)


class OpenVINOSession:
    """An OpenVINO compiled model behind onnxruntime's ``run`` call (what the runtime models
    use). One infer request, used under a lock: the service may call from several threads."""

    def __init__(self, compiled) -> None:
        self.compiled = compiled
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()

    def run(self, output_names: Sequence[str] | None,
            feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The named outputs (all, in the model's order, for None) for the inputs ``feeds``."""
        outputs = ([self.compiled.output(name) for name in output_names]
                   if output_names is not None else list(self.compiled.outputs))
        with self._lock:
            results = self._request.infer(dict(feeds))
            return [np.array(results[output]) for output in outputs]


def make_openvino_session(model_path: Path, threads: int | None = None) -> OpenVINOSession:
    """``model_path`` (an IR ``.xml`` or an ONNX file) compiled for the CPU in FP32, tuned for
    latency (batch 1 on the line), on ``threads`` threads (None: OpenVINO's choice)."""
    ov = _openvino()
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(str(model_path), "CPU", config)
    return OpenVINOSession(compiled)


def convert_to_ir(onnx_path: Path, xml_path: Path) -> Path:
    """Convert the ONNX file to OpenVINO IR (``xml_path`` and its ``.bin``), weights in FP32."""
    ov = _openvino()
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml_path), compress_to_fp16=False)
    return xml_path


def make_backend(model_path: str | Path, backend: str = "onnxruntime", provider: str = "cpu",
                 threads: int | None = None):
    """The session running ``model_path`` on ``backend`` (``provider``: onnxruntime's only),
    on ``threads`` threads (None: the library's default)."""
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, not {threads}")
    if check_backend(backend) == "openvino":
        return make_openvino_session(Path(model_path), threads)
    return make_session(Path(model_path), provider, threads)
