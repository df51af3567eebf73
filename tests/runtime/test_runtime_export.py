"""ONNX export: parity proven on the bundle's references, nothing written when it fails."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from defectscope.bundle import load_bundle
from defectscope.errors import BundleError
from defectscope.runtime import DEFAULT_TOLERANCE, ParityError, RuntimeModel
from defectscope.export import export_onnx

from tests.conftest import defective_part, good_part

MODELS = ("patchcore", "padim")
# Other images than the references, at several sizes: PatchCore keeps the aspect ratio, so these
# reach the network at several input sizes (all multiples of 16).
SIZES = [(72, 88), (120, 60), (64, 200), (200, 150)]


def _set_reference_score(model_dir, index: int, score: float) -> None:
    path = model_dir / "bundle.json"
    info = json.loads(path.read_text())
    info["references"][index]["score"] = score
    path.write_text(json.dumps(info))


@pytest.mark.parametrize("name", MODELS)
def test_export_writes_onnx_and_its_record(exported, name):
    onnx_dir = exported[name] / "onnx"
    assert sorted(p.name for p in onnx_dir.iterdir()) == ["export.json", "model.onnx"]
    record = json.loads((onnx_dir / "export.json").read_text())
    assert record["model"] == name and record["opset"] >= 17
    assert record["tolerance"] == DEFAULT_TOLERANCE
    assert record["inputs"] == ["image"] and record["outputs"] == ["embeddings"]
    assert record["references"] and all(row["ok"] for row in record["references"])
    assert record["max_score_difference"] <= DEFAULT_TOLERANCE * record["threshold"]
    assert record["max_map_abs_diff"] < 1e-2 * record["threshold"]
    assert record["onnxruntime_version"]
    graph = onnx.load(str(onnx_dir / "model.onnx"))
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17
    height, width = graph.graph.input[0].type.tensor_type.shape.dim[2:]
    assert height.dim_param and width.dim_param  # dynamic height and width


@pytest.mark.parametrize("name", MODELS)
def test_runtime_scores_equal_torch_on_other_images_of_several_sizes(exported, name):
    bundle = load_bundle(exported[name])
    runtime = RuntimeModel.load(exported[name])
    limit = DEFAULT_TOLERANCE * bundle.model.threshold
    images = [good_part(900 + i, size) for i, size in enumerate(SIZES)]
    images += [defective_part(950 + i, size)[0] for i, size in enumerate(SIZES)]
    for image in images:
        expected = bundle.model.predict(image)
        result = runtime.predict(image)
        assert abs(result.score - expected.score) <= limit
        assert result.anomaly_map.shape == image.shape[:2] == expected.anomaly_map.shape
        np.testing.assert_allclose(result.anomaly_map, expected.anomaly_map,
                                   atol=1e-2 * bundle.model.threshold)
        if abs(expected.score - bundle.model.threshold) > 2 * limit:
            assert result.verdict == expected.verdict


def test_failed_parity_check_writes_nothing(trained, copy_of):
    model_dir = copy_of(trained["padim"])
    info = json.loads((model_dir / "bundle.json").read_text())
    moved = info["references"][0]["score"] + 2 * DEFAULT_TOLERANCE * info["threshold"]
    _set_reference_score(model_dir, 0, moved)
    with pytest.raises(ParityError, match="differently"):
        export_onnx(model_dir)
    assert not (model_dir / "onnx").exists()
    assert not [p for p in model_dir.iterdir() if p.name.startswith(".onnx")]  # no staging left


def test_a_looser_tolerance_is_recorded_and_used(trained, copy_of):
    model_dir = copy_of(trained["padim"])
    info = json.loads((model_dir / "bundle.json").read_text())
    _set_reference_score(model_dir, 0, info["references"][0]["score"] + 2e-3 * info["threshold"])
    export_onnx(model_dir, tolerance=1e-2)
    assert json.loads((model_dir / "onnx" / "export.json").read_text())["tolerance"] == 1e-2
    RuntimeModel.load(model_dir)  # the runtime re-checks with the recorded tolerance


def test_bundle_without_references_is_refused(trained, copy_of):
    model_dir = copy_of(trained["padim"])
    path = model_dir / "bundle.json"
    info = json.loads(path.read_text())
    info["references"] = []
    path.write_text(json.dumps(info))
    with pytest.raises(BundleError, match="no reference images"):
        export_onnx(model_dir)
    assert not (model_dir / "onnx").exists()


def test_export_to_another_folder_and_reexport_replaces(trained, copy_of, tmp_path):
    model_dir = copy_of(trained["padim"])
    out = export_onnx(model_dir, tmp_path / "elsewhere")
    assert (out / "model.onnx").is_file() and not (model_dir / "onnx").exists()
    RuntimeModel.load(model_dir, onnx_dir=out)
    (out / "stale.txt").write_text("old")
    export_onnx(model_dir, out)
    assert not (out / "stale.txt").exists()
