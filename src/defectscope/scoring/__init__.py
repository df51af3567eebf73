"""Post-backbone math of the anomaly models (numpy, faiss, OpenCV; no torch).

The torch models and the torch-free runtime both call these functions, so an exported model
scores exactly as the trained one does, up to the backbone's floating-point noise.

>>> from defectscope.scoring import anomaly_map, padim_scores, patchcore_scores
"""

from defectscope.scoring.anomaly_map import anomaly_map
from defectscope.scoring.nn_index import NearestNeighbours
from defectscope.scoring.padim import padim_scores
from defectscope.scoring.patchcore import patchcore_scores, reweight

__all__ = ["NearestNeighbours", "anomaly_map", "padim_scores", "patchcore_scores", "reweight"]
