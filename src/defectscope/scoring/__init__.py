"""What follows the network, for every model the runtime serves (numpy, faiss, OpenCV; no torch).

The torch models and the torch-free runtime both call these functions, so an exported model
scores exactly as the trained one does, up to the network's floating-point noise: the anomaly
models' patch scoring and map, the classifier's probabilities and decision, the segmenter's
probabilities (with flip averaging), score and map, the box models' detections and verdict,
the learned detector's FCOS decoding (``defectscope.scoring.fcos``).

>>> from defectscope.scoring import anomaly_map, padim_scores, patchcore_scores
"""

from defectscope.scoring.anomaly_map import anomaly_map
from defectscope.scoring.classification import (
    class_probabilities,
    classification_result,
    not_good_score,
    probabilities_by_class,
)
from defectscope.scoring.detection import (
    alignment_failed_result,
    best_confidence,
    box_detections,
    boxes_result,
    detection_result,
    missing_template,
)
from defectscope.scoring.nn_index import NearestNeighbours
from defectscope.scoring.padim import padim_scores
from defectscope.scoring.patchcore import patchcore_scores, reweight
from defectscope.scoring.segmentation import (
    area_score,
    defect_probabilities,
    probability_map,
    segmentation_output,
    segmentation_result,
    sigmoid,
)

__all__ = ["NearestNeighbours", "alignment_failed_result", "anomaly_map", "area_score",
           "best_confidence", "box_detections", "boxes_result", "class_probabilities", "classification_result",
           "defect_probabilities", "detection_result", "missing_template", "not_good_score",
           "padim_scores", "patchcore_scores", "probabilities_by_class", "probability_map",
           "reweight", "segmentation_output", "segmentation_result", "sigmoid"]
