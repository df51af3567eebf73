"""The OpenVINO backend: export to IR with the parity certificate, scores as torch and ONNX
Runtime give them, hash checks at load, backend names, the line and the CLI, no torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("openvino", reason="the OpenVINO backend needs the openvino package "
                    "(the dev extra installs it)")

from defectscope.bundle import load_bundle  # noqa: E402
from defectscope.errors import BundleError, ConfigError  # noqa: E402
from defectscope.line.pipeline import BundleInspector  # noqa: E402
from defectscope.line.runner import LineConfig, load_inspector  # noqa: E402
from defectscope.runtime import RuntimeInspector, RuntimeModel  # noqa: E402
from defectscope.runtime.backends import OpenVINOSession  # noqa: E402
from defectscope.export import export_onnx  # noqa: E402

from tests.conftest import defective_part, good_part  # noqa: E402

NAMES = ("patchcore", "padim", "classifier_binary")


@pytest.fixture(scope="module")
def openvino_exported(trained, trained_supervised, tmp_path_factory) -> dict:
    """PatchCore, PaDiM and the binary classifier exported with ``formats=("onnx",
    "openvino")``. Do not change them."""
    root = tmp_path_factory.mktemp("openvino")
    bundles = {}
    for name, path in {**trained, **trained_supervised}.items():
        if name in NAMES:
            bundles[name] = shutil.copytree(path, root / name)
            export_onnx(bundles[name], formats=("onnx", "openvino"))
    return bundles


def _images():
    return [good_part(990), defective_part(991)[0], good_part(992, (64, 96))]


@pytest.mark.parametrize("name", NAMES)
def test_openvino_scores_match_torch_and_onnxruntime(openvino_exported, name):
    model_dir = openvino_exported[name]
    openvino = RuntimeModel.load(model_dir, backend="openvino")
    assert openvino.backend == "openvino" and isinstance(openvino.session, OpenVINOSession)
    onnx = RuntimeModel.load(model_dir)
    assert onnx.backend == "onnxruntime"
    torch_model = load_bundle(model_dir).model
    limit = openvino.tolerance * openvino.threshold
    for image in _images():
        expected, torch_map, _ = torch_model.anomaly(image)
        score, heatmap, _ = openvino.anomaly(image)
        assert abs(score - expected) <= limit
        assert abs(score - onnx.anomaly(image)[0]) <= limit
        if torch_map is not None:
            assert heatmap.shape == torch_map.shape
            assert np.abs(heatmap - torch_map).max() <= limit
        assert openvino.predict(image).verdict == torch_model.predict(image).verdict


@pytest.mark.parametrize("name", NAMES)
def test_export_records_the_openvino_certificate(openvino_exported, name):
    folder = openvino_exported[name] / "onnx"
    assert {"model.onnx", "model.xml", "model.bin", "export.json"} <= {
        p.name for p in folder.iterdir()}
    record = json.loads((folder / "export.json").read_text())["openvino"]
    assert record["precision"] == "f32" and record["openvino_version"]
    assert record["references"] and all(row["ok"] for row in record["references"])
    limit = 1e-3 * json.loads((folder / "export.json").read_text())["threshold"]
    assert record["max_score_difference"] <= limit
    assert all(row["ok"] for row in record["input_size_checks"])


@pytest.mark.parametrize("file", ["model.xml", "model.bin"])
def test_tampered_ir_is_refused(openvino_exported, copy_of, file):
    model_dir = copy_of(openvino_exported["padim"])
    with open(model_dir / "onnx" / file, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError, match=f"{file}: content changed since export"):
        RuntimeModel.load(model_dir, backend="openvino")
    RuntimeModel.load(model_dir)  # the ONNX file is untouched: onnxruntime still loads


def test_missing_ir_file_is_refused(openvino_exported, copy_of):
    model_dir = copy_of(openvino_exported["padim"])
    (model_dir / "onnx" / "model.bin").unlink()
    with pytest.raises(BundleError, match="model.bin: missing"):
        RuntimeModel.load(model_dir, backend="openvino")


def test_onnx_only_export_says_how_to_add_openvino(exported):
    with pytest.raises(BundleError, match="--format openvino"):
        RuntimeModel.load(exported["padim"], backend="openvino")


def test_openvino_refuses_to_start_when_references_score_differently(openvino_exported,
                                                                      copy_of):
    model_dir = copy_of(openvino_exported["patchcore"])
    info_path = model_dir / "bundle.json"
    info = json.loads(info_path.read_text())
    info["references"][0]["score"] += 0.01 * info["threshold"]
    info_path.write_text(json.dumps(info))
    with pytest.raises(BundleError, match="OpenVINO runtime scores reference images"):
        RuntimeModel.load(model_dir, backend="openvino")


def test_unknown_backend_is_a_clear_error(openvino_exported):
    with pytest.raises(ConfigError, match="unknown backend 'tensorrt': use one of "
                                          "onnxruntime, openvino"):
        RuntimeModel.load(openvino_exported["padim"], backend="tensorrt")
    with pytest.raises(ConfigError, match="unknown backend 'onnx': use one of auto, torch, "
                                          "onnxruntime, openvino"):
        load_inspector(openvino_exported["padim"], backend="onnx")
    with pytest.raises(ConfigError, match="unknown backend"):
        LineConfig(model_dir=openvino_exported["padim"], source="folder:x", backend="trt")
    with pytest.raises(ConfigError, match="unknown export format 'tflite'"):
        export_onnx(openvino_exported["padim"], formats=("onnx", "tflite"))


def test_line_picks_the_backend_asked_for(openvino_exported, trained):
    model_dir = openvino_exported["padim"]
    inspector = load_inspector(model_dir, backend="openvino")
    assert isinstance(inspector, RuntimeInspector) and inspector.model.backend == "openvino"
    auto = load_inspector(model_dir)  # the old behaviour: the export's ONNX file
    assert isinstance(auto, RuntimeInspector) and auto.model.backend == "onnxruntime"
    assert isinstance(load_inspector(model_dir, backend="torch"), BundleInspector)
    image = defective_part(993)[0]
    assert abs(inspector.inspect(image).score - auto.inspect(image).score) <= \
        auto.model.tolerance * auto.threshold
    with pytest.raises(BundleError, match="no ONNX export"):  # asked for: no silent torch
        load_inspector(trained["padim"], backend="openvino")


def test_cli_export_and_predict_with_openvino(trained, tmp_path, capsys):
    from defectscope.cli import main

    model_dir = shutil.copytree(trained["padim"], tmp_path / "padim")
    assert main(["export", "--model", str(model_dir), "--format", "openvino"]) == 0
    assert "OpenVINO IR" in capsys.readouterr().out
    assert (model_dir / "onnx" / "model.xml").is_file()
    image_path = tmp_path / "part.png"
    import cv2

    cv2.imwrite(str(image_path), defective_part(994)[0][:, :, ::-1])
    rows = {}
    for backend in ("torch", "onnxruntime", "openvino"):
        assert main(["predict", "--model", str(model_dir), str(image_path), "--json",
                     "--backend", backend]) == 0
        rows[backend] = json.loads(capsys.readouterr().out.strip())
    threshold = rows["torch"]["threshold"]
    assert abs(rows["openvino"]["score"] - rows["torch"]["score"]) <= 1e-3 * threshold
    assert rows["openvino"]["verdict"] == rows["torch"]["verdict"]


def test_openvino_backend_runs_without_torch(openvino_exported):
    paths = [str(openvino_exported[name]) for name in NAMES]
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from defectscope.runtime import RuntimeInspector\n"
        "import defectscope.runtime.backends\n"
        f"for path in {paths!r}:\n"
        "    inspector = RuntimeInspector(path, backend='openvino')\n"
        "    result = inspector.inspect(np.full((72, 88, 3), 120, np.uint8))\n"
        "    assert inspector.model.backend == 'openvino'\n"
        "    assert result.verdict.value in ('OK', 'NG', 'UNSURE'), result\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr
