"""The regression gate as a pure function, both ways, and the audit log."""

from __future__ import annotations

import pytest

from defectscope.errors import ConfigError, DataError
from defectscope.retrain import (GateConfig, GateFigures, append_audit, figures, gate,
                                 read_audit)

CURRENT = GateFigures(recall=0.90, false_reject_rate=0.020, n_defect=100, n_good=400)


def test_a_candidate_as_good_or_better_is_promoted():
    decision = gate(CURRENT, GateFigures(0.92, 0.015, 100, 400))
    assert decision.promote and len(decision.reasons) == 2
    assert gate(CURRENT, GateFigures(0.90, 0.029, 100, 400)).promote  # within the 0.01 margin


def test_a_worse_candidate_is_refused():
    lower_recall = gate(CURRENT, GateFigures(0.89, 0.010, 100, 400))
    assert not lower_recall.promote and "recall falls" in lower_recall.reasons[0]
    more_rejects = gate(CURRENT, GateFigures(0.95, 0.031, 100, 400))
    assert not more_rejects.promote and "false-reject rate rises" in more_rejects.reasons[1]


def test_margins_are_configurable():
    candidate = GateFigures(0.88, 0.05, 100, 400)
    assert not gate(CURRENT, candidate).promote
    assert gate(CURRENT, candidate, GateConfig(false_reject_margin=0.05,
                                               recall_margin=0.02)).promote
    with pytest.raises(ConfigError):
        GateConfig(false_reject_margin=-0.1)
    with pytest.raises(ConfigError, match="same images"):
        gate(CURRENT, GateFigures(0.9, 0.02, 99, 400))


def test_figures_at_the_operating_point():
    result = figures([0.1, 0.6, 0.4, 0.9, 0.7], [False, False, True, True, True], 0.5,
                     ["good", "good", "dent", "dent", "crack"])
    assert result.recall == pytest.approx(2 / 3) and result.false_reject_rate == 0.5
    assert result.per_type_recall == {"crack": 1.0, "dent": 0.5}
    with pytest.raises(ConfigError, match="good and defective"):
        figures([0.1, 0.2], [False, False], 0.5)


def test_audit_log_appends_and_reads_back(tmp_path):
    path = tmp_path / "audit" / "log.jsonl"
    assert read_audit(path) == []
    append_audit(path, {"decision": "rejected", "recall": 0.8})
    append_audit(path, {"decision": "promoted"})
    records = read_audit(path)
    assert [r["decision"] for r in records] == ["rejected", "promoted"] and "time" in records[0]
    path.write_text(path.read_text() + "{broken\n")
    with pytest.raises(DataError, match=":3: damaged"):
        read_audit(path)
