"""A model's small JSON facts (class names, encoder taps...) stored as one uint8 tensor.

Bundles hold nothing but safetensors, so the facts travel as JSON bytes in the tensor
``META_KEY``; numpy only, so the torch models, the bundle and the torch-free runtime all read it.

>>> decode_meta(encode_meta({"classes": ["good", "scratch"]}))
{'classes': ['good', 'scratch']}
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import numpy as np

META_KEY = "meta.json"  # JSON bytes stored as a uint8 tensor: bundles stay safetensors-only


def encode_meta(meta: Mapping[str, Any]) -> np.ndarray:
    """A model's small JSON facts as the uint8 tensor ``META_KEY``."""
    return np.frombuffer(json.dumps(dict(meta)).encode("utf-8"), dtype=np.uint8).copy()


def decode_meta(array: np.ndarray) -> dict[str, Any]:
    """The inverse of ``encode_meta``."""
    return json.loads(np.asarray(array, dtype=np.uint8).tobytes().decode("utf-8"))
