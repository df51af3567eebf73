"""Training: plain loops that turn a dataset manifest into a calibrated model bundle."""

from defectscope.training.anomaly import TrainResult, prepare_splits, train_anomaly

__all__ = ["TrainResult", "prepare_splits", "train_anomaly"]
