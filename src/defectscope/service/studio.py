"""The labelling studio: ``/label`` (static page) and its ``/api/label/...`` endpoints.

One image at a time, least sure first (``labelling.dataset``), with the served model's proposal
(``labelling.propose``) to accept, correct or replace. Every action is saved at once in the
label store shared with the review queue (``store.labels``, one record per image content hash),
so a closed tab or a restarted service loses nothing. Export writes a new dataset version (the
served dataset's manifest is its parent) or an MVTec AD, COCO or YOLO folder.

Auth as the rest of the service (``service.auth``): the page is open and asks for the token;
its data and images are reads (``require_read``); saves and exports need the write token.

>>> studio = StudioConfig("data/tiles/manifest.json", export_dir="exports")  # doctest: +SKIP
>>> app = create_app(inspector, store, archive, token=token, studio=studio)  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import datetime as _dt
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel

from defectscope.data.image_io import image_size, load_image
from defectscope.errors import ConfigError, DataError, DefectscopeError
from defectscope.labelling.dataset import ItemScore, LabelDataset, LabelItem, open_label_dataset
from defectscope.labelling.export import FORMATS, export_labels
from defectscope.labelling.propose import propose
from defectscope.review.dataset_version import ExportConfig
from defectscope.review.labels import decode_mask, mask_png
from defectscope.service.auth import require_read, require_token
from defectscope.service.dashboard import STATIC, _decode_base64
from defectscope.service.routes import MEDIA_TYPES
from defectscope.store.labels import ImageLabel, LabelStore, boxes_from_json
from defectscope.values import GOOD

router = APIRouter()
PROPOSAL_CACHE = 32  # proposals kept in memory (one inference each)


@dataclass(frozen=True)
class StudioConfig:
    """The dataset to label (a folder or a manifest), its defect types (None: the manifest's)
    and where exports go (one new folder per export)."""

    source: Path
    classes: tuple[str, ...] | None = None
    export_dir: Path = Path("runs/line/labels")
    export: ExportConfig = field(default_factory=ExportConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", Path(self.source))
        object.__setattr__(self, "export_dir", Path(self.export_dir))


@dataclass
class StudioState:
    config: StudioConfig
    dataset: LabelDataset
    labels: LabelStore
    proposals: OrderedDict = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def install_studio(app: FastAPI, config: StudioConfig) -> None:
    """Add ``/label`` and its endpoints over ``config.source`` to ``app``."""
    ctx = app.state.ctx
    dataset = open_label_dataset(config.source, config.classes)
    app.state.studio = StudioState(config, dataset, LabelStore(ctx.store))
    app.include_router(router)


def _state(request: Request) -> tuple[Any, StudioState]:
    state = getattr(request.app.state, "studio", None)
    if state is None:
        raise HTTPException(404, "no labelling dataset: start the service with --label-data")
    return request.app.state.ctx, state


def _item(state: StudioState, sha256: str) -> LabelItem:
    item = state.dataset.item(sha256)
    if item is None:
        raise HTTPException(404, f"no image {sha256[:16]}… in the labelling dataset")
    return item


def _inspect(ctx, item: LabelItem):
    image = load_image(item.path, max_pixels=ctx.max_pixels)
    with ctx.inference_lock:
        return image, ctx.inspector.inspect(image)


def _score(ctx, item: LabelItem) -> ItemScore:
    _, result = _inspect(ctx, item)
    return ItemScore(float(result.score), result.verdict.value)


def _progress(state: StudioState, labels: dict[str, ImageLabel]) -> dict[str, Any]:
    per_class = {name: 0 for name in (GOOD, *state.dataset.classes)}
    for label in labels.values():
        per_class[label.label] = per_class.get(label.label, 0) + 1
    return {"labelled": len(labels), "total": len(state.dataset.items), "per_class": per_class}


def _dataset_labels(state: StudioState) -> dict[str, ImageLabel]:
    return {label.sha256: label for label in state.labels.all()
            if state.dataset.item(label.sha256) is not None}


@router.get("/label", include_in_schema=False)
def label_page() -> FileResponse:
    return FileResponse(STATIC / "label.html", media_type="text/html")


@router.get("/api/label/items", dependencies=[Depends(require_read)])
def items(request: Request) -> dict[str, Any]:
    """Every image, least sure first, with its score and its label (None: unlabelled)."""
    ctx, state = _state(request)
    with state.lock:  # score once per session, whoever asks first
        state.dataset.score_all(lambda item: _score(ctx, item))
    labels = _dataset_labels(state)
    rows = []
    for item in state.dataset.ordered(ctx.inspector.threshold):
        score = state.dataset.scores.get(item.sha256)
        label = labels.get(item.sha256)
        rows.append({"sha256": item.sha256, "name": item.path.name,
                     "score": None if score is None or not np.isfinite(score.score)
                     else score.score,
                     "verdict": None if score is None else score.verdict,
                     "label": None if label is None else label.label,
                     "source": None if label is None else label.source})
    return {"items": rows, "classes": list(state.dataset.classes),
            "threshold": ctx.inspector.threshold, "parent_version": state.dataset.parent_version,
            "progress": _progress(state, labels), "formats": list(FORMATS)}


@router.get("/api/label/images/{sha256}/file", dependencies=[Depends(require_read)])
def image_file(request: Request, sha256: str) -> FileResponse:
    _, state = _state(request)
    item = _item(state, sha256)
    if not item.path.is_file():
        raise HTTPException(404, f"{item.path.name}: the image file is gone")
    return FileResponse(item.path, media_type=MEDIA_TYPES.get(item.path.suffix.lower(),
                                                              "application/octet-stream"))


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@router.get("/api/label/images/{sha256}/proposal", dependencies=[Depends(require_read)])
def proposal(request: Request, sha256: str, x: float | None = Query(None),
             y: float | None = Query(None), box: str | None = Query(None)) -> dict[str, Any]:
    """The model's proposed mask (a 0/255 PNG data URL) and boxes; ``x``/``y``: a click inside
    the defect to guide it; ``box``: ``x1,y1,x2,y2``, a rough box around it."""
    ctx, state = _state(request)
    item = _item(state, sha256)
    if (x is None) != (y is None):
        raise HTTPException(422, "a click needs both x and y")
    boxes = [] if box is None else [_rough_box(box)]
    key = (sha256, x, y, box)
    with state.lock:
        cached = state.proposals.get(key)
    if cached is not None:
        return cached
    try:
        image, result = _inspect(ctx, item)
        points = [] if x is None else [(float(x), float(y))]
        found = propose(image, result.anomaly_map, float(ctx.inspector.threshold), points=points,
                        boxes=boxes)
    except ConfigError as error:
        raise HTTPException(422, str(error)) from None
    except DataError as error:
        raise HTTPException(409, str(error)) from None
    body = {"sha256": sha256, "mask_png": _data_url(mask_png(found.mask > 0)),
            "boxes": [b.to_dict() for b in found.boxes], "empty": found.is_empty,
            "score": float(result.score) if np.isfinite(result.score) else None,
            "verdict": result.verdict.value}
    with state.lock:
        state.proposals[key] = body
        while len(state.proposals) > PROPOSAL_CACHE:
            state.proposals.popitem(last=False)
    return body


def _rough_box(text: str) -> tuple[float, float, float, float]:
    """``x1,y1,x2,y2`` (pixels) as four floats; anything else is a 422 saying so."""
    try:
        x1, y1, x2, y2 = (float(v) for v in text.split(","))
    except ValueError:
        x1 = y1 = x2 = y2 = float("nan")
    if not all(np.isfinite(v) for v in (x1, y1, x2, y2)):
        raise HTTPException(422, f"box must be x1,y1,x2,y2 in pixels, not {text[:40]!r}")
    return x1, y1, x2, y2


def _label_json(ctx, label: ImageLabel | None) -> dict[str, Any]:
    if label is None:
        return {"label": None}
    body: dict[str, Any] = {"label": label.label, "record": label.to_dict(), "mask_png": None}
    mask = ctx.archive.resolve(label.mask_path) if label.mask_path else None
    if mask is not None:
        body["mask_png"] = _data_url(mask.read_bytes())
    return body


@router.get("/api/label/images/{sha256}", dependencies=[Depends(require_read)])
def get_label(request: Request, sha256: str) -> dict[str, Any]:
    ctx, state = _state(request)
    _item(state, sha256)
    return _label_json(ctx, state.labels.get(sha256))


class LabelIn(BaseModel):
    label: str
    mask_png: str | None = None  # base64 PNG or a data: URL (canvas.toDataURL())
    boxes: list[dict[str, Any]] = []
    labeller: str = "operator"


@router.put("/api/label/images/{sha256}", dependencies=[Depends(require_token)])
def save_label(request: Request, sha256: str, body: LabelIn) -> dict[str, Any]:
    """Save the image's label now (replacing the previous one): 404 unknown image, 422 bad
    label, mask or box."""
    ctx, state = _state(request)
    item = _item(state, sha256)
    name = body.label.strip()
    if name not in (GOOD, *state.dataset.classes):
        raise HTTPException(422, f"label {name!r} is not {GOOD!r} or one of the defect types "
                            f"{list(state.dataset.classes)}")
    try:
        height, width = image_size(item.path)
        mask_path = None
        if body.mask_png is not None:
            mask = decode_mask(_decode_base64(body.mask_png), (height, width))
            if mask.any():
                if name == GOOD:
                    raise ConfigError(f"a {GOOD!r} image has no mask; erase it or choose a "
                                      "defect type")
                mask_path = str(ctx.archive.put(mask_png(mask), ".png"))
        boxes = boxes_from_json(body.boxes, name)
        label = state.labels.save(ImageLabel(sha256, name, str(item.path), width, height,
                                             mask_path=mask_path, boxes=boxes,
                                             labeller=body.labeller.strip() or "operator"))
    except ConfigError as error:
        raise HTTPException(422, str(error)) from None
    except DefectscopeError as error:
        raise HTTPException(409, str(error)) from None
    return {**_label_json(ctx, label), "progress": _progress(state, _dataset_labels(state))}


@router.delete("/api/label/images/{sha256}", dependencies=[Depends(require_token)])
def delete_label(request: Request, sha256: str) -> dict[str, Any]:
    """Make the image unlabelled again (undo of its first label)."""
    _, state = _state(request)
    _item(state, sha256)
    removed = state.labels.delete(sha256)
    return {"removed": removed, "progress": _progress(state, _dataset_labels(state))}


class ExportIn(BaseModel):
    format: str = "manifest"


@router.post("/api/label/export", dependencies=[Depends(require_token)])
def export(request: Request, body: ExportIn) -> dict[str, Any]:
    """Export this dataset's labels into a new folder under the export folder."""
    ctx, state = _state(request)
    if body.format not in FORMATS:
        raise HTTPException(422, f"unknown export format {body.format!r}; choose one of "
                            f"{', '.join(FORMATS)}")
    labels = list(_dataset_labels(state).values())
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    out = state.config.export_dir / f"{body.format}-{stamp}"
    try:
        result = export_labels(labels, ctx.archive, body.format, out, base=state.dataset.base,
                               classes=state.dataset.classes, config=state.config.export)
    except DefectscopeError as error:
        raise HTTPException(409, str(error)) from None
    return {**result.to_dict(), "out": os.fspath(result.out)}
