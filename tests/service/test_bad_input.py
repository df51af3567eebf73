"""Hostile and broken uploads: each gets a clear 4xx, nothing is stored, the service stays up."""

from __future__ import annotations

import struct
import zlib

import pytest


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` greyscale pixels, with a tiny IDAT: a bomb shell."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


def post(client, auth, data, name="part.png", content_type="image/png"):
    return client.post("/inspect", files={"file": (name, data, content_type)}, headers=auth)


def assert_still_up(client):
    assert client.get("/health").status_code == 200
    assert client.app.state.ctx.store.count() == 0


def test_decompression_bomb_is_refused_without_decoding(client, auth, make_inspector):
    response = post(client, auth, png_header_only(20_000, 20_000))
    assert response.status_code == 413 and "pixels" in response.json()["detail"]
    assert_still_up(client)


def test_pixel_limit(make_client, auth):
    client = make_client(max_pixels=10_000)
    response = post(client, auth, png_header_only(200, 100))  # 20,000 pixels
    assert response.status_code == 413 and "20,000 pixels" in response.json()["detail"]
    assert_still_up(client)


def test_size_limit(make_client, auth, encode_png):
    client = make_client(max_upload_bytes=1000)
    response = post(client, auth, b"\x89PNG" + b"x" * 5000)
    assert response.status_code == 413 and "too large" in response.json()["detail"]
    big = post(client, auth, b"\x89PNG" + b"x" * 200_000)  # rejected by Content-Length
    assert big.status_code == 413
    assert big.json()["detail"] == response.json()["detail"]  # one limit, one message
    assert "(1000 bytes)" in big.json()["detail"]
    metrics = client.get("/metrics").text
    assert 'defectscope_rejected_uploads_total{reason="too_large"} 2.0' in metrics
    assert post(client, auth, encode_png()).status_code == 200


def test_chunked_body_over_the_limit_is_cut_off(make_client, auth):
    client = make_client(max_upload_bytes=1000)

    def chunks():
        yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n"
        for _ in range(200):
            yield b"x" * 1024

    response = client.post("/inspect", content=chunks(),
                           headers={**auth, "Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413


@pytest.mark.parametrize("data, name", [
    (b"hello, I am text", "part.png"),
    (b"GIF89a" + b"\x00" * 10, "part.gif"),
])
def test_not_an_image_is_422(client, auth, data, name):
    response = post(client, auth, data, name=name)
    assert response.status_code == 422 and "not a readable image" in response.json()["detail"]
    assert_still_up(client)


def test_truncated_image_is_422(client, auth, encode_png):
    data = encode_png(size=(64, 64))
    response = post(client, auth, data[: len(data) * 2 // 3])
    assert response.status_code == 422 and "truncated" in response.json()["detail"]
    assert_still_up(client)


def test_empty_file_is_422(client, auth):
    response = post(client, auth, b"")
    assert response.status_code == 422 and "empty" in response.json()["detail"]


def test_wrong_content_types_are_415(client, auth, encode_png):
    as_json = client.post("/inspect", json={"file": "x"}, headers=auth)
    assert as_json.status_code == 415
    raw = client.post("/inspect", content=encode_png(), headers={**auth,
                                                                 "Content-Type": "image/png"})
    assert raw.status_code == 415
    text_part = post(client, auth, encode_png(), content_type="text/plain")
    assert text_part.status_code == 415
    assert_still_up(client)


def test_missing_field_and_malformed_multipart_are_422(client, auth, encode_png):
    other_field = client.post("/inspect", files={"image": ("a.png", encode_png(), "image/png")},
                              headers=auth)
    assert other_field.status_code == 422 and "'file'" in other_field.json()["detail"]
    no_body = client.post("/inspect", headers={**auth, "Content-Type": "multipart/form-data"})
    assert no_body.status_code == 422
    garbage = client.post("/inspect", content=b"--x\r\ngarbage",
                          headers={**auth, "Content-Type": "multipart/form-data; boundary=x"})
    assert garbage.status_code in (413, 422)
    assert_still_up(client)


def test_failing_model_gives_a_never_ok_result_not_a_500(make_client, auth, encode_png,
                                                         make_inspector):
    client = make_client(make_inspector(error=RuntimeError("model exploded")))
    body = post(client, auth, encode_png()).json()
    assert body["verdict"] == "NG" and body["score"] is None
    assert "model exploded" in body["reason"]
