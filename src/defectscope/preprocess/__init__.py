"""Preprocessing that travels inside the model bundle, so training and inspection never disagree."""

from defectscope.preprocess.pipeline import Preprocessor, PreprocessConfig

__all__ = ["Preprocessor", "PreprocessConfig"]
