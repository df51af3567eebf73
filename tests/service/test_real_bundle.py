"""The service and the line with a real trained bundle (PatchCore on tiny synthetic parts)."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from defectscope.data.images.importers import import_mvtec
from defectscope.line.pipeline import BundleInspector, Inspector
from defectscope.service import create_app
from defectscope.store import ImageArchive, ResultStore
from defectscope.training.anomaly import train_anomaly

pytestmark = pytest.mark.slow


@pytest.fixture
def inspector(tiny_mvtec, tmp_path):
    result = train_anomaly(import_mvtec(tiny_mvtec).manifest, "patchcore", tmp_path / "model",
                           options={"image_size": 64, "max_side": 96, "batch_size": 4},
                           progress=False)
    return BundleInspector(result.out_dir)


def as_png(path) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_real_bundle_serves_verdicts(inspector, tiny_mvtec, tmp_path, auth):
    assert isinstance(inspector, Inspector) and inspector.threshold > 0
    store = ResultStore(f"sqlite:///{tmp_path / 'results.db'}")
    client = TestClient(create_app(inspector, store, ImageArchive(tmp_path / "archive"),
                                   token="test-token-123"), headers=auth)
    good = client.post("/inspect", headers=auth, files={
        "file": ("good.png", as_png(tiny_mvtec / "test" / "good" / "000.png"), "image/png")})
    bad = client.post("/inspect", headers=auth, files={
        "file": ("blob.png", as_png(tiny_mvtec / "test" / "blob" / "000.png"), "image/png")})
    assert good.status_code == 200 and bad.status_code == 200, (good.text, bad.text)
    good, bad = good.json(), bad.json()
    assert bad["score"] > good["score"]
    assert bad["verdict"] in ("NG", "UNSURE") and good["verdict"] in ("OK", "UNSURE")
    assert good["model_version"] == inspector.model_version
    assert client.get(bad["heatmap_url"]).content.startswith(b"\x89PNG")
    assert store.count() == 2
    store.close()
