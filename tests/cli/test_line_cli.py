"""``defectscope run`` and ``serve`` with a real (tiny) bundle: the CLI contract other tools use."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from defectscope.cli import main
from defectscope.store import ResultStore

from tests.conftest import FAST_OPTIONS, make_mvtec

pytestmark = pytest.mark.timeout(120)
TOKEN = "cli-test-token"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_mvtec(tmp_path_factory.mktemp("data") / "parts")


@pytest.fixture(scope="module")
def model_dir(dataset, tmp_path_factory) -> Path:
    from defectscope.data.images.importers import import_mvtec
    from defectscope.training.anomaly import train_anomaly

    out = tmp_path_factory.mktemp("bundle") / "model"
    train_anomaly(import_mvtec(dataset).manifest, "padim", out, options=FAST_OPTIONS,
                  progress=False)
    return out


@pytest.fixture
def incoming(dataset, tmp_path) -> Path:
    """Four good and four defective parts plus one corrupt file."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    for path in [*(dataset / "test" / "good").glob("*.png"), *(dataset / "test" / "blob").glob("*.png")]:
        shutil.copy(path, folder / f"{path.parent.name}_{path.name}")
    (folder / "zz_broken.png").write_bytes(b"\x89PNG truncated")
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_args(model_dir: Path, source: str, tmp_path: Path, *extra: str) -> list[str]:
    return ["run", "--model", str(model_dir), "--source", source,
            "--db", f"sqlite:///{tmp_path / 'results.db'}", "--archive", str(tmp_path / "images"),
            *extra]


def test_run_logs_every_part_once_even_when_run_twice(model_dir, incoming, tmp_path, capsys):
    argv = run_args(model_dir, f"glob:{incoming}/*.png", tmp_path, "--json")
    assert main(argv) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 9
    assert all({"id", "part_id", "verdict", "score"} <= row.keys() for row in rows)
    verdicts = {Path(r["source"]).name: r["verdict"] for r in rows}
    assert {v for k, v in verdicts.items() if k.startswith("blob")} == {"NG"}
    assert verdicts["zz_broken.png"] == "UNSURE"  # fail-safe, never OK
    assert "using the torch path (no ONNX export" in err and "9 parts" in err

    store = ResultStore(f"sqlite:///{tmp_path / 'results.db'}")
    assert store.count() == 9 and store.count(verdict="NG") == 4
    assert {store.get(r["id"]).result.part_id for r in rows} == {r["part_id"] for r in rows}

    assert main(argv) == 0  # the same folder again: nothing is logged twice
    out, err = capsys.readouterr()
    assert out == "" and "skipped 9 part(s) already in the results log" in err
    assert store.count() == 9
    store.close()


def test_run_prints_one_readable_line_per_part_and_a_summary(model_dir, incoming, tmp_path,
                                                             capsys):
    assert main(run_args(model_dir, f"folder:{incoming}", tmp_path, "--max-parts", "2",
                         "--no-archive")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[0] in ("OK", "NG", "UNSURE") and "blob_000.png" in lines[0]
    assert lines[2].startswith("line finished: 2 parts")
    assert not (tmp_path / "images").exists()


@pytest.mark.parametrize("argv, message", [
    (["--source", "webcam:0"], "unknown source; use one of folder:DIR"),
    (["--source", "folder:/no/such/folder"], "/no/such/folder: no such folder to watch"),
    (["--source", "glob:/no/such/*.png"], "no files match this pattern"),
    (["--source", "camera:front"], "camera:N needs a camera index"),
    (["--source", "glob:x", "--trigger", "opcua"], "--trigger opcua needs --opcua"),
    (["--source", "glob:x", "--mqtt", "http://broker"], "MQTT URL"),
])
def test_bad_run_arguments_exit_2_with_one_clear_line(argv, message, tmp_path, capsys):
    assert main(["run", "--model", str(tmp_path / "model"), *argv,
                 "--db", f"sqlite:///{tmp_path / 'r.db'}"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_run_with_the_openvino_backend(model_dir, incoming, tmp_path, capsys):
    pytest.importorskip("openvino", reason="the OpenVINO backend needs the openvino package")
    exported = shutil.copytree(model_dir, tmp_path / "exported")
    assert main(["export", "--model", str(exported), "--format", "openvino"]) == 0
    capsys.readouterr()
    argv = run_args(exported, f"glob:{incoming}/*.png", tmp_path, "--json", "--backend",
                    "openvino")
    assert main(argv) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    verdicts = {Path(r["source"]).name: r["verdict"] for r in rows}
    assert len(rows) == 9 and verdicts["zz_broken.png"] == "UNSURE"
    assert {v for k, v in verdicts.items() if k.startswith("blob")} == {"NG"}
    assert "torch path" not in err
    assert main(run_args(model_dir, f"glob:{incoming}/*.png", tmp_path / "again",
                         "--backend", "openvino")) == 2  # no export: refused, not torch
    assert "no ONNX export" in capsys.readouterr().err


def test_bad_model_folder_is_one_clear_line(incoming, tmp_path, capsys):
    assert main(run_args(tmp_path / "nope", f"glob:{incoming}/*.png", tmp_path)) == 2
    assert "no such model folder" in capsys.readouterr().err


@pytest.mark.parametrize("command, words", [
    ("run", ["--source", "folder:DIR", "rtsp://URL", "--mqtt", "--opcua", "--cycle-budget-ms",
             "--max-parts", "--json", "Fail-safe", "Restart-safe", "--backend", "openvino"]),
    ("serve", ["--host", "--port", "--token", "DEFECTSCOPE_TOKEN", "--no-auth", "--db",
               "--backend", "onnxruntime"]),
])
def test_help_texts(command, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for word in words:
        assert word in out, word


def test_serve_refuses_to_start_without_a_token(model_dir, monkeypatch, capsys):
    monkeypatch.delenv("DEFECTSCOPE_TOKEN", raising=False)
    assert main(["serve", "--model", str(model_dir)]) == 2
    assert "needs a token" in capsys.readouterr().err


def test_serve_no_auth_warns_and_accepts_uploads(model_dir, dataset, tmp_path, monkeypatch,
                                                 capsys):
    from fastapi.testclient import TestClient

    served = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: served.update(app=app, **kw))
    assert main(["serve", "--model", str(model_dir), "--no-auth", "--port", str(free_port()),
                 "--db", f"sqlite:///{tmp_path / 'r.db'}", "--archive", str(tmp_path / "a")]) == 0
    assert "WARNING: --no-auth" in capsys.readouterr().err
    image = dataset / "test" / "good" / "000.png"
    with TestClient(served["app"]) as client:
        response = client.post("/inspect", files={"file": ("p.png", image.read_bytes(),
                                                           "image/png")})
    assert response.status_code == 200, response.text


def test_serve_as_a_real_process(model_dir, dataset, tmp_path):
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DEFECTSCOPE_TOKEN": TOKEN,
           "DEFECTSCOPE_READ_TOKEN": "reader-789"}
    process = subprocess.Popen(
        [sys.executable, "-m", "defectscope", "serve", "--model", str(model_dir), "--port",
         str(port), "--db", f"sqlite:///{tmp_path / 'results.db'}", "--archive",
         str(tmp_path / "images")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.stdout.read().decode()
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.3)
        image = (dataset / "test" / "blob" / "000.png").read_bytes()
        files = {"file": ("blob.png", image, "image/png")}
        assert httpx.post(f"{base}/inspect", files=files, timeout=30).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.post(f"{base}/inspect", files=files, headers=wrong,
                          timeout=30).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        answer = httpx.post(f"{base}/inspect", files=files, headers=auth, timeout=30)
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["verdict"] == "NG" and result["score"] > 0 and result["model_version"]
        read = f"{base}/results/{result['id']}"
        assert httpx.get(read, timeout=10).status_code == 401  # reads need a token
        reader = {"Authorization": "Bearer reader-789"}
        assert httpx.get(read, headers=reader, timeout=10).json() == result
        assert httpx.post(f"{base}/inspect", files=files, headers=reader,
                          timeout=30).status_code == 403  # the read-only token cannot write
    finally:
        process.terminate()
        process.wait(20)


def test_sigterm_stops_a_watching_line_cleanly(model_dir, incoming, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "defectscope", *run_args(model_dir, f"folder:{incoming}",
                                                         tmp_path, "--json")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()  # the line is up and has logged a part
    assert json.loads(first)["part_id"], process.stderr.read()
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "SIGTERM: stopping after the current part" in err and "line stopped:" in err
    store = ResultStore(f"sqlite:///{tmp_path / 'results.db'}")
    assert store.count() == 1 + len(out.splitlines())  # every printed part is logged
    store.close()


def test_run_once_inspects_a_folder_then_stops_with_busy_throughput(model_dir, incoming,
                                                                    tmp_path, capsys):
    from tests.fakes import write_corrupt_jpeg

    write_corrupt_jpeg(incoming / "zz_band.jpg", size=(64, 64))
    assert main(run_args(model_dir, f"folder:{incoming}", tmp_path, "--once", "--json")) == 0
    out, err = capsys.readouterr()
    rows = {Path(row["source"]).name: row for row in map(json.loads, out.splitlines())}
    assert len(rows) == 10  # every file that was there, then the end, not a watch
    assert rows["zz_band.jpg"]["verdict"] == "UNSURE"
    assert rows["zz_band.jpg"]["failure"] == "unreadable"
    assert "line finished: 10 parts" in err and "s busy:" in err and "parts/s" in err
    db = (tmp_path / "results.db").resolve()
    assert f"results: sqlite:///{db}" in err  # absolute, as where the data really is


def test_run_once_is_refused_for_a_camera(model_dir, tmp_path, capsys):
    assert main(run_args(model_dir, "camera:0", tmp_path, "--once")) == 2
    assert "--once inspects a batch of files" in capsys.readouterr().err


def test_monitor_reads_where_run_logged_by_default(model_dir, incoming, tmp_path, capsys,
                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--model", str(model_dir), "--source", f"glob:{incoming}/*.png",
                 "--no-archive"]) == 0
    capsys.readouterr()
    assert (tmp_path / "runs" / "line" / "results.db").is_file()
    assert main(["monitor", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stats"]["n"] == 9


def test_serve_finds_the_archive_beside_the_results_log_from_another_folder(
        model_dir, incoming, tmp_path, capsys, monkeypatch):
    import argparse

    from defectscope.cli.line import _add_serve, _archive_dir
    from defectscope.store import ImageArchive

    line_dir = tmp_path / "plant" / "line1"
    assert main(["run", "--model", str(model_dir), "--source", f"glob:{incoming}/*.png",
                 "--db", f"sqlite:///{line_dir / 'results.db'}"]) == 0
    capsys.readouterr()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    parser = argparse.ArgumentParser()
    _add_serve(parser.add_subparsers())
    args = parser.parse_args(["serve", "--model", str(model_dir), "--db",
                              f"sqlite:///{line_dir / 'results.db'}"])
    archive = _archive_dir(args)
    assert archive == line_dir / "images"
    stored = ResultStore(args.db).query(verdict="NG")[0]
    assert ImageArchive(archive).resolve(stored.image_path) is not None
