"""The REST endpoints. Contract (other tools depend on these exact forms):

- ``POST /inspect`` (Bearer token) takes a multipart form field ``file`` and answers the result
  JSON with at least ``id``, ``verdict`` (OK, NG or UNSURE), ``score``, ``model_version``; the
  result is in the database before the answer is sent;
- ``GET /results/{id}`` answers the same JSON; ``GET /results`` lists them with filters;
- ``GET /results/{id}/image`` and ``/heatmap``, ``GET /health``, ``GET /metrics``.

Uploads are checked before decoding: size (413), declared type (415), header pixel count (413,
so a 20k x 20k decompression bomb is never decoded), then decoded strictly (422 if truncated).

>>> client.post("/inspect", files={"file": open("part.png", "rb")},
...             headers={"Authorization": f"Bearer {token}"}).json()["verdict"]  # doctest: +SKIP
'OK'
"""

from __future__ import annotations

import datetime as _dt
import logging
import tempfile
import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from PIL import Image
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from defectscope.data.image_io import image_size, load_image
from defectscope.errors import ImageReadError
from defectscope.line.actions import ArchivedPaths
from defectscope.line.decision import evaluate
from defectscope.line.sources import Frame, new_frame_id
from defectscope.service.auth import require_read, require_token
from defectscope.store.results import StoredResult
from defectscope.values import Verdict

if TYPE_CHECKING:
    from defectscope.service.app import ServiceContext

log = logging.getLogger(__name__)
router = APIRouter()

MAX_ID = 2**63 - 1
MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff",
               ".webp": "image/webp"}
_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary"}}}}}}}


class ResultOut(BaseModel):
    id: int
    part_id: str
    verdict: Verdict
    score: float | None
    threshold: float | None
    model_version: str
    dataset_version: str | None
    line: str
    source: str
    timestamp: float
    defect_types: list[str]
    timings_ms: dict[str, float]
    reason: str | None
    image_sha256: str | None
    image_url: str | None
    heatmap_url: str | None


class ResultList(BaseModel):
    items: list[ResultOut]
    total: int
    limit: int
    offset: int


def _ctx(request: Request) -> "ServiceContext":
    return request.app.state.ctx


def read_access(request: Request) -> None:
    """Reads need a token (write or read-only) unless the app serves public reads."""
    require_read(request)


def result_json(stored: StoredResult) -> dict[str, Any]:
    data = stored.result.to_dict()
    base = f"/results/{stored.id}"
    return {"id": stored.id, **data,
            "image_url": f"{base}/image" if stored.image_path else None,
            "heatmap_url": f"{base}/heatmap" if stored.heatmap_path else None}


def upload_too_large(max_upload_bytes: int) -> str:
    """The one message for an upload over the limit, wherever it is refused."""
    return (f"upload too large: the limit is {max_upload_bytes / 2**20:.1f} MB "
            f"({max_upload_bytes} bytes)")


def _reject(ctx: "ServiceContext", status: int, reason: str, detail: str) -> HTTPException:
    ctx.metrics.rejected.labels(reason).inc()
    return HTTPException(status, detail)


@router.post("/inspect", response_model=ResultOut, dependencies=[Depends(require_token)],
             openapi_extra=_UPLOAD_BODY, summary="Inspect one uploaded image")
async def inspect_upload(request: Request) -> dict[str, Any]:
    ctx, started = _ctx(request), time.perf_counter()
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise _reject(ctx, 415, "content_type", "send the image as multipart/form-data with "
                      "the field 'file'")
    try:
        form = await request.form(max_files=1, max_fields=8)
    except StarletteHTTPException as error:  # malformed multipart body
        raise _reject(ctx, 422, "bad_form", f"malformed multipart body: {error.detail}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise _reject(ctx, 422, "no_file", "the multipart field 'file' with the image is "
                          "missing")
        declared = (upload.content_type or "").split(";")[0].strip().lower()
        if declared and not declared.startswith("image/") and declared != "application/octet-stream":
            raise _reject(ctx, 415, "content_type", f"'file' is {declared}, not an image")
        data = await upload.read(ctx.max_upload_bytes + 1)
        name = (upload.filename or "upload")[:200]
    finally:
        await form.close()
    if len(data) > ctx.max_upload_bytes:
        raise _reject(ctx, 413, "too_large", upload_too_large(ctx.max_upload_bytes))
    if not data:
        raise _reject(ctx, 422, "empty", "the uploaded file is empty")
    stored = await run_in_threadpool(_inspect_bytes, ctx, data, name)
    ctx.metrics.parts.labels(stored.result.verdict.value).inc()
    ctx.metrics.latency.observe(time.perf_counter() - started)
    return result_json(stored)


def _inspect_bytes(ctx: "ServiceContext", data: bytes, name: str) -> StoredResult:
    """Check the header, decode strictly, inspect, archive, commit; runs in a worker thread."""
    with tempfile.NamedTemporaryFile(suffix=".upload") as temp:
        temp.write(data)
        temp.flush()
        try:
            height, width = image_size(temp.name)
            if height * width > ctx.max_pixels:
                raise _reject(ctx, 413, "too_many_pixels", f"image is {width}x{height} = "
                              f"{height * width:,} pixels; the limit is {ctx.max_pixels:,} "
                              "pixels")
            image = load_image(temp.name)
        except ImageReadError as error:
            if isinstance(error.__cause__, Image.DecompressionBombError):
                raise _reject(ctx, 413, "too_many_pixels", "image has far too many pixels "
                              "(decompression bomb); refused without decoding") from None
            problem = error.problem.replace(temp.name, name)  # never leak server paths
            raise _reject(ctx, 422, "not_an_image", f"{name}: {problem}") from None
    frame = Frame(new_frame_id("upload"), time.time(), f"upload:{name}", image, data=data)
    with ctx.inference_lock:
        decision = evaluate(frame, ctx.inspector, line=ctx.line,
                            cycle_budget_ms=ctx.cycle_budget_ms)
    try:
        paths = ctx.archiver.save(decision)
    except Exception:  # the verdict matters more than its picture: log and keep going
        log.exception("archiving upload %s failed", frame.frame_id)
        paths = ArchivedPaths()
    record_id = ctx.store.add(decision.part, paths.image_path, paths.heatmap_path)
    stored = ctx.store.get(record_id)
    assert stored is not None  # just committed
    return stored


def _time_param(value: str | None, name: str) -> float | None:
    """Unix seconds, or an ISO 8601 time (naive means UTC)."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = _dt.datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, f"{name} must be Unix seconds or an ISO 8601 time, "
                            f"not {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.timestamp()


@router.get("/results", response_model=ResultList, dependencies=[Depends(read_access)])
def list_results(request: Request, verdict: Verdict | None = None, since: str | None = None,
                 until: str | None = None, line: str | None = None,
                 model_version: str | None = None,
                 limit: int = Query(100, ge=1, le=1000),
                 offset: int = Query(0, ge=0, le=MAX_ID)) -> dict[str, Any]:
    """Results newest first; ``since`` <= timestamp < ``until`` (Unix seconds or ISO 8601)."""
    store = _ctx(request).store
    filters: dict[str, Any] = {"verdict": verdict, "since": _time_param(since, "since"),
               "until": _time_param(until, "until"), "line": line,
               "model_version": model_version}
    rows = store.query(**filters, limit=limit, offset=offset)
    return {"items": [result_json(r) for r in rows], "total": store.count(**filters),
            "limit": limit, "offset": offset}


def _stored(request: Request, id: int) -> StoredResult:
    stored = _ctx(request).store.get(id)
    if stored is None:
        raise HTTPException(404, f"no result with id {id}")
    return stored


@router.get("/results/{id}", response_model=ResultOut, dependencies=[Depends(read_access)])
def get_result(request: Request, id: int = Path(ge=1, le=MAX_ID)) -> dict[str, Any]:
    return result_json(_stored(request, id))


def _archived_file(request: Request, id: int, stored_path: str | None, what: str) -> FileResponse:
    path = _ctx(request).archive.resolve(stored_path) if stored_path else None
    if path is None:
        raise HTTPException(404, f"result {id} has no archived {what}")
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"))


@router.get("/results/{id}/image", dependencies=[Depends(read_access)],
            response_class=FileResponse)
def get_image(request: Request, id: int = Path(ge=1, le=MAX_ID)) -> FileResponse:
    return _archived_file(request, id, _stored(request, id).image_path, "image")


@router.get("/results/{id}/heatmap", dependencies=[Depends(read_access)],
            response_class=FileResponse)
def get_heatmap(request: Request, id: int = Path(ge=1, le=MAX_ID)) -> FileResponse:
    return _archived_file(request, id, _stored(request, id).heatmap_path, "heatmap")


@router.get("/health")
def health(request: Request, response: Response) -> dict[str, Any]:
    """Liveness and what is loaded; 503 when the results database does not answer."""
    ctx = _ctx(request)
    database = ctx.store.ping()
    if not database:
        response.status_code = 503
    return {"status": "ok" if database else "degraded", "database": database,
            "model_version": ctx.inspector.model_version,
            "dataset_version": ctx.inspector.dataset_version,
            "threshold": ctx.inspector.threshold, "line": ctx.line}


@router.get("/metrics", response_class=Response, dependencies=[Depends(read_access)])
def metrics(request: Request) -> Response:
    """Prometheus text format: parts per verdict, inspection latency, refused uploads."""
    return Response(generate_latest(_ctx(request).metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)
