"""The classifier's decision after the network: logits -> probabilities, score, verdict, type.

numpy only, so the torch model (``defectscope.models.classifier``) and the torch-free runtime
call these very functions and cannot drift apart. The score is the probability of "not good"
(1.0 when the classifier has no ``good`` class: every part is then a defect of some type); a
part that is not OK is named after its most likely defect class.

>>> probabilities = class_probabilities(np.array([2.0, 0.0, 1.0]))
>>> round(not_good_score(probabilities, ("good", "blob", "scratch")), 4)
0.3348
>>> classification_result(probabilities, ("good", "blob", "scratch"), 0.2).defect_type
'scratch'
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from defectscope.values import GOOD, InspectionResult, Verdict


def class_probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64 (logits C, or N x C)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def not_good_score(probabilities: np.ndarray, classes: Sequence[str]) -> float:
    """One image's score: 1 - P(good), or 1.0 when the first class is not ``good``."""
    return 1.0 - float(probabilities[0]) if classes[0] == GOOD else 1.0


def probabilities_by_class(probabilities: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    """One image's probabilities as ``{class name: probability}``."""
    return {name: float(p) for name, p in zip(classes, probabilities)}


def classification_result(probabilities: np.ndarray, classes: Sequence[str], threshold: float,
                          unsure_band: float = 0.0,
                          timings: Mapping[str, float] | None = None) -> InspectionResult:
    """Score, verdict (``Verdict.from_score``) and, unless OK, the most likely defect class."""
    score = not_good_score(probabilities, classes)
    verdict = Verdict.from_score(score, threshold, unsure_band)
    has_good = classes[0] == GOOD
    defect_p = probabilities[1:] if has_good else probabilities
    defect_names = classes[1:] if has_good else classes
    defect_type = None if verdict is Verdict.OK else defect_names[int(np.argmax(defect_p))]
    return InspectionResult(score=score, verdict=verdict, defect_type=defect_type,
                            timings=dict(timings or {}),
                            reason="score near the threshold" if verdict is Verdict.UNSURE
                            else None)
