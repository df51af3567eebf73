"""The contract every model keeps: threshold value, calibration record, refusals."""

from __future__ import annotations

import math

import pytest

from defectscope.errors import ConfigError, DefectscopeError
from defectscope.models import create_model
from defectscope.models.contract import InspectionModel


class Demo(InspectionModel):
    name = "demo"
    is_fitted = False

    def __init__(self, fitted: bool) -> None:
        self.is_fitted = fitted


def test_threshold_and_its_calibration_record_are_kept():
    model = Demo(fitted=True)
    assert model.threshold is None
    record = {"rule": "recall", "target": 1.0}
    assert model.set_threshold(2, record) is model
    assert model.threshold == 2.0 and isinstance(model.threshold, float)
    record["rule"] = "changed later"
    assert model.calibration_ == {"rule": "recall", "target": 1.0}  # a copy, not the caller's


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_thresholds_are_refused(bad):
    with pytest.raises(ConfigError, match="finite"):
        Demo(fitted=True).set_threshold(bad)


def test_unfitted_model_says_how_to_fit():
    with pytest.raises(DefectscopeError, match="demo is not fitted: call fit"):
        Demo(fitted=False)._check_fitted()
    Demo(fitted=True)._check_fitted()


def test_detection_models_keep_their_confidence_range():
    detector = create_model("reference")
    with pytest.raises(ConfigError, match=r"confidence in \[0, 1\]"):
        detector.set_threshold(1.5)
    assert detector.set_threshold(0.4).threshold == 0.4
