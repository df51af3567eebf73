"""The torch-free runtime: a bundle's ONNX export scored with onnxruntime (or OpenVINO on the
IR converted from it, ``defectscope.runtime.backends``), numpy and OpenCV.

``defectscope.runtime.export`` (which needs torch) writes ``M/onnx/``; everything importable from
here runs without torch, so an edge box needs only the runtime extra and the bundle. Models:
``SUPPORTED_MODELS`` (patchcore, padim, classifier, segmenter, reference, detector);
``RuntimeModel.load`` returns the matching ``AnomalyRuntime``, ``ClassifierRuntime``,
``SegmenterRuntime``, ``ReferenceRuntime`` or ``DetectorRuntime``.

>>> from defectscope.runtime import RuntimeInspector
>>> RuntimeInspector("models/tiles").inspect(image).verdict   # doctest: +SKIP
"""

from defectscope.runtime.engine import (
    DEFAULT_TOLERANCE,
    SUPPORTED_MODELS,
    ParityError,
    ReferenceCheck,
    RuntimeInspector,
    RuntimeModel,
)
from defectscope.runtime.anomaly import AnomalyRuntime  # noqa: E402 (after the base class)
from defectscope.runtime.detector import DetectorRuntime  # noqa: E402
from defectscope.runtime.reference import ReferenceRuntime  # noqa: E402
from defectscope.runtime.supervised import ClassifierRuntime, SegmenterRuntime  # noqa: E402

__all__ = ["DEFAULT_TOLERANCE", "SUPPORTED_MODELS", "AnomalyRuntime", "ClassifierRuntime",
           "DetectorRuntime", "ParityError", "ReferenceCheck", "ReferenceRuntime", "RuntimeInspector",
           "RuntimeModel", "SegmenterRuntime"]
