"""The dashboard page and its JSON endpoints on a seeded results log (no model, no torch)."""

from __future__ import annotations

import base64
import dataclasses
import io
import shutil
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defectscope.data.images.importers import import_mvtec
from defectscope.service.dashboard import DashboardConfig
from defectscope.store import ImageArchive, QueueConfig, ResultStore
from defectscope.values import PartResult, Verdict

from tests.conftest import defective_part, good_part, make_mvtec
from tests.service.conftest import AUTH, READ_TOKEN, TOKEN, FakeInspector

NG_PER_WINDOW = [1, 2, 1, 2, 1, 10]  # 20 parts per hour; the last hour is out of control
PARTS_PER_WINDOW = 20
START = 1_700_000_000.0 - 1_700_000_000.0 % 3600


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def seed(root: Path) -> DashboardConfig:
    """Six hourly windows of 20 parts with NG counts ``NG_PER_WINDOW``; every 7th part UNSURE;
    every part's image archived; a base dataset version to export reviews onto."""
    store = ResultStore(f"sqlite:///{root / 'results.db'}")
    archive = ImageArchive(root / "archive")
    rng = np.random.default_rng(0)
    i = 0
    for window, ng in enumerate(NG_PER_WINDOW):
        for k in range(PARTS_PER_WINDOW):
            bad = k < ng
            unsure = not bad and k % 7 == 6
            image = defective_part(2000 + i)[0] if bad else good_part(2000 + i)
            verdict = Verdict.NG if bad else Verdict.UNSURE if unsure else Verdict.OK
            score = 0.8 + 0.05 * rng.random() if bad else 0.5 if unsure else 0.2 + 0.05 * rng.random()
            path = archive.put(png(image), ".png")
            store.add(PartResult(f"part-{i:04d}", START + window * 3600 + k * 60, verdict,
                                 float(score), 0.5, "fake-1", "ds-1",
                                 defect_types=("blob",) if bad else (),
                                 timings={"model": 10.0 + k % 5}),
                      image_path=path.relative_to(archive.root).as_posix())
            i += 1
    base = import_mvtec(make_mvtec(root / "parts", n_train=4, n_test_good=2, n_defect=2)).manifest
    config = DashboardConfig(datasets_dir=root / "datasets",
                             base_manifest=base.save(root / "base.json"),
                             queue=QueueConfig(ok_rate=0.0, ng_rate=0.0),
                             reference_size=40, current_size=40)
    store.close()
    return config


def seeded_copy(template: Path, root: Path) -> tuple[ResultStore, ImageArchive, DashboardConfig]:
    """A private copy of the seeded database and archive (image paths are archive-relative)."""
    shutil.copytree(template / "archive", root / "archive")
    shutil.copyfile(template / "results.db", root / "results.db")
    config = dataclasses.replace(load_config(template), datasets_dir=root / "datasets")
    return (ResultStore(f"sqlite:///{root / 'results.db'}"), ImageArchive(root / "archive"),
            config)


def load_config(template: Path) -> DashboardConfig:
    return DashboardConfig(datasets_dir=None, base_manifest=template / "base.json",
                           queue=QueueConfig(ok_rate=0.0, ng_rate=0.0), reference_size=40,
                           current_size=40)


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("seeded")
    seed(root)
    return root


@pytest.fixture
def seeded(seeded_template, tmp_path):
    from fastapi.testclient import TestClient

    from defectscope.service import create_app

    store, archive, config = seeded_copy(seeded_template, tmp_path)
    app = create_app(FakeInspector(), store, archive, token=TOKEN, read_token=READ_TOKEN,
                     dashboard=config)
    yield TestClient(app, headers={"Authorization": f"Bearer {READ_TOKEN}"})
    store.close()


def test_page_and_assets_are_served_without_any_cdn(seeded):
    page = seeded.get("/dashboard")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in re.findall(r'(?:src|href)="(/dashboard/static/[^"]+)"', page.text):
        body = seeded.get(asset)
        assert body.status_code == 200, asset
        assert not re.search(r"(src|href)=\"https?://|fetch\(\"https?://|//cdn", body.text)
    assert len(re.findall(r"/dashboard/static/", page.text)) == 4  # css, auth, charts, page


def test_service_root_redirects_to_the_dashboard(seeded):
    moved = seeded.get("/", follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"] == "/dashboard"
    landed = seeded.get("/")
    assert landed.status_code == 200 and "text/html" in landed.headers["content-type"]


def test_spc_flags_the_out_of_control_hour(seeded):
    spc = seeded.get("/api/spc").json()
    p = spc["p_chart"]
    assert [w["ng"] for w in spc["windows"]] == NG_PER_WINDOW
    assert p["center"] == pytest.approx(sum(NG_PER_WINDOW) / 120)
    assert p["points"][-1] == pytest.approx(0.5) and p["ucl"][-1] < 0.5
    assert [(h["index"], h["rule"]) for h in p["hits"]] == [(5, 1)]
    assert spc["ewma"] is not None and any("rule 1" in a for a in spc["alerts"])
    by_lot = seeded.get("/api/spc", params={"by_lot": True}).json()
    assert len(by_lot["windows"]) == 1  # every seeded part has the same (empty) source
    assert seeded.get("/api/spc", params={"window_s": 0}).status_code == 422


def test_stats_feed_drift_roi(seeded):
    stats = seeded.get("/api/stats").json()
    assert stats["n"] == 120 and stats["verdicts"]["NG"] == 17
    assert stats["ng_rate"] == pytest.approx(17 / 120)
    assert stats["latency_ms"]["p50"] == 12.0 and stats["in_use"]["model_version"] == "fake-1"
    feed = seeded.get("/api/feed", params={"limit": 5}).json()["items"]
    assert len(feed) == 5 and feed[0]["part_id"] == "part-0119" and feed[0]["image_url"]
    drift = seeded.get("/api/drift").json()
    assert drift["n_reference"] == 40 and drift["n_current"] == 40
    assert drift["status"] in ("ok", "warn", "alarm") and drift["feature_shift"] is not None
    assert "first 40 results" in drift["reference_source"]
    roi = seeded.get("/api/roi", params={"escape": 100}).json()
    assert roi["parts"] == 120 and roi["ng"] == 17 and roi["costs"]["escape"] == 100
    assert roi["escapes_avoided"] == 17  # no reviews yet: precision taken as 1
    assert seeded.get("/api/roi", params={"escape": -1}).status_code == 422


def mask_data_url(value: int = 255, size=(72, 88)) -> str:
    mask = np.zeros((*size, 4), np.uint8)
    mask[10:20, 10:30] = (value, 0, 0, 255)
    return "data:image/png;base64," + base64.b64encode(png(mask)).decode()


def test_review_flow_with_every_bad_input(seeded):
    queue = seeded.get("/api/review/queue").json()["items"]
    assert queue and {item["verdict"] for item in queue} == {"UNSURE"}
    part = queue[0]["id"]
    url = f"/api/review/parts/{part}"
    assert seeded.post(url, json={"verdict": "OK"}).status_code == 403  # the read-only token
    assert seeded.post(url, json={"verdict": "OK"}, headers={"Authorization": "Bearer x"}
                       ).status_code == 401
    assert seeded.post("/api/review/parts/99999", json={"verdict": "OK"},
                       headers=AUTH).status_code == 404
    for body, message in [({"verdict": "NG"}, "defect type"),
                          ({"verdict": "NG", "defect_type": "blob",
                            "mask_png": mask_data_url(size=(10, 10))}, "image's size"),
                          ({"verdict": "NG", "defect_type": "blob", "mask_png": "%%%"}, "base64"),
                          ({"verdict": "NG", "defect_type": "blob", "box": [0, 0, 500, 5]},
                           "outside")]:
        response = seeded.post(url, json=body, headers=AUTH)
        assert response.status_code == 422 and message in response.json()["detail"], body
    done = seeded.post(url, json={"verdict": "NG", "defect_type": "blob",
                                  "mask_png": mask_data_url()}, headers=AUTH)
    assert done.status_code == 200 and done.json()["mask_path"]
    again = seeded.post(url, json={"verdict": "OK"}, headers=AUTH)
    assert again.status_code == 409 and "already reviewed" in again.json()["detail"]
    assert part not in [i["id"] for i in seeded.get("/api/review/queue").json()["items"]]
    estimates = seeded.get("/api/review/estimates").json()
    assert estimates["reviewed"] == 1 and estimates["recall"]["k"] == 1


def test_concurrent_reviews_through_the_api_one_wins(seeded):
    part = seeded.get("/api/review/queue").json()["items"][0]["id"]
    codes, barrier = [], threading.Barrier(4)

    def review():
        barrier.wait()
        codes.append(seeded.post(f"/api/review/parts/{part}", json={"verdict": "OK"},
                                 headers=AUTH).status_code)

    threads = [threading.Thread(target=review) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [200, 409, 409, 409]


def test_export_creates_a_version_on_top_of_the_base(seeded):
    assert seeded.post("/api/review/export").status_code == 403  # the read-only token
    nothing = seeded.post("/api/review/export", headers=AUTH)
    assert nothing.status_code == 409 and "nothing to export" in nothing.json()["detail"]
    part = seeded.get("/api/review/queue").json()["items"][0]["id"]
    seeded.post(f"/api/review/parts/{part}", json={"verdict": "OK"}, headers=AUTH)
    exported = seeded.post("/api/review/export", headers=AUTH)
    assert exported.status_code == 200, exported.text
    body = exported.json()
    assert body["added"] == 1 and body["parent_version"]
    listed = seeded.get("/api/review/versions").json()
    assert listed["enabled"] and listed["items"][-1]["version_id"] == body["version_id"]
