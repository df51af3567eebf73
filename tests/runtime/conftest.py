"""Tiny bundles trained once per session and exported to ONNX: PatchCore and PaDiM (from an
MVTec-layout folder), the classifier (binary, multi-class) and the segmenter (plain,
flip-averaged)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FAST_OPTIONS, defective_part, good_part, make_mvtec

MODELS = ("patchcore", "padim")
SUPERVISED = ("classifier_binary", "classifier_multiclass", "segmenter", "segmenter_flip")
# Seconds to fit, not accuracy: the runtime's parity with torch is what these bundles test.
SUPERVISED_FAST = {"image_size": 32, "batch_size": 8, "epochs": 2, "warmup_epochs": 1,
                   "augment": False, "lr": 1e-2}
# keep_aspect: images of other shapes reach the network at other sizes (dynamic ONNX axes).
KEEP_ASPECT = {"resize": "keep_aspect", "max_side": 64}


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict[str, Path]:
    """Freshly trained bundles, without an export: copy one before changing it."""
    from defectscope.data.images.importers import import_mvtec
    from defectscope.training.anomaly import train_anomaly

    root = tmp_path_factory.mktemp("runtime")
    manifest = import_mvtec(make_mvtec(root / "parts")).manifest
    return {name: _train(train_anomaly, manifest, name, root / name) for name in MODELS}


def _train(train_anomaly, manifest, name: str, out: Path) -> Path:
    train_anomaly(manifest, name, out, options=FAST_OPTIONS, progress=False)
    return out


@pytest.fixture(scope="session")
def exported(trained, tmp_path_factory) -> dict[str, Path]:
    """Copies of the trained bundles with an ``onnx/`` export. Do not change them."""
    from defectscope.export import export_onnx

    root = tmp_path_factory.mktemp("exported")
    bundles = {}
    for name, path in trained.items():
        bundles[name] = shutil.copytree(path, root / name)
        export_onnx(bundles[name])
    return bundles


@pytest.fixture
def copy_of(tmp_path):
    """Copy a bundle folder somewhere this test may change it."""
    return lambda path: Path(shutil.copytree(path, tmp_path / Path(path).name))


def scratched_part(seed: int, size=(72, 88)) -> np.ndarray:
    """A part with a bright horizontal scratch (a second defect type for the classifier)."""
    image = good_part(seed, size).copy()
    image[10:12, 5:50] = 240
    return image


def _save_supervised(model, out: Path) -> Path:
    """Threshold at the median score of a few parts (so both verdicts occur), four references."""
    from defectscope.bundle import Reference, save_bundle

    calibration = [good_part(300 + i) for i in range(3)] + \
        [defective_part(320 + i)[0] for i in range(3)]
    model.set_threshold(float(np.median([model.anomaly(image)[0] for image in calibration])),
                        {"rule": "test: median score"})
    images = [good_part(340), good_part(341), defective_part(342)[0], scratched_part(343)]
    references = [Reference(image, model.anomaly(image)[0], f"ref-{i}")
                  for i, image in enumerate(images)]
    return save_bundle(model, out, references=references)


@pytest.fixture(scope="session")
def trained_supervised(tmp_path_factory) -> dict[str, Path]:
    """Freshly fitted supervised bundles, without an export: copy one before changing it."""
    from defectscope.data.images.image_set import ImageSet
    from defectscope.models import create_model

    root = tmp_path_factory.mktemp("supervised")
    quiet = {"progress": False, "log": lambda message: None}
    goods = [good_part(i) for i in range(6)]
    blobs = [defective_part(50 + i) for i in range(6)]
    images = goods + [image for image, _ in blobs] + [scratched_part(80 + i) for i in range(6)]
    labels = ["good"] * 6 + ["blob"] * 6 + ["scratch"] * 6
    bundles = {}
    binary = create_model("classifier", task="binary", **SUPERVISED_FAST)
    bundles["classifier_binary"] = _save_supervised(binary.fit(ImageSet(images, labels), **quiet),
                                                    root / "classifier_binary")
    multiclass = create_model("classifier", **SUPERVISED_FAST, **KEEP_ASPECT)
    bundles["classifier_multiclass"] = _save_supervised(
        multiclass.fit(ImageSet(images, labels), **quiet), root / "classifier_multiclass")
    options = {**SUPERVISED_FAST, **KEEP_ASPECT, "min_area": 0.01}
    plain = create_model("segmenter", **options)
    plain.fit(ImageSet(goods + [image for image, _ in blobs],
                       masks=[None] * 6 + [mask for _, mask in blobs]), **quiet)
    bundles["segmenter"] = _save_supervised(plain, root / "segmenter")
    flip = create_model("segmenter", **options, flip_average=True)
    flip.restore(plain.arrays(), plain.weights_source_, plain.n_train_images_)
    bundles["segmenter_flip"] = _save_supervised(flip, root / "segmenter_flip")
    return bundles


@pytest.fixture(scope="session")
def exported_supervised(trained_supervised, tmp_path_factory) -> dict[str, Path]:
    """Copies of the supervised bundles with an ``onnx/`` export. Do not change them."""
    from defectscope.export import export_onnx

    root = tmp_path_factory.mktemp("exported_supervised")
    bundles = {}
    for name, path in trained_supervised.items():
        bundles[name] = shutil.copytree(path, root / name)
        export_onnx(bundles[name])
    return bundles


@pytest.fixture(scope="session")
def reference_bundles(tmp_path_factory) -> dict[str, Path]:
    """A tiny reference model (synthetic boards of ``tests.models.test_reference``) saved twice,
    with its references (each with its own template) and exported: ``plain`` without a golden
    template, ``golden`` with the template of board 1000. Do not change them."""
    from defectscope.bundle import save_bundle
    from defectscope.models.reference import ReferenceComparison
    from defectscope.export import export_onnx
    from defectscope.training.detection import detection_references

    from tests.models.test_reference import FAST, pair, write_dataset

    root = tmp_path_factory.mktemp("reference")
    dataset = write_dataset(root / "boards", range(40))
    train, val = dataset.samples[:34], dataset.samples[34:]
    model = ReferenceComparison(**FAST).fit(dataset.with_samples(train), dataset.with_samples(val),
                                            progress=False,
                                            log=lambda message: None)
    model.set_threshold(0.5, {"rule": "test: fixed"})
    bundles = {}
    for name, golden in (("plain", None), ("golden", pair(1000)[1])):
        model.set_golden_template(golden)
        bundles[name] = save_bundle(model, root / name, manifest=dataset,
                                    references=detection_references(model, dataset, val),
                                    extra={"task": "detection"})
        export_onnx(bundles[name])
    return bundles


@pytest.fixture
def drifting_backend(monkeypatch):
    """``drifting_backend(change)``: every runtime built from then on runs its network, then
    ``change(outputs)`` (a list of arrays): an exported network that no longer matches torch.
    The head after it stays the shared one, so only the network can have drifted."""
    from defectscope.runtime import engine

    original = engine.backend_forward

    def install(change):
        def drifting(session, outputs):
            forward = original(session, outputs)
            return lambda batch: tuple(change([np.array(a) for a in forward(batch)]))

        monkeypatch.setattr(engine, "backend_forward", drifting)

    return install
