"""The torch-free runtime: a bundle's exported network run by a backend (onnxruntime, or OpenVINO
on the IR converted from it: ``defectscope.runtime.backends``), then the family's numpy head.

``defectscope.export`` (which needs torch) writes ``M/onnx/``; everything importable from here
runs without torch, so an edge box needs only the runtime extra and the bundle. Models:
``SUPPORTED_MODELS`` (patchcore, padim, classifier, segmenter, reference, detector), all served
by the one ``RuntimeModel``; ``defectscope.runtime.parity`` holds what an export must prove.

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

__all__ = ["DEFAULT_TOLERANCE", "SUPPORTED_MODELS", "ParityError", "ReferenceCheck",
           "RuntimeInspector", "RuntimeModel"]
