"""The torch-free runtime: checks on load, verdicts, the line's Inspector, no torch imported."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from defectscope.errors import BundleError, ConfigError
from defectscope.line.pipeline import BundleInspector, Inspector
from defectscope.line.runner import load_inspector
from defectscope.runtime import SUPPORTED_MODELS, ParityError, RuntimeInspector, RuntimeModel
from defectscope.scoring.box_heads import DetectorHead, ReferenceHead
from defectscope.scoring.families import head_class
from defectscope.scoring.heads import AnomalyHead, ClassifierHead, SegmenterHead, build_scorer
from defectscope.values import Verdict

from tests.conftest import defective_part, good_part


@pytest.mark.parametrize("name", ["patchcore", "padim"])
def test_predict_applies_the_bundles_threshold_and_band(exported, name):
    model = RuntimeModel.load(exported[name])
    info = json.loads((exported[name] / "bundle.json").read_text())
    assert model.threshold == info["threshold"] and model.unsure_band == info["unsure_band"]
    for image in (good_part(990), defective_part(991)[0]):
        result = model.predict(image)
        assert result.verdict == Verdict.from_score(result.score, model.threshold,
                                                    model.unsure_band)
        assert set(result.timings) == {"preprocess", "backbone", "scoring", "anomaly_map"}
    assert model.predict(defective_part(991)[0]).verdict is not Verdict.OK


def test_tampered_onnx_is_refused(exported, copy_of):
    model_dir = copy_of(exported["patchcore"])
    with open(model_dir / "onnx" / "model.onnx", "ab") as file:
        file.write(b"\0")
    with pytest.raises(BundleError, match="sha256"):
        RuntimeModel.load(model_dir)


def test_missing_export_says_how_to_make_one(trained):
    with pytest.raises(BundleError, match="defectscope export"):
        RuntimeModel.load(trained["padim"])


def test_export_of_another_model_version_is_refused(exported, copy_of):
    model_dir = copy_of(exported["padim"])
    path = model_dir / "onnx" / "export.json"
    record = json.loads(path.read_text())
    record["bundle_tensors_sha256"] = "0" * 64
    path.write_text(json.dumps(record))
    with pytest.raises(BundleError, match="another version"):
        RuntimeModel.load(model_dir)


def test_tampered_tensors_are_refused(exported, copy_of):
    model_dir = copy_of(exported["padim"])
    with open(model_dir / "tensors.safetensors", "ab") as file:
        file.write(b"\0")
    with pytest.raises(BundleError, match="sha256 mismatch"):
        RuntimeModel.load(model_dir)


def test_runtime_refuses_to_start_when_references_score_differently(exported, copy_of):
    model_dir = copy_of(exported["padim"])
    path = model_dir / "bundle.json"
    info = json.loads(path.read_text())
    info["references"][0]["score"] += 0.01 * info["threshold"]
    path.write_text(json.dumps(info))
    with pytest.raises(ParityError, match="differently"):
        RuntimeModel.load(model_dir)


@pytest.mark.parametrize("name", ["something", "", None])
def test_unsupported_model_is_a_clear_error(name):
    with pytest.raises(BundleError, match="supports patchcore, padim, classifier, segmenter, "
                                          "reference, detector, not"):
        head_class(name)


def test_every_supported_model_has_a_head():
    assert {name: head_class(name) for name in SUPPORTED_MODELS} == {
        "patchcore": AnomalyHead, "padim": AnomalyHead,
        "classifier": ClassifierHead, "segmenter": SegmenterHead,
        "reference": ReferenceHead, "detector": DetectorHead}
    with pytest.raises(BundleError, match="patch scoring exists for patchcore, padim"):
        build_scorer("classifier", {})


def test_a_bundle_of_an_unsupported_model_is_refused_naming_the_supported(exported, copy_of):
    model_dir = copy_of(exported["padim"])
    path = model_dir / "bundle.json"
    info = json.loads(path.read_text())
    info["model"]["name"] = "fasterrcnn"
    path.write_text(json.dumps(info))
    with pytest.raises(BundleError, match="supports patchcore, padim, classifier, segmenter, "
                                          "reference, detector, not 'fasterrcnn'"):
        RuntimeModel.load(model_dir)


def test_line_runner_picks_the_runtime_after_export(exported, trained):
    notices = []
    inspector = load_inspector(exported["padim"], notice=notices.append)
    assert isinstance(inspector, RuntimeInspector) and isinstance(inspector, Inspector)
    assert not notices
    assert inspector.inspect(good_part(5)).verdict in set(Verdict)
    assert isinstance(load_inspector(trained["padim"], notice=notices.append), BundleInspector)
    assert "torch path" in notices[0]


def test_runtime_versions_match_the_torch_path(exported):
    runtime = RuntimeInspector(exported["patchcore"])
    torch_path = BundleInspector(exported["patchcore"])
    assert runtime.model_version == torch_path.model_version
    assert runtime.dataset_version == torch_path.dataset_version
    assert runtime.threshold == torch_path.threshold


def test_runtime_loads_and_inspects_without_importing_torch(exported, exported_supervised,
                                                           reference_bundles, tmp_path):
    from tests.models.test_reference import pair

    paths = [str(p) for p in [*exported.values(), *exported_supervised.values()]]
    board = tmp_path / "board.npy"  # a defective board whose template is the golden one
    np.save(board, pair(1000)[0])
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from defectscope.runtime import RuntimeInspector\n"
        "import defectscope.runtime.engine, defectscope.runtime.parity\n"
        "import defectscope.runtime.backends, defectscope.scoring.families\n"
        "import defectscope.scoring\n"
        f"for path in {paths!r}:\n"
        "    inspector = RuntimeInspector(path)\n"
        "    result = inspector.inspect(np.full((72, 88, 3), 120, np.uint8))\n"
        "    expected = None if inspector.model.name == 'classifier' else (72, 88)\n"
        "    assert getattr(result.anomaly_map, 'shape', None) == expected, path\n"
        # the reference model compares parts with its golden template (96 x 96 boards)
        f"inspector = RuntimeInspector({str(reference_bundles['golden'])!r})\n"
        "assert inspector.inspect(inspector.model.head.golden_template).verdict.value == 'OK'\n"
        f"result = inspector.inspect(np.load({str(board)!r}))\n"
        "assert result.verdict.value == 'NG' and result.detections, result\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_threads_reach_the_session_it_scores_with(exported):
    pinned = RuntimeModel.load(exported["padim"], threads=1)
    assert pinned.session.get_session_options().intra_op_num_threads == 1
    image = defective_part(5)[0]
    assert pinned.predict(image).score == pytest.approx(
        RuntimeModel.load(exported["padim"]).predict(image).score, rel=1e-5)
    with pytest.raises(AttributeError):
        pinned.session = None  # read-only: the predictor is built on it
    with pytest.raises(ConfigError, match="threads"):
        RuntimeModel.load(exported["padim"], threads=0)


def test_the_predictor_decides_at_the_current_threshold(exported):
    model = RuntimeModel.load(exported["padim"])
    image = defective_part(6)[0]
    score = model.predict(image).score
    model.threshold = score * 2  # e.g. a line that tightens or loosens it after load
    assert model.predict(image).verdict is Verdict.OK
    model.threshold = score / 2
    assert model.predict(image).verdict is Verdict.NG
