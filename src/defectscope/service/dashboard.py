"""The control room: ``/dashboard`` (static HTML, JS and CSS shipped in the package, no CDN) and
the JSON endpoints it polls: ``/api/feed``, ``/api/stats``, ``/api/spc``, ``/api/drift``,
``/api/roi`` and ``/api/review/...``.

Reads follow the service's read rule (a token, write or read-only, unless ``public_reads``: see
``defectscope.service.auth``); every endpoint that changes state (a review, an export) needs
the write token. The page itself is open: it asks for the token once (kept in the browser's
local storage) and sends it with every request, images included. The charts are computed here by
``defectscope.monitor`` from the results log; the page only draws them.

>>> app = create_app(inspector, store, archive, token=token,
...                  dashboard=DashboardConfig(datasets_dir="datasets",
...                                            base_manifest="data/manifest.json"))  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from defectscope.data.image_io import load_image
from defectscope.data.images.manifest import Manifest
from defectscope.errors import ConfigError, DataError, DefectscopeError
from defectscope.monitor import (Costs, DriftThresholds, drift_report, ewma_chart,
                                 individuals_chart, ng_windows, p_chart, precision_recall,
                                 production_stats, roi_summary)
from defectscope.monitor.drift import image_features, load_reference
from defectscope.review import ExportConfig, export_version, latest_manifest, submit_review
from defectscope.review import versions as list_versions
from defectscope.service.auth import require_token
from defectscope.service.routes import read_access, result_json
from defectscope.store.reviews import (AlreadyReviewedError, QueueConfig, ReviewStore,
                                       UnknownPartError)

STATIC = Path(__file__).parent / "static"
router = APIRouter()


@dataclass(frozen=True)
class DashboardConfig:
    """What the dashboard shows and where reviewed data goes (``datasets_dir``; None: export off).

    Drift reference: ``drift_reference`` (a JSON file of scores, see ``monitor.drift``) or else
    the first ``reference_size`` results of the model version in use.
    """

    datasets_dir: Path | None = None
    base_manifest: Path | None = None
    queue: QueueConfig = field(default_factory=QueueConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    costs: Costs = field(default_factory=Costs)
    drift: DriftThresholds = field(default_factory=DriftThresholds)
    drift_reference: Path | None = None
    reference_size: int = 200
    current_size: int = 200
    feature_images: int = 32
    window_s: float = 3600.0
    lookback: int = 5000


@dataclass
class DashboardState:
    config: DashboardConfig
    reviews: ReviewStore


def install_dashboard(app: FastAPI, config: DashboardConfig | None = None) -> None:
    """Add the dashboard page, its assets and its JSON endpoints to ``app``."""
    ctx = app.state.ctx
    app.state.dashboard = DashboardState(config or DashboardConfig(), ReviewStore(ctx.store))
    app.include_router(router)
    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")


def _state(request: Request) -> tuple[Any, DashboardState]:
    return request.app.state.ctx, request.app.state.dashboard


def _recent(request: Request, limit: int | None = None) -> list:
    """Recent results, oldest first."""
    ctx, state = _state(request)
    return ctx.store.query(limit=limit or state.config.lookback)[::-1]


@router.get("/", include_in_schema=False)
def service_root() -> RedirectResponse:
    """A person who opens the service's address lands on the dashboard, not on a 404."""
    return RedirectResponse("/dashboard", status_code=307)


@router.get("/dashboard", include_in_schema=False)
def dashboard_page() -> FileResponse:
    return FileResponse(STATIC / "dashboard.html", media_type="text/html")


@router.get("/api/feed", dependencies=[Depends(read_access)])
def feed(request: Request, limit: int = Query(12, ge=1, le=100)) -> dict[str, Any]:
    return {"items": [result_json(r) for r in _state(request)[0].store.query(limit=limit)]}


@router.get("/api/stats", dependencies=[Depends(read_access)])
def stats(request: Request) -> dict[str, Any]:
    ctx, _ = _state(request)
    rows = _recent(request)
    return {**production_stats([r.result for r in rows]),
            "in_use": {"model_version": ctx.inspector.model_version,
                       "dataset_version": ctx.inspector.dataset_version,
                       "threshold": ctx.inspector.threshold}}


@router.get("/api/spc", dependencies=[Depends(read_access)])
def spc(request: Request, window_s: float | None = Query(None, gt=0),
        by_lot: bool = False) -> dict[str, Any]:
    """p-chart of the NG rate per window (or lot) and individuals/EWMA of the mean score."""
    _, state = _state(request)
    windows = ng_windows([r.result for r in _recent(request)],
                         window_s or state.config.window_s, by_lot=by_lot)
    body: dict[str, Any] = {"windows": [w.to_dict() for w in windows], "p_chart": None,
                            "individuals": None, "ewma": None, "alerts": []}
    if windows:
        body["p_chart"] = p_chart([w.ng for w in windows], [w.n for w in windows]).to_dict()
    means = [w.mean_score for w in windows if w.mean_score is not None]
    if len(means) >= 2:
        body["individuals"] = individuals_chart(means).to_dict()
        body["ewma"] = ewma_chart(means).to_dict()
    for name in ("p_chart", "individuals", "ewma"):
        if body[name]:
            body["alerts"] += body[name]["alerts"]
    return body


@lru_cache(maxsize=512)
def _features(path: str):
    return image_features(load_image(path))


def _feature_rows(ctx, rows, limit: int):
    found = []
    for row in rows:
        path = ctx.archive.resolve(row.image_path) if row.image_path else None
        if path is not None:
            try:
                found.append(_features(str(path)))
            except DefectscopeError:
                continue
        if len(found) >= limit:
            break
    return found


@router.get("/api/drift", dependencies=[Depends(read_access)])
def drift(request: Request) -> dict[str, Any]:
    """Scores of the newest parts against the reference, with a status (ok, warn, alarm)."""
    ctx, state = _state(request)
    config, store = state.config, ctx.store
    version = ctx.inspector.model_version
    total = store.count(model_version=version)
    ref_features: Any = None
    reference: Any
    if config.drift_reference is not None:
        reference, ref_features = load_reference(config.drift_reference)
        source = f"reference file {Path(config.drift_reference).name}"
        current_rows = store.query(model_version=version, limit=config.current_size)
    else:
        n_ref = min(config.reference_size, total)
        ref_rows = store.query(model_version=version, limit=n_ref, offset=total - n_ref)
        reference = [r.result.score for r in ref_rows if r.result.score is not None]
        source = f"first {n_ref} results of model {version}"
        current_rows = store.query(model_version=version,
                                   limit=max(0, min(config.current_size, total - n_ref)))
        ref_features = _feature_rows(ctx, ref_rows, config.feature_images) or None
    current = [r.result.score for r in current_rows if r.result.score is not None]
    cur_features = _feature_rows(ctx, current_rows, config.feature_images) or None
    report = drift_report(reference, current, config.drift, ref_features, cur_features)
    return {**report.to_dict(), "reference_source": source, "reference_scores": list(reference),
            "current_scores": current}


def _rates(reviews: ReviewStore) -> dict[str, Any]:
    pairs = reviews.reviewed_pairs()
    estimates: dict[str, Any] = {k: v.to_dict() for k, v in precision_recall(pairs).items()}
    passed = [defective for verdict, defective in pairs if verdict == "OK"]
    estimates["escape_rate"] = {"k": sum(passed), "n": len(passed),
                                "value": sum(passed) / len(passed) if passed else None}
    estimates["reviewed"] = len(pairs)
    return estimates


@router.get("/api/roi", dependencies=[Depends(read_access)])
def roi(request: Request, false_reject: float | None = Query(None, ge=0),
        escape: float | None = Query(None, ge=0),
        manual_inspection: float | None = Query(None, ge=0)) -> dict[str, Any]:
    _, state = _state(request)
    base = state.config.costs
    costs = Costs(base.false_reject if false_reject is None else false_reject,
                  base.escape if escape is None else escape,
                  base.manual_inspection if manual_inspection is None else manual_inspection)
    counts = production_stats([r.result for r in _recent(request)])
    rates = _rates(state.reviews)
    result = roi_summary(counts["n"], counts["verdicts"]["NG"], counts["verdicts"]["UNSURE"],
                         costs, rates["precision"]["value"], rates["escape_rate"]["value"])
    return {**result.to_dict(), "costs": costs.__dict__}


@router.get("/api/review/queue", dependencies=[Depends(read_access)])
def review_queue(request: Request, limit: int = Query(20, ge=1, le=200)) -> dict[str, Any]:
    _, state = _state(request)
    items = state.reviews.queue(state.config.queue, limit)
    return {"items": [result_json(r) for r in items], "config": state.config.queue.__dict__}


class ReviewIn(BaseModel):
    verdict: str
    defect_type: str | None = None
    mask_png: str | None = None  # base64 PNG, or a data: URL as canvas.toDataURL() gives
    box: list[float] | None = None
    reviewer: str = "operator"


def _decode_base64(text: str) -> bytes:
    payload = text.split(",", 1)[1] if text.startswith("data:") else text
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(422, "mask_png must be base64 PNG data (or a data: URL)") from None


@router.post("/api/review/parts/{result_id}", dependencies=[Depends(require_token)])
def review(request: Request, result_id: int, body: ReviewIn) -> dict[str, Any]:
    """Confirm one part: 404 unknown part, 409 already reviewed, 422 bad label/mask/box."""
    ctx, state = _state(request)
    mask = None if body.mask_png is None else _decode_base64(body.mask_png)
    try:
        label = submit_review(state.reviews, ctx.archive, result_id, body.verdict,
                              body.defect_type, mask, body.box, body.reviewer)
    except UnknownPartError as error:
        raise HTTPException(404, str(error)) from None
    except AlreadyReviewedError as error:
        raise HTTPException(409, str(error)) from None
    except ConfigError as error:
        raise HTTPException(422, str(error)) from None
    return label.to_dict()


@router.get("/api/review/labels", dependencies=[Depends(read_access)])
def review_labels(request: Request) -> dict[str, Any]:
    return {"items": [label.to_dict() for label in _state(request)[1].reviews.labels()]}


@router.get("/api/review/estimates", dependencies=[Depends(read_access)])
def review_estimates(request: Request) -> dict[str, Any]:
    return _rates(_state(request)[1].reviews)


@router.get("/api/review/versions", dependencies=[Depends(read_access)])
def review_versions(request: Request) -> dict[str, Any]:
    config = _state(request)[1].config
    return {"items": list_versions(config.datasets_dir) if config.datasets_dir else [],
            "enabled": config.datasets_dir is not None}


@router.post("/api/review/export", dependencies=[Depends(require_token)])
def review_export(request: Request) -> dict[str, Any]:
    """Write confirmed labels into a new dataset version on top of the latest one."""
    ctx, state = _state(request)
    config = state.config
    if config.datasets_dir is None:
        raise HTTPException(409, "export is off: start the service with a datasets folder")
    try:
        base = Manifest.load(config.base_manifest) if config.base_manifest else None
        result = export_version(latest_manifest(config.datasets_dir, base), state.reviews,
                                ctx.archive, config.datasets_dir, config.export)
    except DataError as error:
        raise HTTPException(409, str(error)) from None
    return {"version_id": result.manifest.version_id,
            "parent_version": result.manifest.parent_version,
            "samples": len(result.manifest.samples), "added": len(result.added),
            "skipped": list(result.skipped)}
