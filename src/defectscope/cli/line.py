"""``defectscope run|serve``: the line and the REST service. Parsing, printing, signals only.

    defectscope run --model MODEL_DIR --source folder:incoming [--mqtt mqtt://localhost:1883]
    defectscope serve --model MODEL_DIR --port 8000 --token "$DEFECTSCOPE_TOKEN"

Ctrl-C or SIGTERM stops the line cleanly: the current part is finished and logged, MQTT is
flushed (status ``stopped``) and a summary is printed. A second Ctrl-C aborts at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from defectscope.errors import ConfigError
from defectscope.line.runner import BACKENDS, DEFAULT_ARCHIVE, DEFAULT_DB, TRIGGERS

SOURCES = "folder:DIR | glob:PATTERN | video:FILE | camera:N | rtsp://URL | genicam:CTI_FILE"


def register(subparsers: argparse._SubParsersAction) -> None:
    _add_run(subparsers)
    _add_serve(subparsers)


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
        return value
    return parse


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="MODEL_DIR",
                        help="model folder (uses its onnx/ export when present, else torch)")
    parser.add_argument("--db", default=DEFAULT_DB, metavar="URL",
                        help=f"results database (default {DEFAULT_DB}; PostgreSQL: "
                        "postgresql+psycopg://user:pw@host/db)")
    parser.add_argument("--archive", default=str(DEFAULT_ARCHIVE), metavar="DIR",
                        help=f"image archive folder (default {DEFAULT_ARCHIVE})")
    parser.add_argument("--line", default="line1", help="line name (default line1)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="what runs the model: auto (default: the ONNX runtime when "
                        "MODEL_DIR/onnx exists, else torch), torch, onnxruntime, or openvino "
                        "(needs defectscope export --format openvino)")


def _add_run(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="run the inspection line: acquire, decide, log, publish",
        description="Inspect every part from --source, log each result to the database before "
        "acknowledging it, then print and publish it. Fail-safe: a part that cannot be read or "
        "judged is NG or UNSURE with the reason, never OK. Restart-safe: image files get part ids "
        "from their name and content, and parts already logged are skipped.")
    parser.add_argument("--source", required=True, metavar="SOURCE", help=SOURCES)
    _add_common(parser)
    parser.add_argument("--no-archive", action="store_true", help="archive no images")
    parser.add_argument("--ok-archive-rate", type=float, default=0.05, metavar="R",
                        help="share of OK parts whose image is archived (NG/UNSURE: all; "
                        "default 0.05)")
    parser.add_argument("--mqtt", metavar="URL", help="publish results to this broker "
                        "(mqtt://host[:port]) on defectscope/<line>/result, QoS 1")
    parser.add_argument("--mqtt-queue", metavar="FILE", help="MQTT outbox file (default "
                        "runs/line/mqtt-outbox-<line>.db): results wait here while the "
                        "broker is down")
    parser.add_argument("--opcua", metavar="URL", help="serve the PLC handshake here "
                        "(opc.tcp://0.0.0.0:4840/defectscope/); implies --trigger opcua")
    parser.add_argument("--trigger", choices=TRIGGERS, help="free: inspect every frame "
                        "(default); opcua: one frame per PLC trigger")
    parser.add_argument("--cycle-budget-ms", type=_positive(float), metavar="MS",
                        help="a part that takes longer is UNSURE (fail-safe)")
    parser.add_argument("--max-parts", type=_positive(int), metavar="N",
                        help="stop after N parts")
    parser.add_argument("--alert-webhook", metavar="URL",
                        help="POST operator alerts (fail-safe parts, failing actions) here")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per part on stdout (id, part_id, verdict, score, ...)")
    parser.set_defaults(handler=run_line)


def _add_serve(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="run the REST service: POST /inspect, GET /results, /health, /metrics",
        description="Serve the model over HTTP (OpenAPI at /docs). Uploads need the header "
        "'Authorization: Bearer <token>'; the token comes from --token or DEFECTSCOPE_TOKEN.")
    _add_common(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--token", help="bearer token (default: $DEFECTSCOPE_TOKEN)")
    parser.add_argument("--no-auth", action="store_true",
                        help="accept requests without a token (only on a trusted network)")
    parser.add_argument("--protect-reads", action="store_true",
                        help="require the token for GET /results too")
    parser.add_argument("--datasets", default="runs/line/datasets", metavar="DIR",
                        help="where reviewed labels are exported as new dataset versions "
                        "(dashboard review queue; default runs/line/datasets)")
    parser.set_defaults(handler=run_serve)


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGINT and SIGTERM call ``stop`` (a clean shutdown); a second one aborts at once."""
    def handler(signum: int, _frame: Any) -> None:
        if handler.calls:  # type: ignore[attr-defined]
            raise KeyboardInterrupt
        handler.calls += 1  # type: ignore[attr-defined]
        print(f"defectscope: {signal.Signals(signum).name}: stopping after the current part "
              "(again to abort)", file=sys.stderr, flush=True)
        stop()

    handler.calls = 0  # type: ignore[attr-defined]
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _part_line(event: dict[str, Any]) -> str:
    score = "n/a" if event.get("score") is None else f"{event['score']:.5g}"
    reason = f"  ({event['reason']})" if event.get("reason") else ""
    return f"{event['verdict']:<7} {score:>10}  {event['part_id']}  {event['source']}{reason}"


def run_line(args: argparse.Namespace) -> int:
    from defectscope.line.runner import LineConfig, LineRunner

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = LineConfig(
        model_dir=Path(args.model), source=args.source, db_url=args.db,
        archive_dir=None if args.no_archive else Path(args.archive), line=args.line,
        mqtt_url=args.mqtt, mqtt_queue=Path(args.mqtt_queue) if args.mqtt_queue else None,
        opcua_endpoint=args.opcua, trigger=args.trigger, cycle_budget_ms=args.cycle_budget_ms,
        max_parts=args.max_parts, ok_archive_rate=args.ok_archive_rate,
        alert_webhook=args.alert_webhook, backend=args.backend)

    def on_part(event: dict[str, Any]) -> None:
        text = json.dumps(event, default=str) if args.json else _part_line(event)
        print(text, flush=True)  # printed after the commit: a printed part is a logged part

    notice = lambda message: print(f"defectscope: {message}", file=sys.stderr, flush=True)  # noqa: E731
    runner = LineRunner(config, on_part=on_part, notice=notice)
    with stop_on_signals(runner.stop):
        summary = runner.run()
    print(summary.format(), file=sys.stderr if args.json else sys.stdout, flush=True)
    return 0


def _check_port_free(host: str, port: int) -> None:
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port}: must be in 1-65535")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError(f"cannot listen on {host}:{port} ({error.strerror}); is another "
                              "service using it? choose another --port") from None


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from defectscope.line.runner import load_inspector
    from defectscope.service import create_app, resolve_token
    from defectscope.service.auth import require_token
    from defectscope.service.dashboard import DashboardConfig
    from defectscope.store import ImageArchive, ResultStore

    if args.no_auth:
        if args.token or args.protect_reads:
            raise ConfigError("--no-auth cannot be combined with --token or --protect-reads")
        print("defectscope: WARNING: --no-auth: anyone who reaches this port can upload images "
              "and write results", file=sys.stderr)
        token = secrets.token_hex(16)  # never sent to anyone: the check is switched off below
    else:
        token = resolve_token(args.token, os.environ)
    _check_port_free(args.host, args.port)
    notice = lambda message: print(f"defectscope: {message}", file=sys.stderr, flush=True)  # noqa: E731
    inspector = load_inspector(args.model, notice, args.backend)
    store = ResultStore(args.db)
    try:
        base_manifest = Path(args.model) / "manifest.json"
        dashboard = DashboardConfig(
            datasets_dir=Path(args.datasets),
            base_manifest=base_manifest if base_manifest.is_file() else None)
        app = create_app(inspector, store, ImageArchive(args.archive), token=token,
                         line=args.line, protect_reads=args.protect_reads, dashboard=dashboard)
        if args.no_auth:
            app.dependency_overrides[require_token] = lambda: None
        notice(f"serving {args.model} on http://{args.host}:{args.port} (API docs at /docs); "
               f"results: {args.db}; images: {args.archive}")
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        store.close()
    return 0
