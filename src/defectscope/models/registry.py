"""An explicit model registry, in the spirit of timm's ``@register_model`` / ``create_model``.

>>> "patchcore" in list_models()
True
>>> model = create_model("padim", image_size=128)
>>> describe_model("padim")["options"][0]["name"]
'backbone'
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Callable, TypeVar

from defectscope.errors import ConfigError

_MODELS: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register(name: str) -> Callable[[T], T]:
    def decorator(cls: T) -> T:
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(f"model name {name!r} registered twice")
        _MODELS[name] = cls
        cls.name = name
        return cls

    return decorator


def _ensure_builtin_models() -> None:
    # Importing the modules runs their @register decorators; done lazily, not at package import.
    from defectscope.models import (classifier, detector, padim, patchcore,  # noqa: F401
                                    reference, segmenter)


def list_models() -> list[str]:
    _ensure_builtin_models()
    return sorted(_MODELS)


def model_class(name: str) -> type:
    _ensure_builtin_models()
    try:
        return _MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(sorted(_MODELS))}") from None


def create_model(name: str, **config: Any):
    """A new, unfitted model; unknown options raise ``ConfigError`` naming them."""
    cls = model_class(name)
    return cls(**config)


def describe_model(name: str) -> dict[str, Any]:
    """A model's one-paragraph summary (its module's docstring) and every option it takes
    (``--set NAME=VALUE``), with type and default, in declaration order."""
    cls = model_class(name)
    doc = (sys.modules[cls.__module__].__doc__ or "").strip()
    summary = " ".join(doc.split("\n\n")[0].split())
    options = []
    for field in dataclasses.fields(cls.config_class):
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = None
        options.append({"name": field.name, "type": str(field.type),
                        "default": list(default) if isinstance(default, tuple) else default})
    return {"name": name, "summary": summary, "options": options}
