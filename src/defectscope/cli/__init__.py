"""The ``defectscope`` command: parse arguments, build config, call the library.

Each sub-command lives in its own module with a ``register(subparsers)`` function that adds its
parser and sets ``handler``; this module only wires them and turns library errors into one
readable line and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from defectscope import __version__
from defectscope.errors import DefectscopeError


def build_parser() -> argparse.ArgumentParser:
    from defectscope.cli import catalogue, data, demo, line, model, monitor, runtime
    from defectscope.cli import batch, label, preprocess

    parser = argparse.ArgumentParser(
        prog="defectscope",
        description="Automated visual inspection: train on images of parts, then inspect parts.",
    )
    parser.add_argument("--version", action="version", version=f"defectscope {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    model.register(subparsers)
    data.register(subparsers)
    line.register(subparsers)
    monitor.register(subparsers)
    runtime.register(subparsers)
    demo.register(subparsers)
    preprocess.register(subparsers)
    catalogue.register(subparsers)
    batch.register(subparsers)
    label.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except DefectscopeError as error:
        print(f"defectscope: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("defectscope: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
