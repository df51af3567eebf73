"""``defectscope export``: writes MODEL/onnx, says what parity it proved, fails cleanly."""

from __future__ import annotations

import json

from defectscope.cli import main

FAST = ["--image-size", "64", "--set", "max_side=96", "--quiet"]


def test_export_cli_writes_onnx_and_reports_parity(tiny_mvtec, tmp_path, capsys):
    model_dir = tmp_path / "model"
    assert main(["train", "--data", str(tiny_mvtec), "--format", "mvtec", "--model", "padim",
                 "--out", str(model_dir), *FAST]) == 0
    capsys.readouterr()
    assert main(["export", "--model", str(model_dir), "--format", "onnx"]) == 0
    out = capsys.readouterr().out
    assert "exported padim" in out and "reference images re-scored" in out
    assert json.loads((model_dir / "onnx" / "export.json").read_text())["model"] == "padim"
    assert main(["export", "--model", str(model_dir), "--out", str(tmp_path / "other")]) == 0
    assert (tmp_path / "other" / "model.onnx").is_file()


def test_export_cli_missing_model_is_one_clear_error(tmp_path, capsys):
    assert main(["export", "--model", str(tmp_path / "nope")]) == 2
    assert "no such model folder" in capsys.readouterr().err
