"""One contract test over every registered model and every backend.

Each model is fitted through the one ``fit(data, val)`` call on a tiny dataset of what it learns
from, then: ``predict`` gives the one result type, its head is the family's registered one,
save and load give identical scores, and the export, loaded on each runtime backend, scores the
parts as torch does within the parity tolerance. A model registered without a tiny dataset here
fails the first test, so a new model cannot skip the contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from defectscope.bundle import Reference, load_bundle, save_bundle
from defectscope.data.images.image_set import ImageSet
from defectscope.models import create_model, list_models
from defectscope.runtime.backends import BACKENDS
from defectscope.scoring.families import head_class
from defectscope.values import InspectionResult, Verdict

from tests.conftest import FAST_OPTIONS, defective_part, good_part

SUPERVISED = {"image_size": 32, "batch_size": 8, "epochs": 2, "warmup_epochs": 1,
              "augment": False}
QUIET = {"progress": False, "log": lambda message: None}


@dataclass(frozen=True)
class Case:
    """A model's tiny training data and the parts (image, template or None) it is checked on."""

    options: dict[str, Any]
    data: Callable[[Path], tuple[Any, Any]]  # a scratch folder -> (data, val) for ``fit``
    parts: Callable[[Path], list[tuple[np.ndarray, np.ndarray | None]]]
    threshold: float | None = None  # None: the median score of the parts


def _goods(n: int = 8) -> list[np.ndarray]:
    return [good_part(i) for i in range(n)]


def _anomaly_parts(_root: Path):
    return [(good_part(60), None), (good_part(61), None), (defective_part(62)[0], None),
            (defective_part(63)[0], None)]


def _classifier_data(_root: Path):
    blobs = [defective_part(20 + i)[0] for i in range(6)]
    return ImageSet(_goods(6) + blobs, ["good"] * 6 + ["blob"] * 6), None


def _segmenter_data(_root: Path):
    blobs = [defective_part(20 + i) for i in range(6)]
    return ImageSet(_goods(6) + [image for image, _ in blobs],
                    masks=[None] * 6 + [mask for _, mask in blobs]), None


def _reference_data(root: Path):
    from tests.models.test_reference import write_dataset

    dataset = write_dataset(root / "boards", range(16))
    return dataset.with_samples(dataset.samples[:12]), dataset.with_samples(dataset.samples[12:])


def _reference_parts(_root: Path):
    from tests.models.test_reference import pair

    return [pair(seed)[:2] for seed in (500, 501)] + [(pair(502)[1], pair(502)[1])]


def _detector_data(root: Path):
    from tests.models.test_detector import dataset_of

    dataset = dataset_of(root / "parts", range(16))
    return dataset.with_samples(dataset.samples[:12]), dataset.with_samples(dataset.samples[12:])


def _detector_parts(_root: Path):
    from tests.models.test_detector import _part

    return [(_part(seed)[0], None) for seed in (500, 501, 502)]


CASES: dict[str, Case] = {
    "patchcore": Case(FAST_OPTIONS, lambda root: (_goods(), None), _anomaly_parts),
    "padim": Case(FAST_OPTIONS, lambda root: (_goods(), None), _anomaly_parts),
    "classifier": Case(SUPERVISED, _classifier_data, _anomaly_parts),
    "segmenter": Case({**SUPERVISED, "min_area": 0.01}, _segmenter_data, _anomaly_parts),
    "reference": Case({"crop_size": 32, "context": 32, "region_scale": 2.0, "width": 8,
                       "epochs": 3, "batch_size": 32, "patience": 3, "max_shift": 2},
                      _reference_data, _reference_parts, threshold=0.5),
    "detector": Case({"image_size": 64, "fpn_channels": 32, "head_convs": 1, "batch_size": 4,
                      "epochs": 2, "eval_every": 2, "warmup_epochs": 0.5, "photometric": 0.0},
                     _detector_data, _detector_parts, threshold=0.3),
}


def _score(model, part) -> float:
    image, template = part
    return float(model.anomaly(image, template)[0])


@pytest.fixture(scope="module", params=sorted(CASES))
def fitted(request, tmp_path_factory):
    """(name, fitted torch model, its parts, bundle folder with an ONNX + OpenVINO export)."""
    from defectscope.export import export_onnx

    name, case = request.param, CASES[request.param]
    root = tmp_path_factory.mktemp(f"contract-{name}")
    data, val = case.data(root)
    model = create_model(name, **case.options)
    assert model.fit(data, val, **QUIET) is model
    parts = case.parts(root)
    scores = [_score(model, part) for part in parts]
    model.set_threshold(case.threshold if case.threshold is not None else
                        float(np.median(scores)), {"rule": "test: fixed"})
    references = [Reference(image, score, f"part-{i}", template)
                  for i, ((image, template), score) in enumerate(zip(parts, scores))]
    bundle = save_bundle(model, root / "bundle", references=references)
    export_onnx(bundle, formats=("onnx", "openvino"))
    return name, model, parts, bundle


def test_every_registered_model_has_a_tiny_dataset_here():
    assert sorted(CASES) == list_models()


def test_predict_gives_the_one_result_type_through_the_registered_head(fitted):
    name, model, parts, _ = fitted
    assert type(model.head()) is head_class(name)
    for image, template in parts:
        result = model.predict(image, template)
        assert isinstance(result, InspectionResult) and result.verdict in set(Verdict)
        assert result.score == pytest.approx(_score(model, (image, template)))
        if result.anomaly_map is not None:
            assert result.anomaly_map.shape == image.shape[:2]


def test_save_then_load_gives_identical_scores(fitted):
    _, model, parts, bundle = fitted
    loaded = load_bundle(bundle).model
    assert type(loaded) is type(model) and loaded.threshold == model.threshold
    assert [_score(loaded, part) for part in parts] == [_score(model, part) for part in parts]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_scores_like_torch(fitted, backend):
    if backend == "openvino":
        pytest.importorskip("openvino")
    from defectscope.runtime import RuntimeModel

    name, model, parts, bundle = fitted
    runtime = RuntimeModel.load(bundle, backend=backend)  # its own parity check passed
    assert type(runtime.head) is head_class(name) and runtime.threshold == model.threshold
    limit = runtime.tolerance * max(abs(model.threshold), 1e-12)
    for image, template in parts:
        expected, got = model.predict(image, template), runtime.predict(image, template)
        assert abs(got.score - expected.score) <= limit
        assert got.verdict is expected.verdict and got.defect_type == expected.defect_type
