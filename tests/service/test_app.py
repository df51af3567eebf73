"""The REST service with a fake inspector: contract, auth, filters, files, health, metrics."""

from __future__ import annotations

import hashlib

import pytest

from defectscope.errors import ConfigError
from defectscope.service import create_app
from defectscope.store import ImageArchive, ResultStore
from tests.service.conftest import READ_TOKEN, TOKEN, FakeInspector


def upload(client, data: bytes, headers, name="part.png", content_type="image/png"):
    return client.post("/inspect", files={"file": (name, data, content_type)}, headers=headers)


def test_inspect_answers_the_contract_and_stores_first(client, auth, encode_png):
    data = encode_png(240)
    response = upload(client, data, auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verdict"] == "NG" and body["score"] == pytest.approx(240 / 255)
    assert body["model_version"] == "fake-1" and isinstance(body["id"], int)
    assert body["image_sha256"] == hashlib.sha256(data).hexdigest()
    again = client.get(f"/results/{body['id']}")
    assert again.status_code == 200 and again.json() == body
    store = client.app.state.ctx.store
    assert store.get(body["id"]).result.part_id == body["part_id"]


def test_uploads_need_the_right_token(make_client, auth, encode_png):
    client = make_client(reader=False)
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic abc"},
                    {"Authorization": "Bearer "}):
        response = upload(client, encode_png(), headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
    read_only = upload(client, encode_png(), {"Authorization": f"Bearer {READ_TOKEN}"})
    assert read_only.status_code == 403 and "may only read" in read_only.json()["detail"]
    assert client.app.state.ctx.store.count() == 0


def test_reads_need_a_token_by_default(make_client, auth, encode_png):
    client = make_client(reader=False)
    record = upload(client, encode_png(), auth).json()
    reads = ["/results", f"/results/{record['id']}", f"/results/{record['id']}/image",
             f"/results/{record['id']}/heatmap", "/metrics"]
    for path in reads:
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
        for token in (TOKEN, READ_TOKEN):  # the write token reads too
            answer = client.get(path, headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200, (path, token)
    assert client.get("/health").status_code == 200  # liveness stays open
    assert client.get("/dashboard").status_code == 200  # the page is code; its data is not


def test_public_reads_for_a_kiosk_keep_writes_protected(make_client, auth, encode_png):
    client = make_client(reader=False, public_reads=True)
    assert upload(client, encode_png(), {}).status_code == 401
    record = upload(client, encode_png(), auth).json()
    assert client.get(f"/results/{record['id']}/image").status_code == 200
    assert client.get("/results").json()["total"] == 1


def test_the_read_token_must_differ_from_the_write_token(tmp_path):
    with pytest.raises(ConfigError, match="must differ"):
        create_app(FakeInspector(), ResultStore(f"sqlite:///{tmp_path / 'r.db'}"),
                   ImageArchive(tmp_path), token=TOKEN, read_token=TOKEN)


def test_results_list_filters_and_pages(client, auth, encode_png):
    ids = [upload(client, encode_png(v), auth).json()["id"] for v in (10, 250, 20, 240, 30)]
    listing = client.get("/results", params={"limit": 2}).json()
    assert listing["total"] == 5 and [r["id"] for r in listing["items"]] == ids[::-1][:2]
    ng = client.get("/results", params={"verdict": "NG"}).json()
    assert ng["total"] == 2 and {r["verdict"] for r in ng["items"]} == {"NG"}
    assert client.get("/results", params={"offset": 4}).json()["items"][0]["id"] == ids[0]
    assert client.get("/results", params={"since": "2000-01-01T00:00:00"}).json()["total"] == 5
    assert client.get("/results", params={"until": "1000"}).json()["total"] == 0
    for bad in ({"verdict": "MAYBE"}, {"limit": 0}, {"limit": 5000}, {"offset": -1},
                {"since": "yesterday"}):
        response = client.get("/results", params=bad)
        assert response.status_code == 422, bad
        assert "detail" in response.json()


def test_image_and_heatmap_are_served(client, auth, encode_png):
    data = encode_png(200)
    body = upload(client, data, auth).json()
    image = client.get(body["image_url"])
    assert image.status_code == 200 and image.content == data
    assert image.headers["content-type"] == "image/png"
    heatmap = client.get(body["heatmap_url"])
    assert heatmap.status_code == 200 and heatmap.content.startswith(b"\x89PNG")


@pytest.mark.parametrize("path", ["/results/abc", "/results/0", "/results/-1",
                                  "/results/99999999999999999999999", "/results/1.5"])
def test_bad_ids_are_422(client, path):
    response = client.get(path)
    assert response.status_code == 422 and "detail" in response.json()


@pytest.mark.parametrize("path", ["/results/../../etc/passwd", "/results/%2e%2e%2fetc%2fpasswd",
                                  "/results/1/../../../etc/passwd", "/results/1/image/../x"])
def test_traversal_ids_find_nothing(client, path):
    assert client.get(path).status_code in (404, 422)


def test_missing_results_and_files_are_404(client, auth, encode_png):
    assert client.get("/results/12345").status_code == 404
    assert client.get("/results/12345/image").status_code == 404


def test_a_tampered_image_path_is_not_served(client, auth, encode_png, tmp_path):
    body = upload(client, encode_png(), auth).json()
    store = client.app.state.ctx.store
    with store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE results SET image_path = '/etc/passwd'")
    assert client.get(f"/results/{body['id']}/image").status_code == 404


def test_health_and_metrics(client, auth, encode_png):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["database"] is True
    assert health["model_version"] == "fake-1"
    upload(client, encode_png(250), auth)
    upload(client, b"not an image", auth)
    text = client.get("/metrics").text
    assert 'defectscope_parts_total{verdict="NG"} 1.0' in text
    assert 'defectscope_parts_total{verdict="OK"} 0.0' in text
    assert "defectscope_inspect_latency_seconds_bucket" in text
    assert 'defectscope_rejected_uploads_total{reason="not_an_image"} 1.0' in text


def test_openapi_documents_the_upload(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/inspect"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert "file" in body["schema"]["properties"]
    assert {"/results", "/results/{id}", "/results/{id}/image", "/health", "/metrics"} \
        <= set(spec["paths"])


def test_the_app_refuses_to_start_without_a_token(tmp_path):
    from defectscope.service import create_app, resolve_token
    from defectscope.store import ImageArchive, ResultStore

    with pytest.raises(ConfigError, match="DEFECTSCOPE_TOKEN"):
        resolve_token(None, {})
    assert resolve_token(None, {"DEFECTSCOPE_TOKEN": "from-the-env"}) == "from-the-env"
    assert resolve_token("from-the-cli", {"DEFECTSCOPE_TOKEN": "from-the-env"}) == "from-the-cli"
    with pytest.raises(ConfigError, match="token"):
        create_app(None, ResultStore(f"sqlite:///{tmp_path / 'r.db'}"), ImageArchive(tmp_path),
                   token="")


def test_concurrent_uploads_all_succeed(client, auth, encode_png):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda i: upload(client, encode_png(i), auth).status_code,
                              range(30)))
    assert codes == [200] * 30 and client.app.state.ctx.store.count() == 30
