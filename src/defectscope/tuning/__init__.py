"""Choosing a model's settings from good images alone.

``synthetic`` pastes defects with exact masks into held-back good images (several kinds, sizes and
contrasts); ``search`` fits a small, fixed set of candidate settings and keeps the one that ranks
those defects best, within a time budget. The threshold rule that uses the same synthetic
defects lives with the other rules in ``evaluation.thresholds``.
"""

from defectscope.tuning.search import Candidate, TuningResult, candidates_for, choose, tune
from defectscope.tuning.synthetic import synthetic_defects

__all__ = ["Candidate", "TuningResult", "candidates_for", "choose", "synthetic_defects", "tune"]
