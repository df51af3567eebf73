"""``defectscope models``: the registered models and their options."""

from __future__ import annotations

import json

from defectscope.cli import main
from defectscope.models import create_model
from defectscope.models.registry import describe_model, list_models


def test_models_lists_every_registered_model_with_its_summary(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in list_models():
        assert any(line.startswith(name + " ") and len(line) > len(name) + 10 for line in lines)


def test_one_models_options_with_types_and_defaults(capsys):
    assert main(["models", "segmenter"]) == 0
    out = capsys.readouterr().out
    assert "select_metric" in out and '"dice"' in out and "ema_decay" in out
    assert main(["models", "segmenter", "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    options = {o["name"]: o for o in described["options"]}
    assert options["min_area"] == {"name": "min_area", "type": "float", "default": 0.0005}
    assert described["summary"].startswith("A defect segmenter")


def test_the_listed_defaults_are_accepted_as_options():
    """What `models NAME --json` prints can be given back as --set values, unchanged."""
    for name in list_models():
        model = create_model(name)
        for option in describe_model(name)["options"]:
            again = create_model(name, **{option["name"]: option["default"]})
            assert again.config.to_dict() == model.config.to_dict(), (name, option["name"])


def test_an_unknown_model_is_a_clear_error(capsys):
    assert main(["models", "nope"]) == 2
    assert "known models: " in capsys.readouterr().err
