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
from defectscope.cli.threads import apply_thread_settings
from defectscope.errors import DefectscopeError


def build_parser() -> argparse.ArgumentParser:
    from defectscope.cli import catalogue, data, demo, line, model, monitor, runtime
    from defectscope.cli import batch, label, preprocess

    parser = argparse.ArgumentParser(
        prog="defectscope",
        description="Automated visual inspection: train on images of parts, then inspect parts.",
    )
    parser.add_argument("--version", action="version", version=f"defectscope {__version__}")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for torch and OpenMP (default: the cores this process "
                        "may use, or OMP_NUM_THREADS when set); waiting threads always sleep "
                        "(OMP_WAIT_POLICY=PASSIVE unless set), so training beside other jobs "
                        "does not slow tenfold")
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
    if args.threads is not None and args.threads < 1:
        print(f"defectscope: error: --threads must be at least 1, not {args.threads}",
              file=sys.stderr)
        return 2
    apply_thread_settings(args.threads)  # before a handler imports torch
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
