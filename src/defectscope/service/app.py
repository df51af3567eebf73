"""The REST service: an app factory, its limits, its metrics and its error handling.

Why a factory and not a module-level ``app``: nothing happens at import, every test builds its
own app with a fake inspector and a temporary database, and two apps never share metrics.

>>> app = create_app(BundleInspector("model"), ResultStore(), ImageArchive("archive"),
...                  token=resolve_token(None, os.environ))              # doctest: +SKIP
>>> uvicorn.run(app, host="127.0.0.1", port=8000)                        # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Histogram

from defectscope import __version__
from defectscope.data.image_io import DEFAULT_MAX_PIXELS
from defectscope.errors import ConfigError
from defectscope.line.actions import Archive
from defectscope.line.pipeline import Inspector
from defectscope.service.auth import check_token
from defectscope.service.dashboard import DashboardConfig, install_dashboard
from defectscope.service.routes import router, upload_too_large
from defectscope.service.studio import StudioConfig, install_studio
from defectscope.store.archive import ImageArchive
from defectscope.store.results import ResultStore, StoreError
from defectscope.values import Verdict

log = logging.getLogger(__name__)

MB = 1 << 20
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the uploaded file


class UploadTooLarge(Exception):
    """The request body grew past the limit while it was being read."""


class Metrics:
    """Prometheus metrics in the app's own registry (never the process-wide default one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.parts = Counter("defectscope_parts", "Inspected parts by verdict", ["verdict"],
                             registry=self.registry)
        self.latency = Histogram(
            "defectscope_inspect_latency_seconds", "POST /inspect, upload read to answer",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry)
        self.rejected = Counter("defectscope_rejected_uploads", "Uploads refused, by reason",
                                ["reason"], registry=self.registry)
        for verdict in Verdict:
            self.parts.labels(verdict.value)


@dataclass
class ServiceContext:
    """Everything the routes need, kept on ``app.state.ctx`` (no globals)."""

    inspector: Inspector
    store: ResultStore
    archive: ImageArchive
    token: str
    max_upload_bytes: int
    max_pixels: int
    line: str
    read_token: str | None = None
    public_reads: bool = False
    cycle_budget_ms: float | None = None
    metrics: Metrics = field(default_factory=Metrics)
    # one inference at a time: models are not guaranteed thread-safe, and on a small CPU
    # parallel inference is no faster
    inference_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.archiver = Archive(self.archive, ok_rate=1.0)  # keep every upload: /image serves it


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` before and while they are read.

    A declared ``Content-Length`` over the limit gets 413 at once; a chunked body that grows
    past it raises ``UploadTooLarge`` inside the reader, which the app turns into 413.
    """

    def __init__(self, app, max_bytes: int, limit_bytes: int, refused: Callable[[], None]) -> None:
        # max_bytes: the body limit (upload limit + multipart overhead); limit_bytes: the upload
        # limit users are told; refused: counts the refusal (the rejected-uploads metric)
        self.app, self.max_bytes, self.limit_bytes, self.refused = (app, max_bytes, limit_bytes,
                                                                    refused)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                response = JSONResponse({"detail": "invalid Content-Length header"}, 400)
                return await response(scope, receive, send)
            if int(declared) > self.max_bytes:
                self.refused()
                response = JSONResponse({"detail": upload_too_large(self.limit_bytes)}, 413)
                return await response(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise UploadTooLarge()
            return message

        await self.app(scope, limited_receive, send)


def create_app(inspector: Inspector, store: ResultStore, archive: ImageArchive, *, token: str,
               max_upload_bytes: int = 20 * MB, max_pixels: int = DEFAULT_MAX_PIXELS,
               line: str = "line1", read_token: str | None = None,
               public_reads: bool = False, cycle_budget_ms: float | None = None,
               dashboard: DashboardConfig | None = None,
               studio: StudioConfig | None = None) -> FastAPI:
    """The FastAPI app. ``token`` guards uploads and reviews; reads need it or ``read_token``
    unless ``public_reads`` (see ``defectscope.service.auth``). ``cycle_budget_ms`` turns a
    slower inspection into the fail-safe verdict; ``dashboard`` configures ``/dashboard`` and its
    ``/api/...`` endpoints; ``studio`` adds the labelling page ``/label`` over a dataset."""
    token = check_token(token)
    if read_token is not None and check_token(read_token) == token:
        raise ConfigError("the read-only token must differ from the write token")
    ctx = ServiceContext(inspector, store, archive, token, int(max_upload_bytes),
                         int(max_pixels), line, read_token=read_token,
                         public_reads=bool(public_reads), cycle_budget_ms=cycle_budget_ms)
    app = FastAPI(title="defectscope", version=__version__,
                  description="Visual inspection results: upload an image, get a verdict.")
    app.state.ctx = ctx
    app.include_router(router)
    install_dashboard(app, dashboard)
    if studio is not None:
        install_studio(app, studio)
    app.add_middleware(BodyLimit, max_bytes=ctx.max_upload_bytes + MULTIPART_OVERHEAD,
                       limit_bytes=ctx.max_upload_bytes,
                       refused=lambda: ctx.metrics.rejected.labels("too_large").inc())

    @app.exception_handler(UploadTooLarge)
    async def _upload_too_large(request: Request, exc: UploadTooLarge) -> JSONResponse:
        ctx.metrics.rejected.labels("too_large").inc()
        return JSONResponse({"detail": upload_too_large(ctx.max_upload_bytes)}, 413)

    @app.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError) -> JSONResponse:
        log.error("results database error: %s", exc)
        return JSONResponse({"detail": f"results database unavailable: {exc}"}, 503)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; see the service log"}, 500)

    return app
