"""Models: each a plain torch module plus a thin model class (fit, predict, state for bundles)."""

from defectscope.models.registry import create_model, list_models, model_class, register

__all__ = ["create_model", "list_models", "model_class", "register"]
