"""Retraining with a regression gate, an audit trail and atomic promotion.

>>> from defectscope.retrain import gate, GateFigures, GateConfig
>>> gate(GateFigures(0.9, 0.02, 10, 50), GateFigures(0.9, 0.025, 10, 50)).promote
True
"""

from defectscope.retrain.audit import append_audit, read_audit
from defectscope.retrain.gate import GateConfig, GateDecision, GateFigures, figures, gate
from defectscope.retrain.promote import promote
from defectscope.retrain.run import RetrainConfig, RetrainOutcome, check_claimed_types, retrain

__all__ = ["GateConfig", "GateDecision", "GateFigures", "RetrainConfig", "RetrainOutcome",
           "append_audit", "check_claimed_types", "figures", "gate", "promote", "read_audit",
           "retrain"]
