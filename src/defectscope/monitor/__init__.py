"""Watching the line: SPC charts, drift, ROI and production precision/recall.

Pure numpy/scipy (no torch), so it runs on the edge box beside the results log.

>>> from defectscope.monitor import p_chart, drift_report, wilson_interval
>>> p_chart([1, 2], [50, 50]).center
0.03
"""

from defectscope.monitor.drift import DriftReport, DriftThresholds, drift_report, ks, psi
from defectscope.monitor.estimates import RateEstimate, precision_recall, wilson_interval
from defectscope.monitor.production import Window, ng_windows, production_stats
from defectscope.monitor.payback import Costs, Roi, roi_summary
from defectscope.monitor.spc import (ControlChart, RuleHit, ewma_chart, individuals_chart,
                                     p_chart, western_electric)

__all__ = ["ControlChart", "Costs", "DriftReport", "DriftThresholds", "RateEstimate", "Roi",
           "RuleHit", "Window", "drift_report", "ewma_chart", "individuals_chart", "ks",
           "ng_windows", "p_chart", "precision_recall", "production_stats", "psi",
           "roi_summary", "western_electric", "wilson_interval"]
