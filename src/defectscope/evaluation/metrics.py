"""Image-level metrics in pure numpy: AUROC, ROC and PR curves, average precision, F1, confusion.

Scores are higher for more anomalous images; ``is_defect`` says which images really are
defective. A prediction is "defect" when ``score >= threshold``, the same rule as
``Verdict.from_score``. Every function is deterministic, handles tied scores exactly the way
scikit-learn does, and validates its input: empty arrays, mismatched lengths and NaN scores raise
``ConfigError`` (a ``ValueError``). A metric that is undefined because a class is missing (AUROC
with only good or only defective images) returns ``None`` instead of raising, so a report can
still be written for a one-class test set.

>>> auroc([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
0.75
>>> confusion_at([0.1, 0.4, 0.35, 0.8], [False, False, True, True], threshold=0.38)
Confusion(tp=1, fp=1, tn=1, fn=1)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike

from defectscope.errors import ConfigError
from defectscope.values import GOOD

__all__ = [
    "Confusion",
    "auroc",
    "average_precision",
    "confusion_at",
    "f1_max",
    "per_type_recall",
    "pr_curve",
    "roc_curve",
    "validate_scores",
]


def validate_scores(scores: ArrayLike, is_defect: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(scores as float64, is_defect as bool)`` or raise ``ConfigError`` saying why not."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(is_defect).ravel()
    if s.size == 0:
        raise ConfigError("no scores given: metrics need at least one image")
    if s.size != y.size:
        raise ConfigError(f"{s.size} scores but {y.size} is_defect flags: give one flag per score")
    if np.isnan(s).any():
        bad = int(np.flatnonzero(np.isnan(s))[0])
        raise ConfigError(f"score {bad} is NaN: drop unscored images before computing metrics")
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise ConfigError("is_defect must hold booleans (or 0/1), one per image")
        y = y.astype(bool)
    return s, y


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` with tied values sharing their average rank (like scipy's rankdata)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], xs.size]
    ranks = np.empty(xs.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def auroc(scores: ArrayLike, is_defect: ArrayLike) -> float | None:
    """Area under the ROC curve, or ``None`` when only one class is present.

    Computed as the Mann-Whitney statistic with average ranks, so a tie between a good and a
    defective image counts one half: the result equals ``sklearn.metrics.roc_auc_score``.

    >>> auroc([0.2, 0.2], [False, True])
    0.5
    """
    s, y = validate_scores(scores, is_defect)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    rank_sum = float(_average_ranks(s)[y].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def _counts_per_threshold(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each distinct score, high to low: defects and goods with ``score >= it``, and the score."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_group = np.r_[np.flatnonzero(s_sorted[1:] != s_sorted[:-1]), s.size - 1]
    tps = np.cumsum(y_sorted)[last_of_group].astype(np.float64)
    fps = (last_of_group + 1) - tps
    return tps, fps, s_sorted[last_of_group]


def roc_curve(scores: ArrayLike, is_defect: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points ``(fpr, tpr, thresholds)``, one per distinct score plus the origin.

    ``thresholds`` decrease; the first is ``inf`` (nothing rejected). Every point is kept (like
    scikit-learn's ``drop_intermediate=False``). Raises ``ConfigError`` when a class is missing,
    because one of the two rates is then undefined.
    """
    s, y = validate_scores(scores, is_defect)
    tps, fps, thresholds = _counts_per_threshold(s, y)
    n_pos, n_neg = tps[-1], fps[-1]
    if n_pos == 0 or n_neg == 0:
        raise ConfigError("a ROC curve needs both good and defective images")
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    return fpr, tpr, np.r_[np.inf, thresholds]


def pr_curve(scores: ArrayLike, is_defect: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision-recall points ``(precision, recall, thresholds)`` as scikit-learn returns them.

    ``thresholds`` increase; ``precision`` and ``recall`` have one more entry, the final point
    ``(1, 0)``. Raises ``ConfigError`` without defective images (recall is undefined).
    """
    s, y = validate_scores(scores, is_defect)
    tps, fps, thresholds = _counts_per_threshold(s, y)
    if tps[-1] == 0:
        raise ConfigError("a precision-recall curve needs at least one defective image")
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def average_precision(scores: ArrayLike, is_defect: ArrayLike) -> float | None:
    """Average precision ``sum_n (R_n - R_{n-1}) P_n``: step-wise, no interpolation.

    Same definition as ``sklearn.metrics.average_precision_score``. ``None`` without defects.

    >>> round(average_precision([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 4)
    0.8333
    """
    s, y = validate_scores(scores, is_defect)
    if not y.any():
        return None
    precision, recall, _ = pr_curve(s, y)
    return min(1.0, float(-np.sum(np.diff(recall) * precision[:-1])))  # no 1.0000000000000002


def f1_max(scores: ArrayLike, is_defect: ArrayLike) -> tuple[float, float]:
    """The best F1 over all thresholds, and that threshold (a sample score; ``>=`` is defect).

    Among thresholds with equal best F1, the highest is returned (fewest rejected parts).
    Raises ``ConfigError`` without defective images, where F1 is undefined.

    >>> f1_max([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    (0.8, 0.35)
    """
    s, y = validate_scores(scores, is_defect)
    tps, fps, thresholds = _counts_per_threshold(s, y)
    if tps[-1] == 0:
        raise ConfigError("F1 needs at least one defective image")
    f1 = 2.0 * tps / (tps + fps + tps[-1])  # 2TP / (2TP + FP + FN), as FN = P - TP
    best = int(np.argmax(f1))  # first maximum = highest threshold, since thresholds decrease
    return float(f1[best]), float(thresholds[best])


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


@dataclass(frozen=True)
class Confusion:
    """Counts at one threshold. Rates with an empty denominator are 0.0 (not NaN), so that a
    report stays JSON-ready; read them together with the counts."""

    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def false_reject_rate(self) -> float:
        """Good parts rejected: ``fp / (fp + tn)``."""
        return _ratio(self.fp, self.fp + self.tn)

    @property
    def escape_rate(self) -> float:
        """Defective parts passed: ``fn / (tp + fn)``."""
        return _ratio(self.fn, self.tp + self.fn)

    @property
    def accuracy(self) -> float:
        return _ratio(self.tp + self.tn, self.tp + self.fp + self.tn + self.fn)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def confusion_at(scores: ArrayLike, is_defect: ArrayLike, threshold: float) -> Confusion:
    """Confusion counts when ``score >= threshold`` is called a defect."""
    s, y = validate_scores(scores, is_defect)
    if np.isnan(threshold):
        raise ConfigError("threshold is NaN")
    predicted = s >= threshold
    return Confusion(
        tp=int(np.sum(predicted & y)),
        fp=int(np.sum(predicted & ~y)),
        tn=int(np.sum(~predicted & ~y)),
        fn=int(np.sum(~predicted & y)),
    )


def per_type_recall(scores: ArrayLike, labels: Sequence[str], threshold: float) -> dict[str, float]:
    """Recall of every defect type (every label except ``"good"``), sorted by type name.

    >>> per_type_recall([0.9, 0.2, 0.7], ["scratch", "scratch", "dent"], threshold=0.5)
    {'dent': 1.0, 'scratch': 0.5}
    """
    label_array = np.asarray([str(label) for label in labels], dtype=object)
    s, _ = validate_scores(scores, np.zeros(label_array.size, dtype=bool))
    caught = s >= threshold
    return {
        kind: float(np.mean(caught[label_array == kind]))
        for kind in sorted(set(label_array.tolist()) - {GOOD})
    }
