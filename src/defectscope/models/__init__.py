"""Models: each a plain torch network plus a thin model class keeping one contract.

``contract.InspectionModel`` is the base of all six registered models: ``fit(data, val)``, the
network (``network()``, what ``export`` writes to ONNX), the scoring head (``head()``, shared with
the torch-free runtime), ``predict`` / ``anomaly`` through the one predictor, the threshold, and
``arrays`` / ``restore`` for bundles. The family bases add what a family shares:
``anomaly_base`` (PatchCore, PaDiM), ``supervised_base`` (classifier, segmenter), ``box_base``
(reference comparison, detector). ``fitting/`` holds the training loops; ``registry`` the names.
"""

from defectscope.models.registry import create_model, list_models, model_class, register

__all__ = ["create_model", "list_models", "model_class", "register"]
