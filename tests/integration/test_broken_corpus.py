"""Every kind of broken file in ``tests/broken_corpus.py`` (at least 30) gets a clear error and is
never OK, wherever it enters: ``predict``, the service's ``POST /inspect`` and ``run``.

The service and the line get an inspector that would judge every image it is given OK, so a
broken file that slipped through decoding would show as OK here; ``predict`` runs a real trained
model and must report each file as a failure, not merely score it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectscope.cli import main
from defectscope.data.image_io import load_image
from defectscope.errors import ImageReadError
from tests.broken_corpus import broken_files
from tests.conftest import good_part, make_mvtec, save
from tests.fakes import FakeInspector

CORPUS = broken_files()
TOKEN = "corpus-token-0123"


def always_ok() -> FakeInspector:
    return FakeInspector(score=lambda image: 0.0)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    for name, data in CORPUS.items():
        (folder / name).write_bytes(data)
    save(folder / "zz_good.png", good_part(3))  # one readable part, judged as usual
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("model")
    out = root / "model"
    assert main(["train", "--data", str(make_mvtec(root / "parts")), "--format", "mvtec",
                 "--model", "padim", "--out", str(out), "--image-size", "64", "--set",
                 "max_side=96", "--tune", "off", "--quiet"]) == 0
    return out


def test_the_corpus_has_at_least_30_kinds():
    assert len(CORPUS) >= 30
    assert len({name.rsplit(".", 1)[0] for name in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_the_reader_refuses_each_kind_with_a_reason(corpus_dir, name):
    with pytest.raises(ImageReadError) as caught:
        load_image(corpus_dir / name)
    assert name in str(caught.value) and caught.value.problem


def test_predict_reports_each_kind_as_a_failure(corpus_dir, model_dir, capsys):
    assert main(["predict", "--model", str(model_dir), str(corpus_dir), "--json"]) == 1
    rows = {Path(row["path"]).name: row for row in map(json.loads,
                                                       capsys.readouterr().out.splitlines())}
    assert set(rows) == set(CORPUS) | {"zz_good.png"}  # nothing skipped by its name
    for name in CORPUS:
        row = rows[name]
        assert row["verdict"] != "OK", name
        assert row["failure"] in ("unreadable", "refused") and row["error"], name
    assert rows["zz_good.png"]["failure"] is None


def test_the_service_refuses_each_kind_and_stores_nothing(corpus_dir, tmp_path):
    from fastapi.testclient import TestClient

    from defectscope.service import create_app
    from defectscope.store import ImageArchive, ResultStore

    store = ResultStore(f"sqlite:///{tmp_path / 'results.db'}")
    try:
        app = create_app(always_ok(), store, ImageArchive(tmp_path / "archive"), token=TOKEN)
        client = TestClient(app)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for name in sorted(CORPUS):
            response = client.post("/inspect", headers=auth,
                                   files={"file": (name, CORPUS[name], "image/png")})
            assert response.status_code in (413, 422), (name, response.status_code)
            assert response.json()["detail"], name
        assert store.count() == 0
        good = (corpus_dir / "zz_good.png").read_bytes()
        response = client.post("/inspect", headers=auth,
                               files={"file": ("zz_good.png", good, "image/png")})
        assert response.status_code == 200 and response.json()["verdict"] == "OK"
    finally:
        store.close()


def test_the_line_judges_no_kind_ok_and_logs_every_one(corpus_dir, tmp_path):
    from defectscope.line.runner import LineConfig, LineRunner
    from defectscope.store import ResultStore

    events: list[dict] = []
    config = LineConfig(model_dir=tmp_path / "unused", source=f"folder:{corpus_dir}",
                        db_url=f"sqlite:///{tmp_path / 'results.db'}",
                        archive_dir=tmp_path / "archive", once=True, settle_s=0.0)
    summary = LineRunner(config, inspector=always_ok(), on_part=events.append).run()
    by_name = {Path(event["source"]).name: event for event in events}
    assert set(by_name) == set(CORPUS) | {"zz_good.png"}
    for name in CORPUS:
        assert by_name[name]["verdict"] != "OK", name
        assert by_name[name]["failure"] in ("unreadable", "refused"), name
    assert by_name["zz_good.png"]["verdict"] == "OK"
    assert summary.parts == len(CORPUS) + 1
    store = ResultStore(config.db_url)
    try:
        assert store.count() == len(CORPUS) + 1  # every part logged, broken ones included
    finally:
        store.close()
