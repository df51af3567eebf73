"""A fake inspector, tiny images and a ready app for the service tests (no model, no torch)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.fakes import FakeInspector, fake_inspector, make_inspector, png, write_png  # noqa: F401


TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
READ_TOKEN = "read-only-456"
READ_AUTH = {"Authorization": f"Bearer {READ_TOKEN}"}


def png_bytes(value: int = 20, size: tuple[int, int] = (8, 10)) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.full((*size, 3), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def make_client(tmp_path):
    """Build a TestClient around ``create_app`` with a temporary database and archive.

    The app gets a read-only token, and the client sends it by default (``reader=False``: no
    default header), so every read in these tests also checks that the read-only token reads;
    writes pass ``headers=auth`` (the write token) explicitly."""
    from fastapi.testclient import TestClient

    from defectscope.service import create_app
    from defectscope.store import ImageArchive, ResultStore

    stores = []

    def build(inspector=None, *, reader: bool = True, **options):
        store = ResultStore(f"sqlite:///{tmp_path / f'results{len(stores)}.db'}")
        stores.append(store)
        options.setdefault("read_token", READ_TOKEN)
        app = create_app(inspector or FakeInspector(), store, ImageArchive(tmp_path / "archive"),
                         token=TOKEN, **options)
        return TestClient(app, headers=READ_AUTH if reader else None)

    yield build
    for store in stores:
        store.close()


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def auth() -> dict[str, str]:
    return dict(AUTH)


@pytest.fixture
def encode_png():
    return png_bytes
