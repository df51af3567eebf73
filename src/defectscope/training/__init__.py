"""Training workflows: a dataset in, a calibrated, verified model bundle out.

``train_anomaly`` (self-tuning, calibration on goods and synthetic defects), ``train_supervised``
and ``train_detection`` split, fit through the model contract's ``fit(data, val)``, calibrate the
threshold, store reference images and write the bundle; the test split is never read. They sit
above the models; the training loops the models run sit below them, beside the networks, in
``defectscope.models.fitting``.
"""

from defectscope.training.anomaly import TrainResult, prepare_splits, train_anomaly

__all__ = ["TrainResult", "prepare_splits", "train_anomaly"]
