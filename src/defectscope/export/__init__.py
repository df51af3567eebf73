"""Export to the deployment formats, proven by parity checks (this package needs torch).

``export_onnx`` writes a bundle's network (the contract's ``model.network()``) to ONNX, and on
request to OpenVINO IR, and certifies each against the trained model before anything is kept;
the torch-free ``defectscope.runtime`` loads what it writes.

>>> export_onnx("models/tiles")   # writes models/tiles/onnx/{model.onnx,export.json}  # doctest: +SKIP
"""

from defectscope.export.onnx import FORMATS, export_onnx, network_graph

__all__ = ["FORMATS", "export_onnx", "network_graph"]
