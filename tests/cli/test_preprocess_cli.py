"""``defectscope preprocess align|preview``: the JSON contract, exit codes and PNGs."""

import json

import numpy as np

from defectscope.cli import main

from tests.conftest import save
from tests.preprocess.helpers import board, corner_error, similarity, warp


def test_align_json_contract(tmp_path, capsys):
    reference = board(0)
    truth = similarity(reference.shape, 2.0, 1.0, (6.0, -3.0))
    save(tmp_path / "ref.png", reference)
    save(tmp_path / "img.png", warp(reference, truth))
    assert main(["preprocess", "align", str(tmp_path / "ref.png"), str(tmp_path / "img.png"),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"homography", "quality", "ok"} and out["ok"] is True
    homography = np.asarray(out["homography"])
    assert homography.shape == (3, 3)
    assert corner_error(homography, np.linalg.inv(truth), reference.shape) < 1.0
    assert 0.9 < out["quality"] <= 1.0


def test_align_failure_exits_non_zero_with_a_message(tmp_path, capsys):
    save(tmp_path / "ref.png", board(0))
    save(tmp_path / "other.png", board(99))
    assert main(["preprocess", "align", str(tmp_path / "ref.png"), str(tmp_path / "other.png"),
                 "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["ok"] is False
    assert "alignment failed" in captured.err


def test_preview_writes_before_and_after_pngs(tmp_path):
    (tmp_path / "steps.yaml").write_text(
        "- name: roi\n  box: [0, 0, 100, 50]\n- name: normalise\n  method: clahe\n")
    save(tmp_path / "a.png", board(1))
    assert main(["preprocess", "preview", "--config", str(tmp_path / "steps.yaml"),
                 str(tmp_path / "a.png"), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "a_before.png").is_file()
    from defectscope.data import load_image
    assert load_image(tmp_path / "out" / "a_after.png").shape == (50, 100, 3)


def test_preview_with_a_bad_step_is_a_config_error(tmp_path, capsys):
    (tmp_path / "steps.json").write_text(json.dumps([{"name": "blur"}]))
    save(tmp_path / "a.png", board(1))
    assert main(["preprocess", "preview", "--config", str(tmp_path / "steps.json"),
                 str(tmp_path / "a.png"), "--out", str(tmp_path / "out")]) == 2
    assert "unknown preprocessing step 'blur'" in capsys.readouterr().err


def test_train_with_preprocess_file_stores_the_steps_in_the_bundle(tiny_mvtec, tmp_path):
    (tmp_path / "steps.yaml").write_text("- name: denoise\n  method: median\n  size: 3\n")
    out = tmp_path / "model"
    assert main(["train", "--data", str(tiny_mvtec), "--format", "mvtec", "--model", "patchcore",
                 "--out", str(out), "--image-size", "64", "--set", "max_side=96", "--quiet",
                 "--preprocess", str(tmp_path / "steps.yaml")]) == 0
    info = json.loads((out / "bundle.json").read_text())
    assert [s["name"] for s in info["preprocess"]["steps"]] == ["denoise"]
    assert info["model"]["config"]["steps"] == info["preprocess"]["steps"]
