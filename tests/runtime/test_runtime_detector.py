"""The learned detector through ONNX: FCOS up to its head outputs exported, the numpy decoding
shared with torch; parity on other images and sizes, tampered files and failed parity refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
import torch

from defectscope.bundle import load_bundle
from defectscope.errors import BundleError
from defectscope.export import export_onnx
from defectscope.runtime import DEFAULT_TOLERANCE, ParityError, RuntimeModel
from defectscope.runtime.parity import BOX_TOLERANCE_PX, detections_agree
from defectscope.scoring.box_heads import DetectorHead
from defectscope.scoring.families import head_class
from defectscope.scoring.heads import FCOS_OUTPUTS
from defectscope.scoring.fcos import FcosSettings, detect_images, fcos_strides
from defectscope.values import Verdict

from tests.models.test_detector import CLASSES, FAST, SIZE, _part

# keep_aspect: parts of other shapes reach the network at other sizes (dynamic ONNX axes).
OPTIONS = {**FAST, "resize": "keep_aspect", "max_side": 96}


@pytest.fixture(scope="module")
def detector_bundles(tmp_path_factory):
    """A tiny detector trained once (``train_detection``: references recorded) and a copy with
    its ONNX export. Do not change them."""
    from PIL import Image

    from defectscope.data.boxes.dataset import DetectionDataset, DetectionSample
    from defectscope.data.hashing import sha256_file
    from defectscope.training.detection import train_detection

    root = tmp_path_factory.mktemp("detector")
    (root / "parts").mkdir()
    samples = []
    for seed in range(32):
        image, boxes = _part(seed)
        path = root / "parts" / f"{seed:02d}.png"
        Image.fromarray(image).save(path)
        samples.append(DetectionSample(path.name, sha256_file(path), SIZE, SIZE, tuple(boxes),
                                       split="train" if seed < 24 else "val"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: one thread is faster
    try:
        train_detection(DetectionDataset(root / "parts", CLASSES, samples), "detector",
                        root / "trained", options=OPTIONS, progress=False)
    finally:
        torch.set_num_threads(threads)
    exported = shutil.copytree(root / "trained", root / "exported")
    export_onnx(exported)
    return {"trained": root / "trained", "exported": exported}


def _others() -> list[np.ndarray]:
    """Parts the model was not trained on, grey and RGB, square and not (other input sizes)."""
    images = [_part(seed)[0] for seed in range(200, 206)]
    wide = np.concatenate([_part(300)[0], _part(301)[0]], axis=1)
    tall = np.concatenate([_part(302)[0], _part(303)[0][:40]], axis=0)
    return images + [np.stack([images[0]] * 3, axis=-1), wide, tall,
                     np.stack([wide] * 3, axis=-1)]


def test_training_records_references_with_detections_and_export_holds_them(detector_bundles):
    info = json.loads((detector_bundles["trained"] / "bundle.json").read_text())
    assert 1 <= len(info["references"]) <= 4
    record = json.loads((detector_bundles["exported"] / "onnx" / "export.json").read_text())
    assert record["model"] == "detector" and record["outputs"] == list(FCOS_OUTPUTS)
    assert record["box_tolerance_px"] == BOX_TOLERANCE_PX >= record["max_box_abs_diff"]
    rows = record["references"]
    assert len(rows) == len(info["references"]) and all(row["ok"] for row in rows)
    assert all(row["detections"] for row in rows)  # boxes were compared, not empty lists
    assert record["input_size_checks"] and all(row["ok"] for row in record["input_size_checks"])
    graph = onnx.load(str(detector_bundles["exported"] / "onnx" / "model.onnx")).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert all(dims[i].dim_param for i in (0, 2, 3)) and dims[1].dim_value == 3


def test_runtime_equals_torch_on_other_parts_and_sizes(detector_bundles):
    torch_model = load_bundle(detector_bundles["exported"]).model
    runtime = RuntimeModel.load(detector_bundles["exported"])
    assert isinstance(runtime.head, DetectorHead) and head_class("detector") is DetectorHead
    assert runtime.head.classes == torch_model.classes_ and runtime.threshold == torch_model.threshold
    limit = DEFAULT_TOLERANCE * torch_model.threshold
    images, verdicts, sizes = _others(), set(), set()
    for image in images:
        sizes.add(runtime.preprocessor.input_size(image.shape))
        expected = torch_model.detect(image)
        assert expected and detections_agree(expected, runtime.detect(image), limit)
        torch_result, onnx_result = torch_model.predict(image), runtime.predict(image)
        assert onnx_result.verdict is torch_result.verdict
        assert onnx_result.defect_type == torch_result.defect_type
        assert abs(onnx_result.score - torch_result.score) <= limit
        assert detections_agree(torch_result.detections, onnx_result.detections, limit)
        verdicts.add(torch_result.verdict)
    assert len(sizes) >= 3 and Verdict.NG in verdicts
    # a batch of mixed sizes (zero-padded as torchvision pads) on both paths
    for expected, got in zip(torch_model.detect_many(images[-4:]),
                             runtime.detect_many(images[-4:])):
        assert detections_agree(expected, got, limit)


def test_numpy_decoding_reproduces_torchvisions_fcos(detector_bundles):
    """The shared numpy decoding against torchvision's own post-processing (what ``detect``
    called before): same labels in order, boxes within 1e-3 px, scores within 1e-5."""
    from defectscope.models.detector_net import HeadOutputs

    model = load_bundle(detector_bundles["trained"]).model
    net = model.net_.eval()
    images = _others()[-4:]
    inputs = [model.preprocessor(image) for image in images]
    with torch.inference_mode():
        outputs = net([torch.from_numpy(x) for x in inputs])
    raw = HeadOutputs(net).eval()

    def forward(batch):
        with torch.inference_mode():
            return tuple(t.numpy() for t in raw(torch.from_numpy(batch)))

    settings = FcosSettings.from_config(model.config.to_dict())
    assert settings.strides == fcos_strides(8, 32) == (8, 16, 32)
    found = detect_images(images, model.preprocessor, forward, model.classes_, settings)
    for image, x, out, got in zip(images, inputs, outputs, found):
        scores = out["scores"].numpy().astype(np.float64)
        order = np.argsort(-scores, kind="stable")
        assert [model.classes_[i] for i in out["labels"].numpy()[order]] == \
            [d.label for d in got]
        sx, sy = image.shape[1] / x.shape[2], image.shape[0] / x.shape[1]
        boxes = out["boxes"].numpy().astype(np.float64)[order] * (sx, sy, sx, sy)
        assert np.abs(boxes - np.array([d.box for d in got])).max() <= 1e-3
        assert np.abs(scores[order] - np.array([d.confidence for d in got])).max() <= 1e-5


def test_tampered_onnx_is_refused(detector_bundles, copy_of):
    model_dir = copy_of(detector_bundles["exported"])
    path = model_dir / "onnx" / "model.onnx"
    path.write_bytes(path.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(BundleError, match="content changed since export"):
        RuntimeModel.load(model_dir)


def test_load_compares_detections_with_those_recorded_at_export(detector_bundles, copy_of):
    model_dir = copy_of(detector_bundles["exported"])
    path = model_dir / "onnx" / "export.json"
    record = json.loads(path.read_text())
    record["references"][0]["detections"][0]["box"][0] += 1.0
    path.write_text(json.dumps(record))
    with pytest.raises(ParityError, match="largest box difference 1 px"):
        RuntimeModel.load(model_dir)


def test_failed_parity_writes_nothing(detector_bundles, copy_of, drifting_backend):
    model_dir = copy_of(detector_bundles["trained"])

    def wider_boxes(outputs):  # box distances 5% longer: the same confidences, other boxes
        outputs[1] = outputs[1] * np.float32(1.05)
        return outputs

    drifting_backend(wider_boxes)
    with pytest.raises(ParityError, match="detections differ from torch's"):
        export_onnx(model_dir)
    assert not (model_dir / "onnx").exists()

    def no_boxes(outputs):
        outputs[0] = np.full_like(outputs[0], -1e4)
        return outputs

    drifting_backend(no_boxes)
    with pytest.raises(ParityError, match="scores reference images differently"):
        export_onnx(model_dir)
    assert not (model_dir / "onnx").exists()


def test_near_equal_confidences_may_swap_places_nothing_else_may():
    from defectscope.values import Detection

    a = Detection((1.0, 1.0, 9.0, 9.0), "dark", 0.0887315)
    b = Detection((20.0, 20.0, 30.0, 30.0), "bright", 0.0887314)
    c = Detection((40.0, 40.0, 50.0, 50.0), "dark", 0.5)
    assert detections_agree([c, a, b], [c, b, a], 1e-6)
    assert not detections_agree([c, a, b], [c, b, a], 0.0)
    assert not detections_agree([c, a, b], [a, c, b], 1e-6)  # far apart: the order counts
    assert not detections_agree([c, a, b], [c, a], 1e-6)


def test_detections_where_the_lists_end_may_differ_nothing_above():
    """A list ends at ``min_confidence`` or at its cap: float noise may list a detection right
    there on one side only; with ``floor`` those tails are left out, nothing else is."""
    from defectscope.values import Detection

    limit, floor = 1e-4, 0.05
    top = Detection((40.0, 40.0, 50.0, 50.0), "dark", 0.5)
    at_floor = Detection((1.0, 1.0, 9.0, 9.0), "dark", floor + 0.5 * limit)
    assert detections_agree([top, at_floor], [top], limit, floor)
    assert not detections_agree([top, at_floor], [top], limit)
    # at the cap: the last place holds one of two boxes of near-equal confidence
    last = Detection((60.0, 60.0, 70.0, 70.0), "bright", 0.2)
    other = Detection((80.0, 80.0, 90.0, 90.0), "dark", 0.2 - 0.5 * limit)
    assert detections_agree([top, last], [top, other], limit, floor)
    assert not detections_agree([top, last], [top, other], limit)
    # above the tails every difference still counts
    assert not detections_agree([top, at_floor], [at_floor], limit, floor)
    assert not detections_agree([top], [], limit, floor)
    moved = Detection((41.0, 40.0, 50.0, 50.0), "dark", 0.5)
    assert not detections_agree([top, last], [moved, last], limit, floor)
    assert detections_agree([], [], limit, floor)
