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


SUPERVISED_FAST = ["--image-size", "32", "--set", "epochs=1", "--set", "warmup_epochs=1",
                   "--set", "augment=false", "--quiet"]


def test_export_cli_exports_a_trained_classifier_and_segmenter(tiny_mvtec, tmp_path, capsys):
    from defectscope.runtime import RuntimeModel

    for name, extra in (("classifier", ["--set", "task=binary"]),
                        ("segmenter", ["--set", "flip_average=true"])):
        model_dir = tmp_path / name
        assert main(["train", "--data", str(tiny_mvtec), "--format", "mvtec", "--model", name,
                     "--out", str(model_dir), *SUPERVISED_FAST, *extra]) == 0
        capsys.readouterr()
        assert main(["export", "--model", str(model_dir)]) == 0
        out = capsys.readouterr().out
        assert f"exported {name}" in out and "reference images re-scored" in out
        assert ("class-probability difference" in out) == (name == "classifier")
        assert ("anomaly-map difference" in out) == (name == "segmenter")
        assert RuntimeModel.load(model_dir).name == name
