"""The model families, registered once: each model name's scoring head.

The torch models build their head from their live state; the torch-free runtime looks the head up
here by the bundle's model name and builds it from the bundle's arrays. A test walks the model
registry and checks that every registered model has its head here and builds that very class.

>>> head_class("padim").__name__
'AnomalyHead'
"""

from __future__ import annotations

from typing import Any

from defectscope.errors import BundleError
from defectscope.scoring.box_heads import BoxHead, DetectorHead, ReferenceHead
from defectscope.scoring.heads import AnomalyHead, ClassifierHead, Head, SegmenterHead

HEADS: dict[str, type[Head]] = {
    "patchcore": AnomalyHead, "padim": AnomalyHead,
    "classifier": ClassifierHead, "segmenter": SegmenterHead,
    "reference": ReferenceHead, "detector": DetectorHead,
}
ANOMALY_MODELS = tuple(name for name, head in HEADS.items() if head is AnomalyHead)
BOX_MODELS = tuple(name for name, head in HEADS.items() if issubclass(head, BoxHead))


def head_class(name: Any) -> type[Head]:
    """The head of the model family ``name``; any other name is a ``BundleError``."""
    if not isinstance(name, str) or name not in HEADS:
        raise BundleError(f"the ONNX runtime supports {', '.join(HEADS)}, not {name!r}; use the "
                          "torch path for this model")
    return HEADS[name]
