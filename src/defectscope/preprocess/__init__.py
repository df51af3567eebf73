"""Preprocessing that travels inside the model bundle, so training and inspection never disagree."""

from defectscope.preprocess.pipeline import Prepared, Preprocessor, PreprocessConfig
from defectscope.preprocess.steps import STEP_TYPES, parse_step, parse_steps

__all__ = ["Prepared", "Preprocessor", "PreprocessConfig", "STEP_TYPES", "parse_step", "parse_steps"]
