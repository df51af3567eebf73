"""The labelling studio's endpoints: order, proposals, saves on every action (kept across a
restart), the token rules, one record shared with the review queue, and export."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from defectscope.data.hashing import sha256_file
from defectscope.data.images.manifest import Manifest
from defectscope.review.labels import mask_png
from defectscope.service import create_app
from defectscope.service.studio import StudioConfig
from defectscope.store import ImageArchive, ResultStore
from defectscope.values import InspectionResult, Sample, Verdict
from tests.service.conftest import AUTH, READ_AUTH, READ_TOKEN, TOKEN

SIZE = (40, 48)  # height, width


class BlobInspector:
    """The anomaly map is the brightness; the score its peak. A bright square is the defect."""

    model_version = "blob-1"
    dataset_version = "ds-1"
    threshold = 0.5

    def inspect(self, image: np.ndarray) -> InspectionResult:
        amap = image.mean(axis=2).astype(np.float32) / 255.0
        score = float(amap.max())
        return InspectionResult(score=score, verdict=Verdict.from_score(score, self.threshold),
                                anomaly_map=amap)


def part(path, square: int | None, peak: int = 230):
    """A dark textured part; ``square``: the side of a bright defect square at (10, 12)."""
    rng = np.random.default_rng(len(str(path)))
    image = (rng.random((*SIZE, 3)) * 30 + 20).astype(np.uint8)
    if square:
        image[10:10 + square, 12:12 + square] = peak
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def make_dataset(root):
    files = [part(root / "ok.png", None), part(root / "dent.png", 12),
             part(root / "faint.png", 12, peak=135)]
    base = Manifest(root, tuple(Sample(str(f), "good", sha256_file(f)) for f in files),
                    name="parts")
    return base.save(root / "manifest.json"), files


@pytest.fixture
def studio(tmp_path):
    manifest, files = make_dataset(tmp_path / "data")
    stores = []

    def start():
        store = ResultStore(f"sqlite:///{tmp_path / 'results.db'}")
        stores.append(store)
        app = create_app(BlobInspector(), store, ImageArchive(tmp_path / "archive"), token=TOKEN,
                         read_token=READ_TOKEN,
                         studio=StudioConfig(manifest, ("dent",), tmp_path / "exports"))
        return TestClient(app, headers=READ_AUTH)

    yield start, files, manifest
    for store in stores:
        store.close()


def decoded(data_url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))) > 0


def test_items_come_least_sure_first_with_progress(studio):
    start, files, _ = studio
    client = start()
    body = client.get("/api/label/items").json()
    names = [row["name"] for row in body["items"]]
    # the faint square scores 135/255 = 0.53: nearest the threshold, so first
    assert names[0] == "faint.png" and set(names) == {"ok.png", "dent.png", "faint.png"}
    assert body["progress"] == {"labelled": 0, "total": 3, "per_class": {"good": 0, "dent": 0}}
    assert body["classes"] == ["dent"] and "mvtec" in body["formats"]


def test_reads_need_a_token_and_saves_the_write_token(studio):
    start, files, _ = studio
    client = start()
    sha = sha256_file(files[0])
    assert client.get("/label", headers={"Authorization": ""}).status_code == 200  # open page
    assert client.get("/api/label/items", headers={"Authorization": ""}).status_code == 401
    assert client.get(f"/api/label/images/{sha}/file").status_code == 200
    assert client.put(f"/api/label/images/{sha}", json={"label": "good"}).status_code == 403
    assert client.put(f"/api/label/images/{sha}", json={"label": "good"},
                      headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post("/api/label/export", json={"format": "manifest"}).status_code == 403
    assert client.put(f"/api/label/images/{sha}", json={"label": "good"},
                      headers=AUTH).status_code == 200


def test_proposal_finds_the_square_and_a_label_survives_a_restart(studio):
    start, files, _ = studio
    client = start()
    sha = sha256_file(files[1])
    found = client.get(f"/api/label/images/{sha}/proposal").json()
    mask = decoded(found["mask_png"])
    truth = np.zeros(SIZE, bool)
    truth[10:22, 12:24] = True
    assert (mask & truth).sum() / (mask | truth).sum() > 0.8
    assert found["boxes"] and found["verdict"] == "NG"
    saved = client.put(f"/api/label/images/{sha}", headers=AUTH,
                       json={"label": "dent", "mask_png": found["mask_png"],
                             "boxes": [{"box": b["box"]} for b in found["boxes"]]}).json()
    assert saved["progress"]["labelled"] == 1 and saved["progress"]["per_class"]["dent"] == 1
    client.close()

    again = start()  # a restarted service
    body = again.get(f"/api/label/images/{sha}").json()
    assert body["label"] == "dent" and np.array_equal(decoded(body["mask_png"]), mask)
    assert body["record"]["boxes"][0]["label"] == "dent"
    rows = {r["sha256"]: r for r in again.get("/api/label/items").json()["items"]}
    assert rows[sha]["label"] == "dent"
    assert again.delete(f"/api/label/images/{sha}", headers=AUTH).json()["removed"] is True
    assert again.get(f"/api/label/images/{sha}").json() == {"label": None}


def test_a_click_or_a_rough_box_guides_the_proposal(studio):
    start, files, _ = studio
    client = start()
    sha = sha256_file(files[1])
    truth = np.zeros(SIZE, bool)
    truth[10:22, 12:24] = True
    clicked = decoded(client.get(f"/api/label/images/{sha}/proposal",
                                 params={"x": 17, "y": 15}).json()["mask_png"])
    boxed = decoded(client.get(f"/api/label/images/{sha}/proposal",
                               params={"box": "8,6,28,26"}).json()["mask_png"])
    for mask in (clicked, boxed):
        assert (mask & truth).sum() / (mask | truth).sum() > 0.5
    assert not boxed[:, 30:].any() and not boxed[30:, :].any()  # nothing outside the box
    for params, message in (({"box": "1,2,3"}, "x1,y1,x2,y2"), ({"box": "0,0,inf,9"}, "x1,y1"),
                            ({"box": "nan,0,9,9"}, "x1,y1"), ({"x": 3}, "both x and y"),
                            ({"box": "5,5,5,9"}, "empty")):
        reply = client.get(f"/api/label/images/{sha}/proposal", params=params)
        assert reply.status_code == 422 and message in reply.text


@pytest.mark.parametrize("body, message", [
    ({"label": "crack"}, "not 'good' or one of the defect types"),
    ({"label": "good", "mask_png": "PAINTED"}, "has no mask"),
    ({"label": "dent", "mask_png": "not base64!"}, "base64"),
    ({"label": "dent", "mask_png": "SMALL"}, "paint the mask at the image's size"),
    ({"label": "dent", "boxes": [{"box": [0, 0, 500, 5]}]}, "outside"),
    ({"label": "dent", "boxes": [{"box": [1, 2]}]}, "4 numbers"),
])
def test_bad_saves_are_422_with_the_reason(studio, body, message):
    start, files, _ = studio
    client = start()
    sha = sha256_file(files[1])
    painted = np.zeros(SIZE, bool)
    painted[1:3, 1:3] = True
    replacements = {"PAINTED": mask_png(painted), "SMALL": mask_png(np.ones((4, 4), bool))}
    if body.get("mask_png") in replacements:
        body = {**body, "mask_png": base64.b64encode(replacements[body["mask_png"]]).decode()}
    response = client.put(f"/api/label/images/{sha}", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert message in response.text
    assert client.get(f"/api/label/images/{sha}").json() == {"label": None}  # nothing saved
    assert client.put(f"/api/label/images/{'0' * 64}", json={"label": "good"},
                      headers=AUTH).status_code == 404


def test_an_image_reviewed_in_the_queue_is_labelled_in_the_studio(studio, tmp_path):
    start, files, _ = studio
    client = start()
    data = files[1].read_bytes()  # the same part, uploaded to the line and reviewed there
    result = client.post("/inspect", files={"file": ("dent.png", data, "image/png")},
                         headers=AUTH).json()
    review = client.post(f"/api/review/parts/{result['id']}", headers=AUTH,
                         json={"verdict": "NG", "defect_type": "dent"})
    assert review.status_code == 200, review.text
    rows = {r["sha256"]: r for r in client.get("/api/label/items").json()["items"]}
    assert rows[sha256_file(files[1])]["label"] == "dent"
    assert rows[sha256_file(files[1])]["source"] == "review"


def test_export_writes_a_version_with_the_served_manifest_as_parent(studio):
    start, files, manifest = studio
    client = start()
    assert client.post("/api/label/export", json={"format": "manifest"},
                       headers=AUTH).status_code == 409  # nothing labelled yet
    client.put(f"/api/label/images/{sha256_file(files[0])}", json={"label": "good"},
               headers=AUTH)
    assert client.post("/api/label/export", json={"format": "voc"},
                       headers=AUTH).status_code == 422
    body = client.post("/api/label/export", json={"format": "manifest"}, headers=AUTH).json()
    exported = Manifest.load(f"{body['out']}/manifest.json")
    assert exported.parent_version == Manifest.load(manifest).version_id == body["parent_version"]
    assert exported.version_id == body["version_id"] and body["images"] == 1
