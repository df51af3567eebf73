"""``defectscope models [NAME] [--json]``: the registered models and the options each takes.

    defectscope models                 # one line per model
    defectscope models segmenter       # its options (for --set NAME=VALUE), types and defaults
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models", help="list the models, or one model's options (for train --set)",
        description="List the registered models; with a NAME, the options that model takes "
                    "(train --set NAME=VALUE), their types and defaults.")
    parser.add_argument("name", nargs="?", help="a model name, e.g. segmenter")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=run_models)


def _value(value: Any) -> str:
    return json.dumps(value)


def run_models(args: argparse.Namespace) -> int:
    from defectscope.models.registry import describe_model, list_models

    names = [args.name] if args.name else list_models()
    described = [describe_model(name) for name in names]
    if args.json:
        print(json.dumps(described if not args.name else described[0], indent=2))
        return 0
    if not args.name:
        width = max(len(name) for name in names)
        for model in described:
            print(f"{model['name']:{width}s}  {model['summary']}")
        print("\n`defectscope models NAME` lists a model's options (train --set NAME=VALUE).")
        return 0
    model = described[0]
    print(f"{model['name']}: {model['summary']}\n\noptions (train --set NAME=VALUE):")
    width = max(len(option["name"]) for option in model["options"])
    for option in model["options"]:
        print(f"  {option['name']:{width}s}  {option['type']:18s}  default "
              f"{_value(option['default'])}")
    return 0
