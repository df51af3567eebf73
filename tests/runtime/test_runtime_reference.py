"""The reference comparison through ONNX: the window network exported, the comparison, boxes and
verdict shared with torch; parity on other boards, golden template, failures as on torch."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import onnx
import pytest

from defectscope.bundle import load_bundle
from defectscope.errors import BundleError, DefectscopeError
from defectscope.line.decision import evaluate
from defectscope.line.pipeline import BundleInspector
from defectscope.line.runner import load_inspector
from defectscope.line.sources import Frame
from defectscope.export import export_onnx, network_graph
from defectscope.runtime import DEFAULT_TOLERANCE, ParityError, RuntimeInspector, RuntimeModel
from defectscope.runtime.parity import BOX_TOLERANCE_PX, detections_agree
from defectscope.scoring.box_heads import ReferenceHead
from defectscope.scoring.families import head_class
from defectscope.values import Verdict

from tests.models.test_reference import pair, rgb

BOARDS = [pair(seed) for seed in range(1000, 1005)] + \
    [pair(seed, defects=False) for seed in range(2000, 2003)]


def _limit(model) -> float:
    return DEFAULT_TOLERANCE * model.threshold


def _same_result(torch_result, onnx_result, limit: float) -> None:
    assert onnx_result.verdict is torch_result.verdict
    assert onnx_result.defect_type == torch_result.defect_type
    assert abs(onnx_result.score - torch_result.score) <= limit
    assert detections_agree(torch_result.detections, onnx_result.detections, limit)
    assert onnx_result.anomaly_map is None and onnx_result.reason == torch_result.reason


def test_export_writes_the_window_network_and_the_reference_detections(reference_bundles):
    onnx_dir = reference_bundles["plain"] / "onnx"
    record = json.loads((onnx_dir / "export.json").read_text())
    assert record["model"] == "reference"
    assert record["inputs"] == ["image"] and record["outputs"] == ["logits", "boxes"]
    assert record["input_size_checks"] == [] and record["max_map_abs_diff"] is None
    assert record["max_box_abs_diff"] <= BOX_TOLERANCE_PX == record["box_tolerance_px"]
    rows = record["references"]
    assert rows and all(row["ok"] for row in rows)
    assert any(row["detections"] for row in rows)  # boxes were compared, not just empty lists
    graph = onnx.load(str(onnx_dir / "model.onnx")).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic: the windows
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:]] == [3, 32, 32]
    assert all(o.type.tensor_type.shape.dim[0].dim_param for o in graph.output)
    info = json.loads((reference_bundles["plain"] / "bundle.json").read_text())
    assert all(row["template"].endswith("_template.png") for row in info["references"])


def test_runtime_equals_torch_on_other_boards(reference_bundles):
    torch_model = load_bundle(reference_bundles["plain"]).model
    runtime = RuntimeModel.load(reference_bundles["plain"])
    assert isinstance(runtime.head, ReferenceHead)
    assert runtime.threshold == torch_model.threshold
    assert runtime.head.classes == torch_model.classes_
    limit = _limit(torch_model)
    verdicts = set()
    for part, template, _ in BOARDS:
        for image, reference in ((part, template), (rgb(part), rgb(template))):
            expected = torch_model.detect(image, reference)
            assert detections_agree(expected, runtime.detect(image, reference), limit)
            torch_result = torch_model.predict(image, reference)
            _same_result(torch_result, runtime.predict(image, reference), limit)
            verdicts.add(torch_result.verdict)
    assert verdicts == {Verdict.OK, Verdict.NG}


def test_runtime_equals_torch_without_test_time_averaging(reference_bundles, tmp_path):
    """The default bundle averages over flips and scales (checked by the parity tests above);
    one that does not is held to torch as well, and answers differently."""
    from defectscope.bundle import save_bundle
    from defectscope.training.detection import detection_references

    from tests.models.test_reference import write_dataset

    averaging = load_bundle(reference_bundles["plain"]).model
    assert RuntimeModel.load(reference_bundles["plain"]).head.settings.test_flips
    model = load_bundle(reference_bundles["plain"]).model
    model.config = dataclasses.replace(model.config, test_flips=False, test_scales=False)
    boards = write_dataset(tmp_path / "boards", range(3000, 3003))
    bundle = save_bundle(model, tmp_path / "plain",
                         references=detection_references(model, boards, boards.samples))
    export_onnx(bundle)  # checks the exported network against these references' detections
    runtime = RuntimeModel.load(bundle)
    assert not runtime.head.settings.test_flips and runtime.head.settings.test_scales == (1.0,)
    limit = _limit(model)
    for part, template, _ in BOARDS[:4]:
        expected = model.detect(part, template)
        assert expected != averaging.detect(part, template)
        assert detections_agree(expected, runtime.detect(part, template), limit)


def test_the_golden_template_is_used_when_none_is_passed(reference_bundles):
    part, template, _ = pair(1000)
    torch_model = load_bundle(reference_bundles["golden"]).model
    runtime = RuntimeModel.load(reference_bundles["golden"])
    assert np.array_equal(runtime.head.golden_template, template)
    with_template = runtime.predict(part, template)
    assert with_template.verdict is Verdict.NG and with_template.detections
    _same_result(with_template, runtime.predict(part), 0.0)
    _same_result(torch_model.predict(part), runtime.predict(part), _limit(torch_model))
    assert runtime.predict(rgb(template)).verdict is Verdict.OK


def test_line_results_equal_the_torch_paths(reference_bundles):
    part, template, _ = pair(1000)
    for name in ("golden", "plain"):
        inspector = load_inspector(reference_bundles[name], notice=lambda message: None)
        assert isinstance(inspector, RuntimeInspector)
        torch_path = BundleInspector(reference_bundles[name])
        for image in (rgb(part), rgb(template)):
            frame = Frame("p1", 0.0, "test", image)
            expected = evaluate(frame, torch_path).part
            got = evaluate(frame, inspector).part
            assert (got.verdict, got.defect_types, got.model_version, got.threshold) == \
                (expected.verdict, expected.defect_types, expected.model_version,
                 expected.threshold)
            assert (got.reason is None) == (expected.reason is None)
    # no golden template: the model fails on both paths, which the line makes a fail-safe part
    assert got.verdict is not Verdict.OK and "template" in got.reason


def test_a_missing_template_is_the_torch_models_error(reference_bundles):
    part, _, _ = pair(1000)
    torch_model = load_bundle(reference_bundles["plain"]).model
    runtime = RuntimeModel.load(reference_bundles["plain"])
    assert runtime.head.golden_template is None
    with pytest.raises(DefectscopeError) as torch_error:
        torch_model.predict(part)
    for call in (runtime.predict, runtime.detect, runtime.anomaly):
        with pytest.raises(DefectscopeError) as onnx_error:
            call(part)
        assert str(onnx_error.value) == str(torch_error.value)
        assert "store the product's template in the model" in str(onnx_error.value)


def test_a_failed_alignment_is_unsure_with_the_reason_on_both_paths(reference_bundles):
    torch_model = load_bundle(reference_bundles["plain"]).model
    runtime = RuntimeModel.load(reference_bundles["plain"])
    torch_model.config = dataclasses.replace(torch_model.config, align=True)
    runtime.head.settings = dataclasses.replace(
        runtime.head.settings,
        compare=dataclasses.replace(runtime.head.settings.compare, align=True))
    blank, template = np.zeros((96, 96), np.uint8), pair(1000)[1]
    expected, got = torch_model.predict(blank, template), runtime.predict(blank, template)
    assert got.verdict is expected.verdict is Verdict.UNSURE
    assert np.isnan(got.score) and got.reason == expected.reason
    assert got.reason.startswith("alignment to the template failed")


def test_tampered_onnx_is_refused(reference_bundles, copy_of):
    model_dir = copy_of(reference_bundles["plain"])
    path = model_dir / "onnx" / "model.onnx"
    path.write_bytes(path.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(BundleError, match="content changed since export"):
        RuntimeModel.load(model_dir)


def test_load_compares_detections_with_those_recorded_at_export(reference_bundles, copy_of):
    model_dir = copy_of(reference_bundles["plain"])
    path = model_dir / "onnx" / "export.json"
    record = json.loads(path.read_text())
    row = next(row for row in record["references"] if row["detections"])
    row["detections"][0]["box"][0] += 1.0
    path.write_text(json.dumps(record))
    with pytest.raises(ParityError, match="largest box difference 1 px"):
        RuntimeModel.load(model_dir)
    del row["detections"]
    path.write_text(json.dumps(record))
    with pytest.raises(ParityError, match="export the model again"):
        RuntimeModel.load(model_dir)


def test_failed_parity_writes_nothing(reference_bundles, copy_of, drifting_backend):
    model_dir = copy_of(reference_bundles["plain"])

    def shifted(outputs):  # box fractions stretched by 10%: the same confidences (a constant
        outputs[1] = outputs[1] * np.float32(1.1)  # shift would cancel over the flipped views)
        return outputs

    drifting_backend(shifted)
    with pytest.raises(ParityError, match="detections differ from torch's"):
        export_onnx(model_dir, model_dir / "onnx2")
    assert not (model_dir / "onnx2").exists()

    def background_only(outputs):
        outputs[0][:, 0] = 1e4
        return outputs

    drifting_backend(background_only)
    with pytest.raises(ParityError, match="scores reference images differently"):
        export_onnx(model_dir, model_dir / "onnx2")
    assert not (model_dir / "onnx2").exists()


def test_an_unknown_model_is_refused_naming_the_supported_models():
    message = ("supports patchcore, padim, classifier, segmenter, reference, detector, not "
               "'fasterrcnn'")
    with pytest.raises(BundleError, match=message):
        network_graph(SimpleNamespace(name="fasterrcnn"))
    with pytest.raises(BundleError, match=message):
        head_class("fasterrcnn")
    assert head_class("reference") is ReferenceHead
