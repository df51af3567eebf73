"""Model options -> a config dataclass, with clear errors (numpy- and torch-free).

Options arrive from the CLI (``--set key=value``, parsed as JSON), YAML files and Python calls,
so a name may be misspelt and a yes/no option may arrive as a string: both are refused here,
rather than ignored or read as "true" because a non-empty string is truthy.

>>> import dataclasses
>>> @dataclasses.dataclass(frozen=True)
... class Example:
...     augment: bool = True
>>> make_config(Example, {"augment": "no"})
Traceback (most recent call last):
...
defectscope.errors.ConfigError: option augment='no' must be true or false
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from defectscope.errors import ConfigError


def make_config(config_class: type, options: Mapping[str, Any]):
    """Build ``config_class(**options)``; unknown names, non-boolean values for boolean fields
    and wrong arguments become a ``ConfigError`` naming the option."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ConfigError(f"unknown options {unknown}; valid options: {sorted(fields)}")
    for name, value in options.items():
        if fields[name].type in ("bool", bool) and not isinstance(value, bool):
            raise ConfigError(f"option {name}={value!r} must be true or false")
    try:
        return config_class(**options)
    except TypeError as error:
        raise ConfigError(str(error)) from error
