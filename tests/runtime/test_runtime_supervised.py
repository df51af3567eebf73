"""The classifier and the segmenter through ONNX: parity with torch, checks on load and export."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import onnx
import pytest

from defectscope.bundle import load_bundle
from defectscope.errors import BundleError
from defectscope.line.runner import load_inspector
from defectscope.export import export_onnx, network_graph
from defectscope.runtime import DEFAULT_TOLERANCE, ParityError, RuntimeInspector, RuntimeModel
from defectscope.scoring.heads import ClassifierHead, SegmenterHead
from defectscope.values import Verdict

from tests.conftest import defective_part, good_part
from tests.runtime.conftest import SUPERVISED, scratched_part

CLASSIFIERS = ("classifier_binary", "classifier_multiclass")
SEGMENTERS = ("segmenter", "segmenter_flip")
# Other images than the references, of several shapes: the keep_aspect bundles reach the network
# at several input sizes.
SIZES = [(72, 88), (120, 60), (64, 200), (200, 150)]


def _images() -> list[np.ndarray]:
    return ([good_part(900 + i, size) for i, size in enumerate(SIZES)]
            + [defective_part(950 + i, size)[0] for i, size in enumerate(SIZES)]
            + [scratched_part(980 + i, size) for i, size in enumerate(SIZES)])


def _move_reference_score(model_dir, by: float) -> None:
    path = model_dir / "bundle.json"
    info = json.loads(path.read_text())
    info["references"][0]["score"] += by * info["threshold"]
    path.write_text(json.dumps(info))


@pytest.mark.parametrize("name", SUPERVISED)
def test_export_writes_the_whole_network_and_its_record(exported_supervised, name):
    onnx_dir = exported_supervised[name] / "onnx"
    assert sorted(p.name for p in onnx_dir.iterdir()) == ["export.json", "model.onnx"]
    record = json.loads((onnx_dir / "export.json").read_text())
    assert record["model"] == name.split("_")[0]
    assert record["inputs"] == ["image"] and record["outputs"] == ["logits"]
    assert record["references"] and all(row["ok"] for row in record["references"])
    limit = DEFAULT_TOLERANCE * record["threshold"]
    assert record["max_score_difference"] <= limit
    graph = onnx.load(str(onnx_dir / "model.onnx")).graph
    batch, _, height, width = graph.input[0].type.tensor_type.shape.dim
    assert batch.dim_param and height.dim_param and width.dim_param  # dynamic N, H, W
    output = graph.output[0].type.tensor_type.shape.dim
    if name in CLASSIFIERS:
        assert len(output) == 2 and output[0].dim_param and record["max_map_abs_diff"] is None
        assert record["max_probability_abs_diff"] <= limit
    else:
        assert len(output) == 4 and all(output[i].dim_param for i in (0, 2, 3))
        assert record["max_map_abs_diff"] <= limit and record["max_probability_abs_diff"] is None
    if name in ("classifier_multiclass", "segmenter"):  # keep_aspect: several input sizes
        assert len(record["input_size_checks"]) > 1


@pytest.mark.parametrize("name", SUPERVISED)
def test_runtime_equals_torch_on_other_images_of_several_sizes(exported_supervised, name):
    torch_model = load_bundle(exported_supervised[name]).model
    runtime = RuntimeModel.load(exported_supervised[name])
    assert runtime.threshold == torch_model.threshold
    limit = DEFAULT_TOLERANCE * torch_model.threshold
    verdicts = set()
    for image in _images():
        expected, result = torch_model.predict(image), runtime.predict(image)
        assert abs(result.score - expected.score) <= limit
        assert result.verdict == Verdict.from_score(result.score, runtime.threshold,
                                                    runtime.unsure_band)
        if abs(expected.score - torch_model.threshold) > 2 * limit:
            assert result.verdict == expected.verdict
            assert result.defect_type == expected.defect_type
        verdicts.add(result.verdict)
        if name in CLASSIFIERS:
            assert result.anomaly_map is None is expected.anomaly_map
            got, want = runtime.probabilities(image), torch_model.probabilities(image)
            assert list(got) == list(want) == list(torch_model.classes_)
            np.testing.assert_allclose(list(got.values()), list(want.values()), atol=limit)
        else:
            assert result.anomaly_map.shape == image.shape[:2] == expected.anomaly_map.shape
            assert result.anomaly_map.dtype == np.float32
            np.testing.assert_allclose(result.anomaly_map, expected.anomaly_map, atol=limit)
        assert set(result.timings) == {"preprocess", "network", "scoring"}
    assert verdicts == {Verdict.OK, Verdict.NG}  # the test threshold splits these images


def test_multiclass_runtime_names_the_defect_type(exported_supervised):
    runtime = RuntimeModel.load(exported_supervised["classifier_multiclass"])
    assert isinstance(runtime.head, ClassifierHead)
    assert runtime.head.classes == ("good", "blob", "scratch")
    types = {runtime.predict(image).defect_type for image in _images()}
    assert types - {None} and types <= {None, "blob", "scratch"}
    binary = RuntimeModel.load(exported_supervised["classifier_binary"])
    assert binary.head.classes == ("good", "defect")


def test_segmenter_runtime_flip_averages_like_the_config(exported_supervised, copy_of):
    plain = RuntimeModel.load(exported_supervised["segmenter"])
    flip = RuntimeModel.load(exported_supervised["segmenter_flip"])
    assert isinstance(flip.head, SegmenterHead) and flip.head.flip_average
    assert not plain.head.flip_average
    image = defective_part(960, (72, 88))[0]
    mirrored = np.ascontiguousarray(image[::-1, ::-1])
    _, prob, _ = flip.anomaly(image)
    _, mirrored_prob, _ = flip.anomaly(mirrored)
    np.testing.assert_allclose(mirrored_prob, prob[::-1, ::-1], atol=1e-5)  # equivariant
    assert not np.allclose(plain.anomaly(image)[1], prob, atol=1e-5)
    # A runtime that ignored flip_average would score the references differently: refused.
    model_dir = copy_of(exported_supervised["segmenter_flip"])
    path = model_dir / "bundle.json"
    info = json.loads(path.read_text())
    info["model"]["config"]["flip_average"] = False
    path.write_text(json.dumps(info))
    with pytest.raises(ParityError, match="differently"):
        RuntimeModel.load(model_dir)


@pytest.mark.parametrize("name", ["classifier_multiclass", "segmenter"])
def test_a_batch_scores_like_its_images_one_by_one(exported_supervised, name):
    runtime = RuntimeModel.load(exported_supervised[name])
    inputs = [runtime.preprocessor(image) for image in (good_part(3), defective_part(4)[0])]
    batch = runtime.forward(np.stack(inputs))[0]
    for i, array in enumerate(inputs):
        np.testing.assert_allclose(batch[i], runtime.forward(array[None])[0][0], atol=1e-5)


@pytest.mark.parametrize("name", ["classifier_binary", "segmenter_flip"])
@pytest.mark.parametrize("file, message", [("onnx/model.onnx", "content changed since export"),
                                           ("tensors.safetensors", "sha256 mismatch")])
def test_tampered_onnx_or_tensors_are_refused(exported_supervised, copy_of, name, file, message):
    model_dir = copy_of(exported_supervised[name])
    with open(model_dir / file, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError, match=message):
        RuntimeModel.load(model_dir)


@pytest.mark.parametrize("name", ["classifier_multiclass", "segmenter"])
def test_runtime_refuses_to_start_when_references_score_differently(exported_supervised,
                                                                    copy_of, name):
    model_dir = copy_of(exported_supervised[name])
    _move_reference_score(model_dir, 0.01)
    with pytest.raises(ParityError, match="differently"):
        RuntimeModel.load(model_dir)


@pytest.mark.parametrize("name", ["classifier_binary", "segmenter_flip"])
def test_failed_parity_check_writes_nothing(trained_supervised, copy_of, name):
    model_dir = copy_of(trained_supervised[name])
    _move_reference_score(model_dir, 2 * DEFAULT_TOLERANCE)
    with pytest.raises(ParityError, match="differently"):
        export_onnx(model_dir)
    assert not (model_dir / "onnx").exists()
    assert not [p for p in model_dir.iterdir() if p.name.startswith(".onnx")]  # no staging left


def test_class_probabilities_are_held_to_the_tolerance_too(trained_supervised, copy_of,
                                                           drifting_backend):
    """A network that kept P(good), hence the score, but swapped the defect classes is refused."""
    model_dir = copy_of(trained_supervised["classifier_multiclass"])

    def swapped(outputs):  # logits of blob and scratch exchanged
        outputs[0] = outputs[0][:, [0, 2, 1]]
        return outputs

    drifting_backend(swapped)
    with pytest.raises(ParityError, match="class probabilities"):
        export_onnx(model_dir)
    assert not (model_dir / "onnx").exists()


def test_an_unknown_model_is_not_exported():
    with pytest.raises(BundleError, match="supports patchcore, padim, classifier, segmenter, "
                                          "reference, detector, not 'fasterrcnn'"):
        network_graph(SimpleNamespace(name="fasterrcnn"))


def test_line_runner_picks_the_runtime_for_a_supervised_export(exported_supervised):
    notices = []
    inspector = load_inspector(exported_supervised["classifier_multiclass"],
                               notice=notices.append)
    assert isinstance(inspector, RuntimeInspector) and not notices
    result = inspector.inspect(scratched_part(7))
    assert result.verdict in set(Verdict)
    assert (result.defect_type is None) == (result.verdict is Verdict.OK)
