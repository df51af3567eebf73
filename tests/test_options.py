"""Model options -> config: misspelt names and yes/no options given as strings are refused."""

from __future__ import annotations

import dataclasses

import pytest

from defectscope.errors import ConfigError
from defectscope.models import create_model
from defectscope.options import make_config


@dataclasses.dataclass(frozen=True)
class Example:
    augment: bool = True
    epochs: int = 3


def test_booleans_must_be_booleans():
    assert make_config(Example, {"augment": False}).augment is False
    for value in ("no", "false", 0, 1, None):
        with pytest.raises(ConfigError, match="augment=.* must be true or false"):
            make_config(Example, {"augment": value})


def test_unknown_names_and_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match=r"unknown options \['augmnet'\]"):
        make_config(Example, {"augmnet": True})
    assert make_config(Example, {"epochs": 5}).epochs == 5


@pytest.mark.parametrize("name, option", [("segmenter", "flip_average"),
                                          ("classifier", "augment"),
                                          ("reference", "align")])
def test_every_model_family_refuses_a_string_for_a_switch(name, option):
    with pytest.raises(ConfigError, match=f"{option}='yes' must be true or false"):
        create_model(name, **{option: "yes"})
