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

from defectscope.data.image_io import DEFAULT_MAX_PIXELS
from defectscope.errors import ConfigError
from defectscope.line.runner import BACKENDS, TRIGGERS
from defectscope.store.locations import (DEFAULT_DB_URL, absolute_db_url, default_archive_for,
                                         describe_db)

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
    parser.add_argument("--db", default=DEFAULT_DB_URL, type=absolute_db_url, metavar="URL",
                        help=f"results database (default {DEFAULT_DB_URL}, the same for run, "
                        "serve, monitor and review; PostgreSQL: "
                        "postgresql+psycopg://user:pw@host/db)")
    parser.add_argument("--archive", metavar="DIR",
                        help="image archive folder (default: images/ beside a SQLite --db, "
                        "else runs/line/images)")
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
    parser.add_argument("--once", action="store_true",
                        help="with folder:DIR, inspect the files there, then stop with a "
                        "summary (a batch of files; default: watch for new ones)")
    parser.add_argument("--max-pixels", type=_positive(int), default=DEFAULT_MAX_PIXELS,
                        metavar="N", help="image files with more pixels are refused "
                        f"(UNSURE) from their header (default {DEFAULT_MAX_PIXELS:,})")
    parser.add_argument("--alert-webhook", metavar="URL",
                        help="POST operator alerts (fail-safe parts, failing actions) here")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per part on stdout (id, part_id, verdict, score, ...)")
    parser.set_defaults(handler=run_line)


def _add_serve(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="run the REST service: POST /inspect, GET /results, /health, /metrics",
        description="Serve the model over HTTP (OpenAPI at /docs; the dashboard at /). Every "
        "request for data needs the header 'Authorization: Bearer <token>': uploads and reviews "
        "the write token (--token or DEFECTSCOPE_TOKEN), reads (results, part images, "
        "dashboard data, metrics) the write token or a read-only token (--read-token or "
        "DEFECTSCOPE_READ_TOKEN). /health is open.")
    _add_common(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--token", help="bearer token (default: $DEFECTSCOPE_TOKEN)")
    parser.add_argument("--no-auth", action="store_true",
                        help="accept requests without a token (only on a trusted network)")
    parser.add_argument("--read-token", metavar="TOKEN",
                        help="a second token that may only read (default: "
                        "$DEFECTSCOPE_READ_TOKEN; none)")
    parser.add_argument("--public-reads", action="store_true",
                        help="serve reads (results, images, dashboard data) without a token, "
                        "e.g. for a kiosk screen on a closed network; writes still need it")
    parser.add_argument("--protect-reads", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--max-pixels", type=_positive(int), default=DEFAULT_MAX_PIXELS,
                        metavar="N", help="refuse uploads with more pixels, read from the "
                        f"header before decoding (413; default {DEFAULT_MAX_PIXELS:,})")
    parser.add_argument("--cycle-budget-ms", type=_positive(float), metavar="MS",
                        help="an inspection that takes longer is judged by the fail-safe "
                        "policy (UNSURE unless the model said NG)")
    parser.add_argument("--datasets", default="runs/line/datasets", metavar="DIR",
                        help="where reviewed labels are exported as new dataset versions "
                        "(dashboard review queue; default runs/line/datasets)")
    parser.add_argument("--label-data", metavar="DIR|MANIFEST",
                        help="open the labelling studio at /label over this folder of images or "
                        "dataset manifest")
    parser.add_argument("--label-classes", metavar="A,B",
                        help="defect types for the studio (default: the manifest's)")
    parser.add_argument("--label-export", default="runs/line/labels", metavar="DIR",
                        help="folder for the studio's exports (default runs/line/labels)")
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


def _archive_dir(args: argparse.Namespace) -> Path:
    return Path(args.archive).resolve() if args.archive else default_archive_for(args.db)


def run_line(args: argparse.Namespace) -> int:
    from defectscope.line.runner import LineConfig, LineRunner

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    archive = None if args.no_archive else _archive_dir(args)
    config = LineConfig(
        model_dir=Path(args.model), source=args.source, db_url=args.db,
        archive_dir=archive, line=args.line,
        mqtt_url=args.mqtt, mqtt_queue=Path(args.mqtt_queue) if args.mqtt_queue else None,
        opcua_endpoint=args.opcua, trigger=args.trigger, cycle_budget_ms=args.cycle_budget_ms,
        max_parts=args.max_parts, ok_archive_rate=args.ok_archive_rate, once=args.once,
        max_pixels=args.max_pixels,
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


def _studio(args: argparse.Namespace):
    if not args.label_data:
        if args.label_classes:
            raise ConfigError("--label-classes needs --label-data")
        return None
    from defectscope.service.studio import StudioConfig

    classes = tuple(c.strip() for c in args.label_classes.split(",")) if args.label_classes \
        else None
    return StudioConfig(Path(args.label_data), classes, Path(args.label_export))


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from defectscope.line.runner import load_inspector
    from defectscope.service import create_app, resolve_token
    from defectscope.service.auth import require_token, resolve_read_token
    from defectscope.service.dashboard import DashboardConfig
    from defectscope.store import ImageArchive, ResultStore

    if args.protect_reads:
        print("defectscope: note: --protect-reads is the default now (reads need a token); the "
              "option is accepted and does nothing", file=sys.stderr)
    if args.public_reads and args.protect_reads:
        raise ConfigError("--public-reads and --protect-reads contradict each other")
    read_token = None
    if args.no_auth:
        if args.token or args.read_token or args.protect_reads:
            raise ConfigError("--no-auth cannot be combined with --token, --read-token or "
                              "--protect-reads")
        print("defectscope: WARNING: --no-auth: anyone who reaches this port can read results "
              "and images, upload images and write results", file=sys.stderr)
        token = secrets.token_hex(16)  # never sent to anyone: the check is switched off below
    else:
        token = resolve_token(args.token, os.environ)
        read_token = resolve_read_token(args.read_token, os.environ)
    _check_port_free(args.host, args.port)
    notice = lambda message: print(f"defectscope: {message}", file=sys.stderr, flush=True)  # noqa: E731
    inspector = load_inspector(args.model, notice, args.backend)
    store = ResultStore(args.db)
    archive_dir = _archive_dir(args)
    try:
        base_manifest = Path(args.model) / "manifest.json"
        dashboard = DashboardConfig(
            datasets_dir=Path(args.datasets),
            base_manifest=base_manifest if base_manifest.is_file() else None)
        app = create_app(inspector, store, ImageArchive(archive_dir), token=token,
                         line=args.line, read_token=read_token,
                         public_reads=args.public_reads or args.no_auth,
                         max_pixels=args.max_pixels, cycle_budget_ms=args.cycle_budget_ms,
                         dashboard=dashboard, studio=_studio(args))
        if args.no_auth:
            app.dependency_overrides[require_token] = lambda: None
        notice(f"serving {args.model} on http://{args.host}:{args.port} (API docs at /docs); "
               f"results: {describe_db(args.db)}; images: {archive_dir}")
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        store.close()
    return 0
