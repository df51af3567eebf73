"""The torch-free runtime: a bundle's ONNX export scored with onnxruntime, numpy and OpenCV.

``defectscope.runtime.export`` (which needs torch) writes ``M/onnx/``; everything importable from
here runs without torch, so an edge box needs only the runtime extra and the bundle.

>>> from defectscope.runtime import RuntimeInspector
>>> RuntimeInspector("models/tiles").inspect(image).verdict   # doctest: +SKIP
"""

from defectscope.runtime.engine import (
    DEFAULT_TOLERANCE,
    ParityError,
    ReferenceCheck,
    RuntimeInspector,
    RuntimeModel,
)

__all__ = ["DEFAULT_TOLERANCE", "ParityError", "ReferenceCheck", "RuntimeInspector",
           "RuntimeModel"]
